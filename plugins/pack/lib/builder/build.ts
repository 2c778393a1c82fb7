import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BlobStore } from '../../../net/index.js'
import { parseManifest, type ImageManifest } from '../../../node/index.js'
import { describeStep, printFormfile, type Formfile } from '../formfile/index.js'
import { prepareBase } from './base.js'
import { finalizeRoot, prepareRoot } from './finalize.js'
import { applyLayer, compare, snapshot, writeLayer } from './layers.js'
import { publishImage } from './publish.js'
import { applyStep, stepInputs, type StepContext } from './steps.js'

/** Bumped when the way steps are applied changes, so old cache entries are not replayed. */
const BUILDER_VERSION = 1

export type BuildPhase = 'base' | 'steps' | 'finalize' | 'image'

export type BuildEvent =
  | { type: 'phase'; phase: BuildPhase }
  | { type: 'base'; cached: boolean; ms: number }
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
  /** the unpacked build context */
  context: string
  /** scratch space of this build; removed when it ends */
  workDir: string
  /** the node's builder cache: bases, step layers, finished images */
  cacheDir: string
  blobs: BlobStore
  suite: string
  mirrors?: string[]
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
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

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

/**
 * Builds a Formfile into an image. Each step's cache key chains the previous key with the step and
 * the content it reads, so an unchanged Formfile replays from cache, and a change re-runs only
 * from the first step it touches.
 */
export async function buildImage(o: BuildOptions): Promise<BuildResult> {
  const emit = o.onEvent ?? (() => {})
  const layers = join(o.cacheDir, 'layers')
  const images = join(o.cacheDir, 'images')
  await mkdir(layers, { recursive: true })
  await mkdir(images, { recursive: true })
  const f = o.formfile
  const normalized = printFormfile(f)
  const baseStarted = performance.now()
  const root = join(o.workDir, 'root')

  // Keys first: they need only the Formfile and the context.
  const { baseKey } = await import('./base.js')
  const keys: string[] = []
  {
    let prev = `base:${baseKey({ suite: o.suite, cacheDir: o.cacheDir, mirrors: o.mirrors })}`
    const sim = { context: o.context, formfile: f, workdir: '/' }
    for (const step of f.steps) {
      prev = sha256(JSON.stringify({ v: BUILDER_VERSION, prev, step: await stepInputs(step, sim) }))
      keys.push(prev)
      if (step.kind === 'workdir') sim.workdir = step.path
    }
  }
  const imageKey = sha256(JSON.stringify({ v: BUILDER_VERSION, last: keys.at(-1) ?? baseKey({ suite: o.suite, cacheDir: o.cacheDir, mirrors: o.mirrors }), formfile: normalized, owner: o.owner, buildId: o.buildId }))
  const layerFile = (key: string) => join(layers, `${key}.tar`)
  const cachedSteps = () => {
    let n = 0
    while (n < keys.length && existsSync(layerFile(keys[n])) && existsSync(`${layerFile(keys[n])}.json`)) n++
    return n
  }

  // An identical earlier build whose artifacts are all still here is the answer as it is.
  const reusable = await readFile(join(images, `${imageKey}.json`), 'utf8')
    .then((text) => JSON.parse(text) as { image: string })
    .catch(() => undefined)
  if (reusable && cachedSteps() === keys.length) {
    const manifest = await readFile(o.blobs.path(reusable.image)).then(parseManifest).catch(() => undefined)
    const parts = manifest ? [manifest.kernel, manifest.initrd, manifest.disk].filter((p) => p !== undefined) : []
    const present = manifest && (await Promise.all(parts.map(async (p) => (await o.blobs.size(p.sha256)) === p.size))).every(Boolean)
    if (manifest && present) {
      emit({ type: 'base', cached: true, ms: 0 })
      const steps = f.steps.map((s, i) => ({ line: s.line, text: describeStep(s), cached: true, ms: 0, index: i }))
      for (const s of steps) emit({ type: 'step', index: s.index, total: steps.length, line: s.line, text: s.text, status: 'cached', ms: 0 })
      emit({ type: 'image', image: reusable.image, ms: 0, reused: true })
      return { image: reusable.image, manifest, steps: steps.map(({ index: _i, ...s }) => s), reused: true }
    }
  }

  emit({ type: 'phase', phase: 'base' })
  const base = await prepareBase({ suite: o.suite, mirrors: o.mirrors, cacheDir: o.cacheDir }, root)
  emit({ type: 'base', cached: base.cached, ms: performance.now() - baseStarted })
  await prepareRoot(root)

  emit({ type: 'phase', phase: 'steps' })
  const ctx: StepContext = { root, context: o.context, formfile: f, signal: o.signal, onOutput: o.onOutput, workdir: '/' }
  const reports: StepReport[] = []
  const replayable = cachedSteps()
  for (const [index, step] of f.steps.entries()) {
    const text = describeStep(step)
    const started = performance.now()
    const tarball = layerFile(keys[index])
    emit({ type: 'step', index, total: f.steps.length, line: step.line, text, status: 'running' })
    if (index < replayable) {
      const meta = JSON.parse(await readFile(`${tarball}.json`, 'utf8')) as { removed: string[] }
      await applyLayer(root, meta, tarball)
    } else {
      o.onOutput?.(`--> line ${step.line}: ${text}\n`)
      const before = await snapshot(root)
      await applyStep(step, ctx)
      const changes = compare(before, await snapshot(root))
      // written under temporary names and renamed, so an interrupted build never leaves half a layer
      const tmp = `${tarball}.${process.pid}.tmp`
      await writeLayer(root, changes, tmp)
      await writeFile(`${tmp}.json`, JSON.stringify({ removed: changes.removed, changed: changes.changed.length }))
      await rename(tmp, tarball)
      await rename(`${tmp}.json`, `${tarball}.json`)
    }
    if (step.kind === 'workdir') ctx.workdir = step.path
    const ms = performance.now() - started
    reports.push({ line: step.line, text, cached: index < replayable, ms })
    emit({ type: 'step', index, total: f.steps.length, line: step.line, text, status: index < replayable ? 'cached' : 'ran', ms })
    if (o.signal?.aborted) throw o.signal.reason
  }

  emit({ type: 'phase', phase: 'finalize' })
  await finalizeRoot(root, f, o.signal)

  emit({ type: 'phase', phase: 'image' })
  const imageStarted = performance.now()
  const { image, manifest } = await publishImage(root, o.blobs, {
    buildId: o.buildId,
    name: f.name,
    owner: o.owner,
    resources: { vcpus: f.resources.vcpus, memoryMb: f.resources.memoryMb, diskGb: f.resources.diskGb, ...(f.resources.gpu ? { gpu: f.resources.gpu } : {}) },
    expose: f.expose,
    // what the image's users are, never their secrets
    users: f.users.map((u) => ({ username: u.username, sudo: u.sudo, shell: u.shell, groups: u.groups, sshKeys: u.sshAuthorizedKeys.length, password: Boolean(u.passwordHash) && !u.lockPasswd })),
    entrypoint: f.entrypoint ? f.entrypoint.argv : [],
    formfile: publicFormfile(f),
  })
  await writeFile(join(images, `${imageKey}.json`), JSON.stringify({ image }))
  emit({ type: 'image', image, ms: performance.now() - imageStarted, reused: false })
  await rm(root, { recursive: true, force: true })
  return { image, manifest, steps: reports, reused: false }
}
