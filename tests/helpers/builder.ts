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
