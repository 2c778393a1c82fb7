import { spawnSync } from 'node:child_process'

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0

/** Why image builds cannot run on this machine (for tap's skip, printed with the test), or false. */
export function builderSkip(extraTools: string[] = []): string | false {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'cannot run here: the builder needs root (chroot, namespaces)'
  const tool = ['mmdebstrap', 'mke2fs', 'debugfs', 'unshare', ...extraTools].find((x) => !has(x))
  return tool ? `cannot run here: ${tool} is not installed` : false
}
