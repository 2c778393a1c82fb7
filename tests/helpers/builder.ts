import { spawnSync } from 'node:child_process'

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0

/** Why image builds cannot run on this machine (for tap's skip, printed with the test), or false. */
export function builderSkip(extraTools: string[] = []): string | false {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'cannot run here: the builder needs root (network namespaces for its build VMs)'
  const tool = ['mmdebstrap', 'mke2fs', 'debugfs', 'qemu-system-x86_64', 'qemu-img', 'iptables', ...extraTools].find((x) => !has(x))
  return tool ? `cannot run here: ${tool} is not installed` : false
}

/**
 * Gives a node (by its env) the machine's cached Debian base, built here outside any namespace:
 * nodes in test namespaces have no route to a package mirror.
 */
export async function shareCachedBase(env: { dir: string; env: Record<string, string | undefined> }): Promise<void> {
  const { mkdir, rm, symlink } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const { prepareVmBase } = await import('../../plugins/pack/lib/builder/base.js')
  const { CACHE } = await import('./guest-image.js')
  await prepareVmBase({ suite: 'bookworm', cacheDir: join(CACHE, 'builder') }, join(env.dir, 'probe'))
  await rm(join(env.dir, 'probe'), { recursive: true, force: true })
  await mkdir(join(String(env.env.FORM_CACHE_DIR), 'builder'), { recursive: true })
  await symlink(join(CACHE, 'builder', 'base'), join(String(env.env.FORM_CACHE_DIR), 'builder', 'base'))
}

/** A directory as the builder receives a context: the tar.gz `form pack build` uploads. */
export async function packDirectory(dir: string, file = `${dir}.tar.gz`): Promise<string> {
  const { checkContext, packContext } = await import('../../plugins/pack/lib/context-archive.js')
  const listing = await checkContext(dir, 2 ** 30)
  if (listing.files.length) await packContext(dir, listing, file)
  else {
    // an empty context: the directory itself, no files
    const tar = await import('tar')
    await tar.c({ gzip: true, cwd: dir, file, portable: true, noDirRecurse: true }, ['.'])
  }
  return file
}

/** A built image booted the way the node boots it, with QEMU's user network forwarding host ports to the guest. */
export interface BootedImage {
  /** the serial console so far */
  console(): string
  /** host port → guest port, as asked */
  ports: Record<number, number>
  /** the instance's copy of the image's disk */
  disk: string
  stop(): Promise<void>
}

/**
 * Boots a built image under QEMU (TCG): a sparse copy of its disk grown to `diskGb`, direct kernel
 * boot, a user-mode network whose `forward` guest ports answer on free loopback ports. Resolves once
 * the guest prints FORM-READY; throws with the console's tail when it does not within `timeoutMs`.
 */
export async function bootImage(
  o: { blobs: { path(sha: string): string }; manifest: { kernel: { sha256: string }; initrd?: { sha256: string }; disk: { sha256: string }; cmdline: string }; dir: string; name: string; forward: number[]; diskGb?: number; memoryMb?: number; timeoutMs?: number },
  teardown: (fn: () => unknown) => void,
): Promise<BootedImage> {
  const { spawn } = await import('node:child_process')
  const { truncate } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const { createServer } = await import('node:net')
  const freePort = () =>
    new Promise<number>((resolve, reject) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port
        s.close(() => resolve(port))
      })
      s.on('error', reject)
    })
  const ports: Record<number, number> = {}
  for (const guest of o.forward) ports[await freePort()] = guest
  const disk = join(o.dir, `${o.name}.raw`)
  if (spawnSync('cp', ['--sparse=always', o.blobs.path(o.manifest.disk.sha256), disk]).status !== 0) throw new Error(`cannot copy the disk of ${o.name}`)
  await truncate(disk, (o.diskGb ?? 2) * 2 ** 30)
  const hostfwd = Object.entries(ports).map(([host, guest]) => `,hostfwd=tcp:127.0.0.1:${host}-10.0.2.15:${guest}`).join('')
  const qemu = spawn('qemu-system-x86_64', [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', String(o.memoryMb ?? 512), '-smp', '1', '-nographic', '-no-reboot',
    '-kernel', o.blobs.path(o.manifest.kernel.sha256), ...(o.manifest.initrd ? ['-initrd', o.blobs.path(o.manifest.initrd.sha256)] : []),
    '-append', `${o.manifest.cmdline} form.hostname=${o.name} form.ip=10.0.2.15/24 form.gw=10.0.2.2 form.dns=10.0.2.3 panic=-1 tsc_early_khz=2000000`,
    '-drive', `file=${disk},format=raw,if=virtio`,
    '-netdev', `user,id=n0,restrict=on${hostfwd}`, '-device', 'virtio-net-pci,netdev=n0',
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise((r) => qemu.once('exit', r))
  const stop = async () => {
    if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL')
    await exited
  }
  teardown(stop)
  let text = ''
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), o.timeoutMs ?? 300_000)
    qemu.stdout!.on('data', (d) => {
      text = (text + d).slice(-1_000_000)
      if (text.includes('FORM-READY')) {
        clearTimeout(timer)
        resolve(true)
      }
    })
    qemu.once('exit', () => (clearTimeout(timer), resolve(false)))
  })
  if (!ready) {
    await stop()
    throw new Error(`${o.name} did not print FORM-READY; console tail:\n${text.slice(-3000)}`)
  }
  return { console: () => text, ports, disk, stop }
}

/** GET on a loopback port with curl: the body, or why there was none after `tries` (2 s apart: the guest may still be starting its service). */
export async function httpGet(port: number, tries = 30): Promise<string> {
  let last = ''
  for (let i = 0; i < tries; i++) {
    const r = spawnSync('curl', ['-sS', '--max-time', '10', `http://127.0.0.1:${port}/`], { encoding: 'utf8' })
    if (r.status === 0) return r.stdout
    last = r.stderr.trim()
    await new Promise((res) => setTimeout(res, 2000))
  }
  return `no answer: ${last}`
}
