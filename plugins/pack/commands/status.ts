import { Command, Option } from 'clipanion'
import { DeveloperCommand } from '../../manage/index.js'
import { HEX64 } from '../../../core/patterns.js'

/** Base of the commands about one of your builds: --build-id, else the build of ./Formfile. */
export abstract class BuildCommand extends DeveloperCommand {
  buildId = Option.String('--build-id', { description: 'The build (default: the build of the Formfile in this directory)' })
  file = Option.String('-f,--file', { description: 'The Formfile whose build is meant (default ./Formfile)' })

  async target() {
    const { FormError } = await import('../../../core/errors.js')
    const config = await this.userConfig()
    let build = this.buildId
    if (build === undefined) build = await (await import('./shared.js')).formfileBuildId(this, config.address, this.file)
    if (!HEX64.test(build)) throw new FormError('USAGE', `--build-id "${build}" is not a build id (64 hex digits)`, { hint: 'the build id is printed by `form pack build` and `form pack dry-run`' })
    return { config, build, owner: config.address }
  }
}

export class PackStatusCommand extends BuildCommand {
  static override paths = [['pack', 'status']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Show the state of a build',
    details: 'Reads the build request and the building node\'s report from state: queued, building (with the current step), built (with the image), failed (with the failing line and its code) or cancelled. The output of a failed step is not in state (it can hold secrets): when the node this command talks to built it, the command asks it for the output, signed by your wallet.',
    examples: [
      ['The build of ./Formfile', '$0 pack status'],
      ['A build by id, as JSON', '$0 pack status --build-id <id> --json'],
    ],
  })

  async run() {
    const { FormError } = await import('../../../core/errors.js')
    const { readBuild, describeBuild, fetchFailure } = await import('../lib/follow.js')
    const { config, build, owner } = await this.target()
    const client = await this.client({ url: this.nodeUrl(config) })
    const view = await readBuild(client, owner, build)
    if (!view.request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build}`, { hint: 'start one with `form pack build`' })
    let detail: Awaited<ReturnType<typeof fetchFailure>> = {}
    if (view.status?.state === 'failed') {
      const here = (await client.get<{ address: string }>('/v1/state/info')).address
      if (here !== view.request.node) detail = { note: `the output is on the builder node ${view.request.node}; ask it with --node <its API URL>` }
      else detail = await this.signedClient(config, this.nodeUrl(config)).then((signed) => fetchFailure(signed, view), (error: Error) => ({ note: `unlock your wallet to fetch it from the builder node (${error.message})` }))
    }
    this.print({ buildId: build, owner, request: view.request, status: view.status ?? null, ...(detail.failure ? { failure: detail.failure } : {}), ...(detail.note ? { note: detail.note } : {}) }, () => describeBuild(view, detail))
    return view.status?.state === 'failed' ? 1 : 0
  }
}

export class PackLogsCommand extends BuildCommand {
  static override paths = [['pack', 'logs']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: "Print a build's log (what its steps printed)",
    details: 'The log stays on the node that built it and only its owner may read it (the request is signed by your wallet; another wallet is refused with BUILD_NOT_OWNER): ask that node (--node) when it is not your default one. With -f, follows until the build ends.',
    examples: [
      ['The log of the build of ./Formfile', '$0 pack logs'],
      ['Follow a build', '$0 pack logs --build-id <id> -f'],
    ],
  })
  // -f is --follow here (as in tail -f and `form node logs`); the Formfile is --file only
  override file = Option.String('--file', { description: 'The Formfile whose build is meant (default ./Formfile)' })
  followFlag = Option.Boolean('-f,--follow', false, { description: 'Keep printing until the build ends' })

  async run() {
    const { config, build, owner } = await this.target()
    const client = await this.signedClient(config, this.nodeUrl(config))
    if (this.followFlag) {
      // right after `form pack build --detach` the builder may not have taken the build yet: wait until it has
      const { followBuild } = await import('../lib/follow.js')
      const taken = new AbortController()
      await followBuild(client, owner, build, (v) => v.status && taken.abort(), taken.signal)
    }
    let offset = 0
    for (;;) {
      // following, the node answers when there is more (or the build ended), within 20 s
      const r = await client.post<{ text: string; offset: number; done: boolean }>('/v1/pack/logs', { build, offset, ...(this.followFlag ? { waitMs: 20_000 } : {}) })
      if (r.text) this.context.stdout.write(r.text)
      offset = r.offset
      if (!this.followFlag || r.done) return
    }
  }
}

export class PackCancelCommand extends BuildCommand {
  static override paths = [['pack', 'cancel']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Cancel a queued or running build',
    details: 'Marks your build request cancelled in state; the building node stops it (the step running is killed, nothing is kept) and reports it cancelled.',
    examples: [['Cancel the build of ./Formfile', '$0 pack cancel']],
  })

  async run() {
    const { FormError } = await import('../../../core/errors.js')
    const { readBuild } = await import('../lib/follow.js')
    const { requestKey, FINAL_STATES } = await import('../lib/builds.js')
    const { config, build, owner } = await this.target()
    const signer = await this.signer()
    const client = await this.client({ url: this.nodeUrl(config), signer })
    const view = await readBuild(client, owner, build)
    if (!view.request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build}`)
    if (view.status && FINAL_STATES.includes(view.status.state)) {
      this.print({ buildId: build, state: view.status.state, cancelled: false }, () => `build ${build} already ended (${view.status!.state}); nothing to cancel`)
      return
    }
    const { loadOwnerOps } = await import('../../state/index.js')
    const { submitOwnerRecord } = await loadOwnerOps()
    await submitOwnerRecord(client, signer, 'builds', requestKey(owner, build), { ...view.request, cancel: true }, `build ${build}`, view.record?.t)
    this.print({ buildId: build, cancelled: true }, () => `build ${build}: cancellation requested`)
  }
}
