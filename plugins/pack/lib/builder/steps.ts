import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { appendFile, chmod, chown, cp, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join, posix } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { describeStep, type Formfile, type Step } from '../formfile/index.js'
import { runInRoot, type RunResult } from './chroot.js'

/**
 * The Formfile's instructions, applied to a root filesystem. Everything that runs inside the image
 * goes through runInRoot (argv, in a chroot) so paths resolve inside the image, never on the host.
 */

export interface StepContext {
  root: string
  /** the unpacked build context */
  context: string
  formfile: Formfile
  signal?: AbortSignal
  onOutput?: (chunk: string) => void
  /** the working directory of RUN: the last WORKDIR so far */
  workdir: string
}

/** A step that failed: which one, and what it printed. */
export class StepFailure extends FormError {
  constructor(
    readonly step: Step,
    readonly output: string,
    message: string,
  ) {
    super('BUILD_STEP_FAILED', message, { details: { line: step.line, instruction: describeStep(step) } })
  }
}

/** The env files of the image; see finalize.ts for who reads them. */
export const ENV_DIR = 'etc/form/env'

/** A value for a POSIX shell file, double-quoted so `$PATH`-style references still expand. */
export function shDouble(value: string): string {
  return `"${value.replace(/[\\"`]/g, '\\$&')}"`
}

export function shSingle(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** The context files a COPY step reads, with their content hashes: part of the step's cache key. */
async function copyInputs(step: Extract<Step, { kind: 'copy' }>, context: string): Promise<string[]> {
  const out: string[] = []
  const visit = async (rel: string) => {
    const full = join(context, rel)
    const st = await lstat(full).catch(() => undefined)
    if (!st) return out.push(`${rel}:missing`)
    if (st.isDirectory()) {
      out.push(`${rel}/:${st.mode & 0o7777}`)
      for (const name of (await readdir(full)).sort()) await visit(rel ? `${rel}/${name}` : name)
    } else out.push(`${rel}:${st.mode & 0o7777}:${await sha256File(full)}`)
  }
  for (const s of step.sources.length ? step.sources : ['']) await visit(s)
  return out
}

/** What, besides the step itself, decides its result: the inputs of its cache key. */
export async function stepInputs(step: Step, ctx: Pick<StepContext, 'context' | 'formfile' | 'workdir'>): Promise<unknown> {
  const { line: _line, ...instruction } = step
  const extra =
    step.kind === 'copy' ? await copyInputs(step, ctx.context) : step.kind === 'user' ? ctx.formfile.users.find((u) => u.username === step.username) : undefined
  return { instruction, workdir: ctx.workdir, extra }
}

async function mustRun(ctx: StepContext, step: Step, argv: string[], workdir = '/'): Promise<RunResult> {
  const r = await runInRoot(ctx.root, argv, { workdir, signal: ctx.signal, onOutput: ctx.onOutput })
  if (r.exitCode !== 0) throw new StepFailure(step, r.tail, `line ${step.line}: ${describeStep(step)} failed with exit code ${r.exitCode}`)
  return r
}

/** Runs a command in the image with the system-scope ENV so far (so `PATH=...:$PATH` works as in a shell). */
const WITH_ENV = `[ -r /${ENV_DIR}/system.sh ] && . /${ENV_DIR}/system.sh; exec "$@"`

async function hasAptLists(root: string): Promise<boolean> {
  const names = await readdir(join(root, 'var/lib/apt/lists')).catch(() => [] as string[])
  return names.some((n) => n.endsWith('_Packages') || n.endsWith('_Packages.lz4'))
}

/** uid and gid of a user of the image, from its /etc/passwd. */
export async function imageUser(root: string, username: string): Promise<{ uid: number; gid: number; home: string } | undefined> {
  const passwd = await readFile(join(root, 'etc/passwd'), 'utf8').catch(() => '')
  for (const line of passwd.split('\n')) {
    const f = line.split(':')
    if (f[0] === username && f.length >= 7) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] }
  }
  return undefined
}

/** The user who owns files copied to `destination`: the owner of the home it lies in, else root. */
async function copyOwner(root: string, formfile: Formfile, destination: string): Promise<{ uid: number; gid: number }> {
  for (const u of formfile.users) {
    const found = await imageUser(root, u.username)
    if (found && found.home !== '/' && (destination === found.home || destination.startsWith(`${found.home}/`))) return found
  }
  return { uid: 0, gid: 0 }
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await chown(path, uid, gid)
  const st = await lstat(path)
  if (st.isDirectory()) for (const name of await readdir(path)) await chownTree(join(path, name), uid, gid)
}

async function applyCopy(step: Extract<Step, { kind: 'copy' }>, ctx: StepContext): Promise<void> {
  const destination = step.destination || ctx.formfile.workdir || '/'
  const owner = await copyOwner(ctx.root, ctx.formfile, destination)
  // Staged in a fresh directory of the image, then copied by cp inside the chroot: the destination
  // may hold symbolic links, which must resolve inside the image, never on the host.
  const stageName = `.form-copy-${randomBytes(6).toString('hex')}`
  const stage = join(ctx.root, stageName)
  await mkdir(stage, { mode: 0o700 })
  try {
    const items = step.sources.length ? step.sources : ['']
    for (const [i, src] of items.entries()) {
      const from = join(ctx.context, src)
      const st = await lstat(from).catch(() => undefined)
      if (!st || !(st.isFile() || st.isDirectory())) {
        throw new StepFailure(step, '', `line ${step.line}: COPY source "${src || '.'}" is not in the build context`)
      }
      const staged = join(stage, String(i))
      await cp(from, staged, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true })
      await chownTree(staged, owner.uid, owner.gid)
      const inImage = `/${stageName}/${i}`
      let target = destination
      if (st.isDirectory()) {
        await mustRun(ctx, step, ['mkdir', '-p', target])
        await mustRun(ctx, step, ['cp', '-a', `${inImage}/.`, `${target}/`])
      } else {
        if (target.endsWith('/')) target = posix.join(target, basename(src))
        await mustRun(ctx, step, ['mkdir', '-p', posix.dirname(target)])
        await mustRun(ctx, step, ['cp', '-a', inImage, target])
      }
    }
  } finally {
    await rm(stage, { recursive: true, force: true })
  }
}

async function applyUser(step: Extract<Step, { kind: 'user' }>, ctx: StepContext): Promise<void> {
  const u = ctx.formfile.users.find((x) => x.username === step.username)
  if (!u) throw new StepFailure(step, '', `line ${step.line}: USER ${step.username} is not declared`)
  for (const g of u.groups) await mustRun(ctx, step, ['sh', '-c', 'getent group "$1" >/dev/null || groupadd "$1"', 'form-groupadd', g])
  await mustRun(ctx, step, ['useradd', '--create-home', '--user-group', '--shell', u.shell, ...(u.groups.length ? ['--groups', u.groups.join(',')] : []), u.username])
  // the hash goes in through argv inside the image, never through a shell or a log line
  if (u.passwordHash) await mustRun(ctx, step, ['usermod', '--password', u.passwordHash, u.username])
  if (u.lockPasswd) await mustRun(ctx, step, ['usermod', '--lock', u.username])
  // An expired password makes PAM demand a new one even on key logins, which would break
  // non-interactive SSH; so it only applies to users who log in with their password.
  if (u.chpasswdExpire && u.passwordHash && !u.lockPasswd && u.sshAuthorizedKeys.length === 0) await mustRun(ctx, step, ['chage', '--lastday', '0', u.username])
  const found = await imageUser(ctx.root, u.username)
  if (!found) throw new StepFailure(step, '', `line ${step.line}: useradd did not create ${u.username}`)
  if (u.sudo) {
    const file = join(ctx.root, 'etc/sudoers.d', `90-form-${u.username}`)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, `# written by form from the Formfile's USER ${u.username} sudo:true\n${u.username} ALL=(ALL) NOPASSWD:ALL\n`, { mode: 0o440 })
    await chmod(file, 0o440)
  }
  if (u.sshAuthorizedKeys.length) {
    const sshDir = join(ctx.root, found.home, '.ssh')
    await mkdir(sshDir, { recursive: true, mode: 0o700 })
    const keys = join(sshDir, 'authorized_keys')
    await writeFile(keys, u.sshAuthorizedKeys.join('\n') + '\n', { mode: 0o600 })
    await chmod(sshDir, 0o700)
    await chmod(keys, 0o600)
    await chown(sshDir, found.uid, found.gid)
    await chown(keys, found.uid, found.gid)
  }
}

async function applyEnv(step: Extract<Step, { kind: 'env' }>, ctx: StepContext): Promise<void> {
  const dir = join(ctx.root, ENV_DIR)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  if (step.scope.kind === 'service') {
    // systemd reads these literally (EnvironmentFile=), so no shell expansion here
    const lines = Object.entries(step.vars).map(([k, v]) => `${k}="${v.replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"\n`)
    await appendFile(join(dir, `service-${step.scope.name}.env`), lines.join(''), { mode: 0o600 })
    return
  }
  const file = join(dir, step.scope.kind === 'system' ? 'system.sh' : `user-${step.scope.name}.sh`)
  await appendFile(file, Object.entries(step.vars).map(([k, v]) => `export ${k}=${shDouble(v)}\n`).join(''), { mode: step.scope.kind === 'system' ? 0o644 : 0o600 })
}

/** Applies one step; throws StepFailure (with the step's output) when it fails. */
export async function applyStep(step: Step, ctx: StepContext): Promise<void> {
  switch (step.kind) {
    case 'run': {
      const argv = step.argv ?? ['/bin/sh', '-c', step.command]
      await mustRun(ctx, step, ['/bin/sh', '-c', WITH_ENV, 'form-run', ...argv], ctx.workdir)
      return
    }
    case 'install': {
      if (!(await hasAptLists(ctx.root))) await mustRun(ctx, step, ['apt-get', 'update', '-q'])
      await mustRun(ctx, step, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', ...step.packages])
      return
    }
    case 'workdir':
      await mustRun(ctx, step, ['mkdir', '-p', step.path])
      ctx.workdir = step.path
      return
    case 'copy':
      return applyCopy(step, ctx)
    case 'user':
      return applyUser(step, ctx)
    case 'env':
      return applyEnv(step, ctx)
  }
}
