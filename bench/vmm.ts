// Hypervisor manager timings under QEMU (TCG here; KVM where usable), one node in a network namespace:
// (a) baseline: the same image launched directly with the same QEMU arguments the node uses
//     (`ip netns exec … qemu-system-x86_64 <qemuArgs>`), from spawn to FORM-READY on the console;
// (b) the node: from the owner's signed desired-state write to the VM process existing, and to the
//     observed record saying `running` (the guest printed FORM-READY).
// Rounds alternate (a) and (b); the first node round also unpacks the kernel's PVH ELF (cold cache).
// Run: npm run build && npx tsx bench/vmm.ts   (root, qemu-system-x86, busybox-static, e2fsprogs)
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { copyFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { qemuArgs } from '../plugins/node/lib/hypervisor/qemu.js'
import { bootableKernel, kvmStatus } from '../plugins/node/lib/hypervisor/index.js'
import { guestCmdline, shortName } from '../plugins/node/lib/vmm/guest.js'
import { BlobStore } from '../plugins/net/lib/p2p/blobs.js'
import { VmmLab } from '../tests/helpers/vmm-lab.js'
import { benchScope, median, recordResults } from './results.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const { scope, close } = benchScope('vmm')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls until `fn` is true; the milliseconds since `t0`. */
async function when(t0: number, fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 300_000): Promise<number> {
  for (;;) {
    if (await fn()) return performance.now() - t0
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out: ${what}`)
    await sleep(10)
  }
}

/** The pid of a live process whose arguments contain `tag`, if any. */
function pidWith(tag: string): number | undefined {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(tag)) return Number(p)
    } catch {
      // gone
    }
  }
  return undefined
}

const lab = new VmmLab(scope, { bridgeSubnet: '10.79.5.0/24', resources: { vcpus: 2, memory_mb: 2048, disk_gb: 10 } })
try {
  await lab.setUp()
  const accel = (await kvmStatus()).usable ? 'kvm' : 'tcg'
  const dataDir = String(lab.env.env.FORM_DATA_DIR)
  const blobs = new BlobStore(join(dataDir, 'blobs'))
  const manifest = lab.image.manifest
  const work = scope.testdir()

  /** (a) what the node would run, run by hand: same kernel (PVH ELF), initrd, disk copy, arguments. */
  async function direct(round: number): Promise<number> {
    const kernel = await bootableKernel(blobs.path(manifest.kernel.sha256), manifest.kernel.sha256, join(work, 'kernels'))
    const name = `direct${round}`
    const tap = lab.net.name(`fd${round}`)
    const disk = join(work, `${name}.raw`)
    await copyFile(blobs.path(manifest.disk.sha256), disk)
    lab.net.run(['ip', '-n', lab.ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'])
    lab.net.run(['ip', '-n', lab.ns, 'link', 'set', tap, 'master', lab.bridge, 'up'])
    const consoleLog = join(work, `${name}.console`)
    const spec = {
      name,
      kernel: kernel.path,
      initrd: blobs.path(manifest.initrd!.sha256),
      cmdline: guestCmdline(manifest.cmdline, { ip: `10.79.5.${200 + round}`, prefix: 24, gateway: '10.79.5.1', hostname: name, dns: '10.79.5.1', accel }),
      disk,
      vcpus: 1,
      memoryMb: 256,
      tap,
      mac: `02:00:00:00:01:${(16 + round).toString(16)}`,
      consoleLog,
      runDir: work,
      processLog: join(work, `${name}.log`),
    }
    const t0 = performance.now()
    const child = spawn('ip', ['netns', 'exec', lab.ns, 'qemu-system-x86_64', ...qemuArgs(spec, accel)], { stdio: 'ignore' })
    const ms = await when(t0, async () => /^FORM-READY\r?$/m.test(await readFile(consoleLog, 'utf8').catch(() => '')), 'direct FORM-READY')
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    lab.net.run(['ip', '-n', lab.ns, 'link', 'del', tap])
    rmSync(disk, { force: true })
    return ms
  }

  /** (b) the node: desired write → VM process exists → observed running; then deleted again. */
  async function node(round: number): Promise<{ process: number; running: number }> {
    const id = `bench-${round}`
    const tag = `form-${shortName(lab.owner, id)}`
    const t0 = performance.now()
    await lab.createInstance(id)
    const processMs = await when(t0, () => pidWith(tag) !== undefined, 'the VM process')
    const runningMs = await when(t0, async () => (await lab.observed(id))?.state === 'running', 'observed running')
    lab.ok(await lab.form(['manage', 'delete', id, '--yes', '--wait']))
    return { process: processMs, running: runningMs }
  }

  const base: number[] = []
  const proc: number[] = []
  const run: number[] = []
  let cold: { process: number; running: number } | undefined
  for (let i = 0; i < ROUNDS + 1; i++) {
    const n = await node(i)
    if (i === 0) {
      cold = n
      console.log(`cold node round (PVH kernel unpacked): process ${n.process.toFixed(0)} ms, running ${n.running.toFixed(0)} ms`)
      continue
    }
    const d = await direct(i)
    base.push(d)
    proc.push(n.process)
    run.push(n.running)
    console.log(`round ${i}: direct ${d.toFixed(0)} ms; node: process ${n.process.toFixed(0)} ms, running ${n.running.toFixed(0)} ms`)
  }
  const b = median(base)
  const version = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]
  const body = [
    `Median of ${ROUNDS} rounds (plus one cold round), QEMU ${accel.toUpperCase()} (${version}), q35, 1 vCPU, 256 MiB, PVH kernel entry (Debian 6.1 kernel unpacked from its bzImage), busybox initramfs that configures eth0 from the kernel command line and prints FORM-READY. The node runs in a network namespace; its instances sit on its bridge; rounds alternate direct launch and node.`,
    '',
    '| measure | median ms | ratio to direct launch |',
    '|---|---|---|',
    `| direct launch, same arguments: spawn to FORM-READY (boot-to-running under ${accel.toUpperCase()}) | ${b.toFixed(0)} | 1.00 |`,
    `| node: signed desired-state write to the VM process running (the direct launch spawns at 0) | ${median(proc).toFixed(0)} | +${median(proc).toFixed(0)} ms before the spawn |`,
    `| node: signed desired-state write to observed \`running\` | ${median(run).toFixed(0)} | ${(median(run) / b).toFixed(2)} |`,
    `| node, cold (first boot of this kernel: PVH ELF unpacked): write to process / to running | ${cold!.process.toFixed(0)} / ${cold!.running.toFixed(0)} | ${(cold!.running / b).toFixed(2)} |`,
    '',
    `Between the write and the VM process the node: sees the record (state watch), writes pending and creating, reads the manifest, copies the disk (sparse), allocates the address, creates the tap (and the bridge on first use), writes booting, and spawns QEMU; QEMU then needs its QMP socket up before the node counts the boot as started. The 10 ms polling of this benchmark adds up to 10 ms to each node figure; the observed record is read through the node API.`,
  ].join('\n')
  console.log(body)
  recordResults('Hypervisor manager: desired state to running VM (bench/vmm.ts)', body)
} finally {
  await close()
}
