import { Command, Option } from 'clipanion'
import { DeveloperCommand } from '../../manage/index.js'
import type { BuildView } from '../lib/follow.js'

export class PackBuildCommand extends DeveloperCommand {
  static override paths = [['pack', 'build']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Build the Formfile into a VM image on a node',
    details: `Validates the Formfile, packs the build context (the Formfile's directory, honouring .formignore; symbolic links and paths that leave the context are refused before anything is sent) as a tar.gz, uploads it signed by your wallet, and requests the build in state. Then it follows the build: the upload, the queue, the base image, one line per Formfile step (cached or ran, and its time) and the image. Without a terminal it prints plain lines.

Ctrl-C stops following, not the build; \`form pack status\` shows it later and \`form pack cancel\` stops it. The Formfile (with its password hashes) goes to the building node only, never into the replicated state.`,
    examples: [
      ['Build ./Formfile on the local node', '$0 pack build'],
      ['Build on a remote node and return at once', '$0 pack build --node http://10.0.0.1:3004 --detach'],
      ['Another Formfile, result as JSON', '$0 pack build -f deploy/Formfile --json'],
    ],
  })
  file = Option.String('-f,--file', { description: 'The Formfile (default ./Formfile); its directory is the build context' })
  detach = Option.Boolean('--detach', false, { description: 'Print the build id once the build is requested, and return' })
  maxContextMb = Option.String('--max-context-mb', '512', { description: 'Refuse a build context larger than this (MiB)' })
  profile = Option.String('--profile', { description: 'Resource limit profile to validate against: default or devnet' })

  async run() {
    const { FormError } = await import('../../../core/errors.js')
    const { loadFormfile, reportDiagnostics } = await import('./shared.js')
    const { printFormfile, buildId: computeBuildId } = await import('../lib/formfile/index.js')
    const { checkContext, packContext } = await import('../lib/context-archive.js')
    const { requestKey } = await import('../lib/builds.js')
    const { followBuild, buildFailure, describeBuild, fetchFailure, readBuild } = await import('../lib/follow.js')
    const { formatBytes } = await import('../../../core/output.js')
    const { describeStep } = await import('../lib/formfile/index.js')

    const maxMb = Number(this.maxContextMb)
    if (!Number.isInteger(maxMb) || maxMb < 1) throw new FormError('USAGE', `--max-context-mb must be a whole number of MiB, not "${this.maxContextMb}"`)
    const loaded = await loadFormfile(this.file, this.profile, true)
    const formfile = reportDiagnostics(this, loaded)
    const listing = await checkContext(loaded.contextDir, maxMb * 2 ** 20)
    const config = await this.userConfig()
    // unlocked once: it signs the upload, the request and the state record
    const signer = await this.signer()
    const client = await this.client({ url: this.nodeUrl(config), signer })
    const owner = config.address
    const build = computeBuildId(owner, formfile.name)

    const { Listr } = await import('listr2')
    const tty = Boolean((this.context.stdout as { isTTY?: boolean }).isTTY) && !this.json
    let view: BuildView = { owner, build }
    let settle: (() => void) | undefined
    const changed = () => settle?.()
    /** why following the build stopped (the node stopped answering): nothing would settle `until` again */
    let lost: unknown
    /** resolves once `done(view)` holds; rejects when the build failed or was cancelled first */
    const until = async (done: (v: BuildView) => boolean) => {
      for (;;) {
        if (done(view)) return
        if (lost) throw lost
        const s = view.status?.state
        // the output of the failing step is not in state: the builder node (this one) gives it to us
        if (s === 'failed') throw buildFailure(view, (await fetchFailure(client, view)).failure)
        if (s === 'cancelled') throw new FormError('BUILD_CANCELLED', `build ${build} was cancelled`)
        await new Promise<void>((r) => (settle = r))
      }
    }
    const follow = new AbortController()
    let following: Promise<BuildView> | undefined

    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
    const tasks = new Listr(
      [
        {
          title: `Upload the build context (${listing.files.length} files, ${formatBytes(listing.totalBytes)})`,
          task: async (_ctx: unknown, task: { title: string; output: string }) => {
            const { mkdtemp, rm } = await import('node:fs/promises')
            const { tmpdir } = await import('node:os')
            const { join } = await import('node:path')
            const dir = await mkdtemp(join(tmpdir(), 'form-context-'))
            try {
              const file = join(dir, 'context.tar.gz')
              await packContext(loaded.contextDir, listing, file)
              const up = await client.upload<{ context: string; size: number }>('/v1/pack/contexts', file, {
                contentType: 'application/gzip',
                onProgress: (sent, total) => (task.output = `${formatBytes(sent)} of ${formatBytes(total)}`),
              })
              const started = await client.post<{ request: string; name: string; buildId: string; node: string }>('/v1/pack/builds', { context: up.context, formfile: printFormfile(formfile), lines: formfile.steps.map((x) => x.line) })
              const existing = await readBuild(client, owner, build)
              const { loadOwnerOps } = await import('../../state/index.js')
              const { submitOwnerRecord } = await loadOwnerOps()
              const request = { name: started.name, node: started.node, request: started.request, context: up.context, requestedAt: Date.now() }
              await submitOwnerRecord(client, signer, 'builds', requestKey(owner, build), request, `build ${build}`, existing.record?.t)
              view = { owner, build, request }
              task.title = `Uploaded the build context (${formatBytes(up.size)} compressed); build ${build} requested on ${started.node}`
            } finally {
              await rm(dir, { recursive: true, force: true })
            }
          },
        },
        {
          title: 'Queued',
          skip: () => this.detach,
          task: async (_ctx: unknown, task: { title: string }) => {
            following = followBuild(client, owner, build, (v) => ((view = v), changed()), follow.signal)
            following.catch((error: unknown) => {
              lost = error
              changed()
            })
            await until((v) => Boolean(v.status && v.status.state !== 'queued'))
            task.title = 'Building'
          },
        },
        {
          title: 'Base image',
          skip: () => this.detach,
          task: async (_ctx: unknown, task: { title: string; output: string }) => {
            // a cold base takes minutes: its phase and package counts show while it is built
            const { describeBaseProgress } = await import('../lib/builder/base-progress.js')
            await until((v) => {
              const p = v.status?.baseProgress
              if (p && !v.status?.base) task.output = describeBaseProgress(p)
              return Boolean(v.status?.base) || v.status?.state === 'built'
            })
            const b = view.status?.base
            task.title = `Base image: ${b?.cached !== false ? 'cached' : 'built'}${b?.ms ? ` (${seconds(b.ms)})` : ''}`
          },
        },
        ...formfile.steps.map((step, index) => ({
          title: `line ${step.line}: ${describeStep(step)}`,
          skip: () => this.detach,
          task: async (_ctx: unknown, task: { title: string }) => {
            await until((v) => (v.status?.steps.length ?? 0) > index || v.status?.state === 'built')
            const s = view.status?.steps[index]
            task.title = `line ${step.line}: ${describeStep(step)} (${s?.cached !== false ? 'cached' : `ran ${seconds(s.ms)}`})`
          },
        })),
        {
          title: 'Image',
          skip: () => this.detach,
          task: async (_ctx: unknown, task: { title: string }) => {
            await until((v) => v.status?.state === 'built')
            task.title = `Image ${view.status?.image}${view.status?.reused ? ' (identical to the previous build)' : ''}`
          },
        },
      ],
      {
        renderer: 'default',
        fallbackRenderer: 'simple',
        fallbackRendererCondition: !tty,
        silentRendererCondition: this.json,
        exitOnError: true,
        registerSignalListeners: false,
        rendererOptions: { outputBar: 1, persistentOutput: false },
      } as never,
    )

    // Ctrl-C leaves the build running on the node.
    const onInterrupt = () => {
      follow.abort()
      this.context.stderr.write(`\nStopped following; the build goes on. See it with: form pack status --build-id ${build}\n`)
      process.exit(0)
    }
    process.once('SIGINT', onInterrupt)
    try {
      await tasks.run()
    } catch (error) {
      if (this.json && view.status) this.context.stdout.write(JSON.stringify({ buildId: build, status: view.status }, null, 2) + '\n')
      throw error
    } finally {
      follow.abort()
      process.off('SIGINT', onInterrupt)
    }
    if (this.detach) {
      this.print({ buildId: build, node: view.request?.node, request: view.request?.request, state: 'requested' }, () => `build ${build} requested; follow it with: form pack status --build-id ${build}`)
      return
    }
    this.print({ buildId: build, node: view.request?.node, status: view.status }, () => `\n${describeBuild(view)}`)
  }
}
