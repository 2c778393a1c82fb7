import { createHash } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { copyFile, mkdir, open, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import type { BlobStore } from '../../../net/index.js'
import { IMAGE_SCHEMA, parseManifest, type ImageManifest } from '../../../node/index.js'
import { describeStep, healthChecks, printFormfile, type Formfile, type Step } from '../formfile/index.js'
import { AGENT, BOOT_DISK_BYTES, BOOT_INITRD_OFFSET, finalizeScript, planScript, stepScript } from './agent.js'
import { baseKey, BUILD_DISK_GB, BUILD_INIT, prepareVmBase } from './base.js'
import type { BaseProgress } from './base-progress.js'
import { INITRAMFS_SHIM } from './initramfs.js'
import { buildNetwork, type BuildNetwork } from './net.js'
import { SYSTEMCTL_SHIM } from './systemctl.js'
import { BuildVm, buildAccel } from './vm.js'

/**
 * Bumped when the way steps are applied changes, so old cache entries are not replayed. 3: layers
 * hold the build's update-initramfs shim, which only a builder that knows it removes from the image.
 */
const BUILDER_VERSION = 3

export type BuildPhase = 'base' | 'steps' | 'finalize' | 'image'

export type BuildEvent =
  | { type: 'phase'; phase: BuildPhase }
  | { type: 'base'; cached: boolean; ms: number }
  /** a base being built: mmdebstrap's phase and package counts (phaseChanged: more than a count moved) */
  | { type: 'base-progress'; progress: BaseProgress; phaseChanged: boolean }
  | { type: 'step'; index: number; total: number; line: number; text: string; status: 'running' | 'cached' | 'ran'; ms?: number }
  | { type: 'image'; image: string; ms: number; reused: boolean }

export interface StepReport {
  line: number
  text: string
  cached: boolean
  ms: number
}

export interface BuildOptions {
  formfile: Formfile
  owner: string
  buildId: string
  /** the build context as uploaded: a tar.gz the host never unpacks (the build VM reads it) */
  context: string
  /** scratch space of this build; removed when it ends */
  workDir: string
  /** the node's builder cache: bases, step layers, finished images */
  cacheDir: string
  blobs: BlobStore
  suite: string
  mirrors?: string[]
  /** address ranges the build VM may reach besides the public internet ([pack] build_allow_cidrs) */
  allowCidrs?: string[]
  /** memory of the build VM (MiB) */
  vmMemoryMb?: number
  signal?: AbortSignal
  onEvent?: (e: BuildEvent) => void
  /** what commands in the image print */
  onOutput?: (chunk: string) => void
}

export interface BuildResult {
  image: string
  manifest: ImageManifest
  steps: StepReport[]
  /** true when nothing ran: the image of an identical earlier build was reused */
  reused: boolean
  /** how the build VM ran: kvm or tcg (undefined when no VM was needed) */
  accel?: string
  /** where the time went, in ms (a build that booted a VM) */
  timings?: Record<'base' | 'boot' | 'steps' | 'finalize' | 'shrink' | 'publish', number>
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

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

const inUse = new Map<string, number>()
/**
 * The cache files running builds use now (base disk, kernel, initrd, every layer of their chains):
 * what a cache eviction must leave alone. A layer's qcow2 names its parent's path as its backing
 * file, so evicting a layer also makes the layers above it useless (they are never used then: a
 * build replays only an unbroken chain from the base, and rewrites the rest).
 */
export function cacheFilesInUse(): Set<string> {
  return new Set(inUse.keys())
}
function hold(files: string[]): () => void {
  for (const f of files) inUse.set(f, (inUse.get(f) ?? 0) + 1)
  return () => {
    for (const f of files) {
      const n = (inUse.get(f) ?? 1) - 1
      if (n > 0) inUse.set(f, n)
      else inUse.delete(f)
    }
  }
}

/**
 * The Formfile as the manifest shows it: blobs are served to any node that asks, so password
 * hashes and the values of user- and service-scoped ENV are left out.
 */
export function publicFormfile(f: Formfile): string {
  return printFormfile({
    ...f,
    users: f.users.map((u) => ({ ...u, passwordHash: u.passwordHash ? '(hidden)' : undefined })),
    steps: f.steps.map((s) => (s.kind === 'env' && s.scope.kind !== 'system' ? { ...s, vars: Object.fromEntries(Object.keys(s.vars).map((k) => [k, '(hidden)'])) } : s)),
  })
}

/** Limits on what a build VM hands back: more is refused, never read. */
const MAX_KERNEL = BOOT_INITRD_OFFSET
const MAX_INITRD = BOOT_DISK_BYTES - BOOT_INITRD_OFFSET

/**
 * Every file of the context archive with its mode and content hash, read from the gzip stream in
 * memory: the COPY steps' cache keys. Nothing is written anywhere.
 */
export async function contextIndex(archive: string): Promise<Map<string, string>> {
  const tar = await import('tar')
  const out = new Map<string, string>()
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      const path = entry.path.replace(/\/+$/, '')
      if (entry.type === 'Directory') {
        out.set(path, `dir:${(entry.mode ?? 0) & 0o7777}`)
        entry.resume()
        return
      }
      const h = createHash('sha256')
      entry.on('data', (c: Buffer) => h.update(c))
      entry.on('end', () => out.set(path, `${entry.type}:${(entry.mode ?? 0) & 0o7777}:${h.digest('hex')}`))
    },
  })
  await new Promise<void>((resolve, reject) => {
    const s = createReadStream(archive)
    s.once('error', reject)
    parser.once('error', reject)
    parser.once('end', () => resolve())
    s.pipe(parser)
  })
  return out
}

/** What, besides the step itself, decides its result: the inputs of its cache key. */
function stepInputs(step: Step, f: Formfile, workdir: string, context: Map<string, string>): unknown {
  const { line: _line, ...instruction } = step
  let extra: unknown
  if (step.kind === 'copy') {
    extra = (step.sources.length ? step.sources : ['']).map((src) =>
      [...context.entries()].filter(([p]) => !src || p === src || p.startsWith(`${src}/`)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    )
  } else if (step.kind === 'user') extra = f.users.find((u) => u.username === step.username)
  return { instruction, workdir, extra }
}

async function sparseFile(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'w')
  try {
    await fh.truncate(bytes)
  } finally {
    await fh.close()
  }
}

async function qemuImg(args: string[]): Promise<void> {
  const { execa } = await import('execa')
  const r = await execa('qemu-img', args, { reject: false, all: true })
  if (r.exitCode !== 0) throw new FormError('BUILD_LAYER_FAILED', `qemu-img ${args[0]} failed: ${(r.all ?? '').trim().slice(-300) || `exit ${r.exitCode}`}`, { hint: 'the builder needs qemu-utils' })
}

/** Copies `length` bytes at `offset` of an opaque file into the blob store. */
async function blobFromRange(blobs: BlobStore, file: string, offset: number, length: number) {
  const tmp = await blobs.tempFile()
  const out = await open(tmp, 'w')
  try {
    const stream = createReadStream(file, { start: offset, end: offset + length - 1 })
    for await (const chunk of stream) await out.write(chunk as Buffer)
  } finally {
    await out.close()
  }
  return blobs.putFile(tmp)
}

/**
 * Builds a Formfile into an image. Every step runs inside a throwaway VM booted from the cached
 * Debian base; each step's result is a qcow2 layer on the one before it, keyed by the previous key,
 * the step and the content it reads, so an unchanged Formfile replays from cache without booting,
 * and a change re-runs only from the first step it touches.
 */
export async function buildImage(o: BuildOptions): Promise<BuildResult> {
  const emit = o.onEvent ?? (() => {})
  const layers = join(o.cacheDir, 'layers')
  const images = join(o.cacheDir, 'images')
  await mkdir(layers, { recursive: true })
  await mkdir(images, { recursive: true })
  await mkdir(o.workDir, { recursive: true })
  const f = o.formfile
  const baseOptions = { suite: o.suite, cacheDir: o.cacheDir, mirrors: o.mirrors }

  // Keys first: they need only the Formfile and the context's hashes.
  const context = await contextIndex(o.context).catch((error: Error) => {
    throw new FormError('BUILD_BAD_CONTEXT', `the build context is not a readable tar.gz: ${error.message}`)
  })
  const keys: string[] = []
  const workdirs: string[] = []
  {
    let prev = `base:${baseKey(baseOptions)}`
    let workdir = '/'
    for (const step of f.steps) {
      workdirs.push(workdir)
      prev = sha256(JSON.stringify({ v: BUILDER_VERSION, prev, step: stepInputs(step, f, workdir, context) }))
      keys.push(prev)
      if (step.kind === 'workdir') workdir = step.path
    }
  }
  const imageKey = sha256(JSON.stringify({ v: BUILDER_VERSION, last: keys.at(-1) ?? baseKey(baseOptions), formfile: printFormfile(f), owner: o.owner, buildId: o.buildId }))
  const layerFile = (i: number) => join(layers, `${keys[i]}.qcow2`)
  const layerDone = (i: number) => join(layers, `${keys[i]}.json`)
  let replayable = 0
  while (replayable < keys.length && existsSync(layerFile(replayable)) && existsSync(layerDone(replayable))) replayable++
  // what a least-recently-used eviction of the cache reads: these files were used just now
  const touch = async (files: string[]) => {
    const now = new Date()
    for (const file of files) await utimes(file, now, now).catch(() => {})
  }
  await touch(keys.slice(0, replayable).flatMap((_, i) => [layerFile(i), layerDone(i)]))

  // An identical earlier build whose artifacts are all still here is the answer as it is.
  const reusable = await readFile(join(images, `${imageKey}.json`), 'utf8')
    .then((text) => JSON.parse(text) as { image: string })
    .catch(() => undefined)
  if (reusable && replayable === keys.length) {
    const manifest = await readFile(o.blobs.path(reusable.image)).then(parseManifest).catch(() => undefined)
    const parts = manifest ? [manifest.kernel, manifest.initrd, manifest.disk].filter((p) => p !== undefined) : []
    const present = manifest && (await Promise.all(parts.map(async (p) => (await o.blobs.size(p.sha256)) === p.size))).every(Boolean)
    if (manifest && present) {
      emit({ type: 'base', cached: true, ms: 0 })
      const steps = f.steps.map((s, i) => ({ line: s.line, text: describeStep(s), cached: true, ms: 0, index: i }))
      for (const s of steps) emit({ type: 'step', index: s.index, total: steps.length, line: s.line, text: s.text, status: 'cached', ms: 0 })
      emit({ type: 'image', image: reusable.image, ms: 0, reused: true })
      await touch([join(images, `${imageKey}.json`)])
      return { image: reusable.image, manifest, steps: steps.map(({ index: _i, ...s }) => s), reused: true }
    }
  }

  const release = hold(keys.flatMap((_, i) => [layerFile(i), layerDone(i)]))
  try {
    return await buildFromLayers(o, { f, keys, workdirs, replayable, imageKey, layerFile, layerDone, emit, touch, baseOptions })
  } finally {
    release()
  }
}

async function buildFromLayers(
  o: BuildOptions,
  c: Pick<RunState, 'f' | 'keys' | 'replayable' | 'imageKey' | 'layerFile' | 'layerDone' | 'emit' | 'touch'> & { workdirs: string[]; baseOptions: { suite: string; cacheDir: string; mirrors?: string[] } },
): Promise<BuildResult> {
  const { f, keys, workdirs, replayable, imageKey, layerFile, layerDone, emit, touch, baseOptions } = c
  emit({ type: 'phase', phase: 'base' })
  const baseStarted = performance.now()
  const base = await prepareVmBase(baseOptions, o.workDir, {
    onOutput: o.onOutput,
    onProgress: (progress, phaseChanged) => emit({ type: 'base-progress', progress, phaseChanged }),
  })
  const baseMs = performance.now() - baseStarted
  emit({ type: 'base', cached: base.cached, ms: baseMs })
  await touch([base.disk, base.kernel, base.initrd])
  const release = hold([base.disk, base.kernel, base.initrd])
  try {
    return await withNetwork(o, { baseMs, f, keys, replayable, base, imageKey, layerFile, layerDone, emit, touch }, workdirs)
  } finally {
    release()
  }
}

/** The input disk (the agent, the plan and every script, as one tar the agent unpacks), the network, then the VM. */
async function withNetwork(o: BuildOptions, s: Omit<RunState, 'net' | 'input'>, workdirs: string[]): Promise<BuildResult> {
  const input = join(o.workDir, 'input')
  await mkdir(join(input, 'x'), { recursive: true })
  await writeFile(join(input, 'x', 'agent.sh'), AGENT)
  await writeFile(join(input, 'x', 'systemctl'), SYSTEMCTL_SHIM)
  await writeFile(join(input, 'x', 'update-initramfs'), INITRAMFS_SHIM)
  for (let i = s.replayable; i < s.f.steps.length; i++) await writeFile(join(input, 'x', `step-${i}.sh`), stepScript(i, s.f, workdirs[i]))
  await writeFile(join(input, 'x', 'finalize.sh'), finalizeScript(s.f))
  const net = await buildNetwork({ workDir: o.workDir, allowCidrs: o.allowCidrs ?? [] })
  try {
    await writeFile(join(input, 'x', 'plan.sh'), planScript({ contextSize: (await stat(o.context)).size, net: net.guest }))
    const { execa } = await import('execa')
    await execa('tar', ['-cf', join(input, 'input.tar'), '-C', join(input, 'x'), '.'])
    return await runBuild(o, { ...s, net, input: join(input, 'input.tar') })
  } finally {
    await net.close()
  }
}

interface RunState {
  baseMs: number
  f: Formfile
  keys: string[]
  replayable: number
  base: { disk: string; kernel: string; initrd: string }
  net: BuildNetwork
  input: string
  imageKey: string
  layerFile: (i: number) => string
  layerDone: (i: number) => string
  emit: (e: BuildEvent) => void
  touch: (files: string[]) => Promise<void>
}

async function runBuild(o: BuildOptions, s: RunState): Promise<BuildResult> {
  const { f, keys, replayable, emit } = s
  const reports: StepReport[] = []
  emit({ type: 'phase', phase: 'steps' })
  for (let i = 0; i < replayable; i++) {
    const text = describeStep(f.steps[i])
    emit({ type: 'step', index: i, total: f.steps.length, line: f.steps[i].line, text, status: 'running' })
    reports.push({ line: f.steps[i].line, text, cached: true, ms: 0 })
    emit({ type: 'step', index: i, total: f.steps.length, line: f.steps[i].line, text, status: 'cached', ms: 0 })
  }
  // the top of the build's disk: the first step to run writes into its own layer's file
  const below = replayable > 0 ? { file: s.layerFile(replayable - 1), format: 'qcow2' } : { file: s.base.disk, format: 'raw' }
  const final = join(o.workDir, 'final.qcow2')
  const top = replayable < keys.length ? s.layerFile(replayable) : final
  await rm(top, { force: true })
  await qemuImg(['create', '-q', '-f', 'qcow2', '-b', below.file, '-F', below.format, top])
  const bootDisk = join(o.workDir, 'boot.raw')
  await sparseFile(bootDisk, BOOT_DISK_BYTES)

  const accel = await buildAccel()
  let lap = performance.now()
  const timings = { base: s.baseMs, boot: 0, steps: 0, finalize: 0, shrink: 0, publish: 0 }
  const split = (k: keyof typeof timings) => {
    const now = performance.now()
    timings[k] += now - lap
    lap = now
  }
  let console = ''
  /** every character the console ever printed: where a step's output starts in the rolling tail */
  let printed = 0
  let forward = false
  const vm = await BuildVm.start(
    {
      kernel: s.base.kernel,
      initrd: s.base.initrd,
      // quiet: the build log shows what the steps print, not the kernel's boot
      cmdline: `console=ttyS0 root=/dev/vda rw rootflags=noinit_itable init=/${BUILD_INIT} quiet loglevel=1 panic=-1 net.ifnames=0`,
      disks: [
        { file: top, format: 'qcow2' },
        { file: s.input, format: 'raw', readonly: true },
        { file: o.context, format: 'raw', readonly: true },
        { file: bootDisk, format: 'raw' },
      ],
      memoryMb: o.vmMemoryMb ?? 1024,
      pidFile: join(o.workDir, 'qemu.pid'),
      vcpus: 2,
      netdev: s.net.netdev,
      wrap: s.net.wrap,
      signal: o.signal,
    },
    accel,
    (text) => {
      console = (console + text).slice(-8192)
      printed += text.length
      if (forward) o.onOutput?.(text)
    },
  )
  const fail = (code: string, message: string) => new FormError(code, message, { details: { console: console.slice(-2000) } })
  const expect = async (what: string): Promise<string[]> => {
    const line = await vm.next()
    if (line === undefined) {
      if (o.signal?.aborted) throw o.signal.reason ?? new FormError('BUILD_CANCELLED', 'the build was cancelled')
      throw fail('BUILD_VM_FAILED', `the build VM ended while the builder waited for ${what}: ${(console.trim().split('\n').slice(-5).join(' | ') + ' ' + vm.qemuOutput.trim()).trim()}`)
    }
    return line.split(' ')
  }
  const runScript = async (name: string): Promise<number> => {
    vm.send(`run ${name}`)
    const [word, got, rc] = await expect(`the end of ${name}`)
    if (word !== 'end' || got !== name) throw fail('BUILD_VM_PROTOCOL', `the build agent answered "${word} ${got}" to ${name}`)
    return Number(rc)
  }
  try {
    const [ready] = await expect('the build agent to start')
    if (ready !== 'ready') throw fail('BUILD_VM_PROTOCOL', `the build agent said "${ready}" before ready`)
    forward = true
    split('boot')
    for (let i = replayable; i < keys.length; i++) {
      const step = f.steps[i]
      const text = describeStep(step)
      emit({ type: 'step', index: i, total: f.steps.length, line: step.line, text, status: 'running' })
      o.onOutput?.(`--> line ${step.line}: ${text}\n`)
      const started = performance.now()
      const mark = printed
      const rc = await runScript(`step-${i}`)
      if (rc !== 0) {
        await rm(s.layerFile(i), { force: true })
        throw new StepFailure(step, console.slice(-Math.min(console.length, printed - mark) || console.length), `line ${step.line}: ${text} failed with exit code ${rc}`)
      }
      // the layer of this step is complete: the VM goes on in a new one on top of it
      const next = i + 1 < keys.length ? s.layerFile(i + 1) : final
      await rm(next, { force: true })
      await vm.qmp.execute('blockdev-snapshot-sync', { device: 'd0', 'snapshot-file': next, format: 'qcow2', mode: 'absolute-paths' }, 60_000)
      await writeFile(s.layerDone(i), JSON.stringify({ step: text, builtAt: Date.now() }))
      const ms = performance.now() - started
      reports.push({ line: step.line, text, cached: false, ms })
      emit({ type: 'step', index: i, total: f.steps.length, line: step.line, text, status: 'ran', ms })
    }
    split('steps')
    emit({ type: 'phase', phase: 'finalize' })
    if ((await runScript('finalize')) !== 0) {
      if (/FORM-SSHD-CONFIG/.test(console)) throw fail('BUILD_SSHD_CONFIG', `the image's sshd rejects its configuration: ${console.trim().slice(-500)}`)
      throw fail('BUILD_FINALIZE_FAILED', `finishing the image failed: ${console.trim().slice(-500)}`)
    }
    split('finalize')
    emit({ type: 'phase', phase: 'image' })
    const imageStarted = performance.now()
    vm.send('image')
    const [imageWord, ...rest] = await expect('the image')
    split('shrink')
    if (imageWord === 'image-failed') throw fail('BUILD_DISK_FAILED', `writing the image failed: ${rest.join(' ')}`)
    const [size, kernelSize, initrdSize] = rest.map(Number)
    if (imageWord !== 'image' || !(size > 0 && size % 4096 === 0 && size <= BUILD_DISK_GB * 2 ** 30) || !(kernelSize > 0 && kernelSize <= MAX_KERNEL) || !(initrdSize > 0 && initrdSize <= MAX_INITRD)) {
      throw fail('BUILD_VM_PROTOCOL', `the build agent's image report is out of bounds: ${[imageWord, ...rest].join(' ').slice(0, 200)}`)
    }
    vm.send('quit')
    await Promise.race([vm.exited, new Promise((r) => setTimeout(r, 20_000))])
    await vm.close()
    if (size > f.resources.diskGb * 2 ** 30) {
      throw new FormError('BUILD_DISK_TOO_SMALL', `the image does not fit in DISK ${f.resources.diskGb} GB: its files need ${Math.ceil(size / 2 ** 20)} MiB`, { hint: 'raise DISK in the Formfile' })
    }
    // opaque bytes only: the disk (sparse) cut to its filesystem's length, the kernel and initrd at their offsets
    const outDisk = join(o.workDir, 'disk.raw')
    await qemuImg(['convert', '-q', '-f', 'qcow2', '-O', 'raw', final, outDisk])
    await truncate(outDisk, size)
    const disk = await o.blobs.putFile(await moveToTemp(o.blobs, outDisk))
    const kernel = await blobFromRange(o.blobs, bootDisk, 0, kernelSize)
    const initrd = await blobFromRange(o.blobs, bootDisk, BOOT_INITRD_OFFSET, initrdSize)
    const manifest: ImageManifest = {
      buildId: o.buildId,
      name: f.name,
      owner: o.owner,
      resources: { vcpus: f.resources.vcpus, memoryMb: f.resources.memoryMb, diskGb: f.resources.diskGb, ...(f.resources.gpu ? { gpu: f.resources.gpu } : {}) },
      expose: f.expose,
      // what its hosting node probes (the defaults for EXPOSE spelled out: the node reads no Formfile)
      health: healthChecks(f),
      // what the image's users are, never their secrets
      users: f.users.map((u) => ({ username: u.username, sudo: u.sudo, shell: u.shell, groups: u.groups, sshKeys: u.sshAuthorizedKeys.length, password: Boolean(u.passwordHash) && !u.lockPasswd })),
      entrypoint: f.entrypoint ? f.entrypoint.argv : [],
      formfile: publicFormfile(f),
      schema: IMAGE_SCHEMA,
      createdAt: new Date().toISOString(),
      kernel,
      initrd,
      disk: { ...disk, format: 'raw', fs: 'ext4' },
      cmdline: 'root=/dev/vda rw console=ttyS0',
    }
    const image = await o.blobs.put(Buffer.from(JSON.stringify(manifest)))
    await writeFile(join(o.cacheDir, 'images', `${s.imageKey}.json`), JSON.stringify({ image }))
    split('publish')
    emit({ type: 'image', image, ms: performance.now() - imageStarted, reused: false })
    return { image, manifest, steps: reports, reused: false, accel, timings }
  } finally {
    await vm.close()
  }
}

async function moveToTemp(blobs: BlobStore, file: string): Promise<string> {
  const tmp = await blobs.tempFile()
  const { rename } = await import('node:fs/promises')
  await rename(file, tmp).catch(async () => {
    await copyFile(file, tmp)
  })
  return tmp
}
