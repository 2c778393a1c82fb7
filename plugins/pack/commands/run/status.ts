import { FormError } from '../../../../core/errors.js'
import { HEX64 } from '../../../../core/patterns.js'
import { loadOwnerOps } from '../../../state/index.js'
import { requestKey, FINAL_STATES } from '../../lib/builds.js'
import { readBuild, describeBuild, fetchFailure, followBuild } from '../../lib/follow.js'
import { formfileBuildId } from './shared.js'
import type { BuildCommand, PackStatusCommand, PackLogsCommand, PackCancelCommand } from '../status.js'

export async function target(cmd: BuildCommand) {
  const config = await cmd.userConfig()
  let build = cmd.buildId
  if (build === undefined) build = await formfileBuildId(cmd, config.address, cmd.file)
  if (!HEX64.test(build)) throw new FormError('USAGE', `--build-id "${build}" is not a build id (64 hex digits)`, { hint: 'the build id is printed by `form pack build` and `form pack dry-run`' })
  return { config, build, owner: config.address }
}

export async function packStatus(cmd: PackStatusCommand) {
  const { config, build, owner } = await target(cmd)
  const client = await cmd.client({ url: cmd.nodeUrl(config) })
  const view = await readBuild(client, owner, build)
  if (!view.request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build}`, { hint: 'start one with `form pack build`' })
  let detail: Awaited<ReturnType<typeof fetchFailure>> = {}
  if (view.status?.state === 'failed') {
    const here = (await client.get<{ address: string }>('/v1/state/info')).address
    if (here !== view.request.node) detail = { note: `the output is on the builder node ${view.request.node}; ask it with --node <its API URL>` }
    else detail = await cmd.signedClient(config, cmd.nodeUrl(config)).then((signed) => fetchFailure(signed, view), (error: Error) => ({ note: `unlock your wallet to fetch it from the builder node (${error.message})` }))
  }
  cmd.print({ buildId: build, owner, request: view.request, status: view.status ?? null, ...(detail.failure ? { failure: detail.failure } : {}), ...(detail.note ? { note: detail.note } : {}) }, () => describeBuild(view, detail))
  return view.status?.state === 'failed' ? 1 : 0
}

export async function packLogs(cmd: PackLogsCommand) {
  const { config, build, owner } = await target(cmd)
  const client = await cmd.signedClient(config, cmd.nodeUrl(config))
  if (cmd.followFlag) {
    // right after `form pack build --detach` the builder may not have taken the build yet: wait until it has
    const taken = new AbortController()
    await followBuild(client, owner, build, (v) => v.status && taken.abort(), taken.signal)
  }
  let offset = 0
  for (;;) {
    // following, the node answers when there is more (or the build ended), within 20 s
    const r = await client.post<{ text: string; offset: number; done: boolean }>('/v1/pack/logs', { build, offset, ...(cmd.followFlag ? { waitMs: 20_000 } : {}) })
    if (r.text) cmd.context.stdout.write(r.text)
    offset = r.offset
    if (!cmd.followFlag || r.done) return
  }
}

export async function packCancel(cmd: PackCancelCommand) {
  const { config, build, owner } = await target(cmd)
  const signer = await cmd.signer()
  const client = await cmd.client({ url: cmd.nodeUrl(config), signer })
  const view = await readBuild(client, owner, build)
  if (!view.request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build}`)
  if (view.status && FINAL_STATES.includes(view.status.state)) {
    cmd.print({ buildId: build, state: view.status.state, cancelled: false }, () => `build ${build} already ended (${view.status!.state}); nothing to cancel`)
    return
  }
  const { submitOwnerRecord } = await loadOwnerOps()
  await submitOwnerRecord(client, signer, 'builds', requestKey(owner, build), { ...view.request, cancel: true }, `build ${build}`, view.record?.t)
  cmd.print({ buildId: build, cancelled: true }, () => `build ${build}: cancellation requested`)
}
