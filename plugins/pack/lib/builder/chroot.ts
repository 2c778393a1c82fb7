import { FormError } from '../../../../core/errors.js'

/**
 * Runs a command inside a root filesystem being built. The host side is a fixed script: the root,
 * the working directory and the command reach it as arguments, so no Formfile text is ever parsed
 * by a host shell. It runs in fresh mount and PID namespaces: /proc, /sys and a minimal /dev are
 * mounted there and vanish with the namespace when the command ends (nothing stays mounted on the
 * host, whatever happens), and every process the command left behind dies with it.
 */
const ENTER = `set -eu
root=$1; wd=$2; shift 2
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs -o nosuid,nodev shm "$root/dev/shm"
mkdir -p "$root$wd"
exec chroot "$root" /usr/bin/env -C "$wd" "$@"
`

/** The environment a build command sees: no host variables leak into the image. */
export const BUILD_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  DEBIAN_FRONTEND: 'noninteractive',
  TERM: 'dumb',
}

export interface RunInRootOptions {
  /** absolute path inside the root (default /) */
  workdir?: string
  env?: Record<string, string>
  signal?: AbortSignal
  /** every chunk of stdout and stderr, interleaved as produced */
  onOutput?: (chunk: string) => void
}

export interface RunResult {
  exitCode: number
  /** the last 8 KiB of the output */
  tail: string
}

/** Runs argv (argv[0] resolved on the image's PATH) inside `root`; resolves with its exit code. */
export async function runInRoot(root: string, argv: string[], o: RunInRootOptions = {}): Promise<RunResult> {
  const { execa } = await import('execa')
  let tail = ''
  const keep = (chunk: Buffer | string) => {
    const text = chunk.toString()
    tail = (tail + text).slice(-8192)
    o.onOutput?.(text)
  }
  // --kill-child: if this process dies, the namespace's first process (and with it all others) dies too
  const child = execa(
    'unshare',
    ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--ipc', '--uts', '/bin/sh', '-c', ENTER, 'form-build', root, o.workdir ?? '/', ...argv],
    { reject: false, env: { ...BUILD_ENV, ...o.env }, extendEnv: false, stdin: 'ignore', cancelSignal: o.signal, forceKillAfterDelay: 5000 },
  )
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const r = await child
  if (r.isCanceled) throw new FormError('BUILD_CANCELLED', 'the build was cancelled')
  if (r.failed && r.exitCode === undefined) {
    throw new FormError('BUILD_CHROOT_FAILED', `could not run a command in the image: ${r.shortMessage}`, { hint: 'the builder needs root and util-linux (unshare, chroot)' })
  }
  return { exitCode: r.exitCode ?? 1, tail }
}
