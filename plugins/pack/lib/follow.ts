import type { NodeClient } from '../../../core/client.js'
import { FormError } from '../../../core/errors.js'
import { loadFollow, type StateRecord } from '../../state/index.js'
import { describeBaseProgress } from './builder/base-progress.js'
import { FINAL_STATES, parseBuildRequest, requestKey, statusKey, type BuildRequest, type BuildStatus, type PrivateFailure } from './builds.js'

/** What state says of one build: the owner's request and the builder's report of that request. */
export interface BuildView {
  owner: string
  build: string
  request?: BuildRequest
  record?: StateRecord
  status?: BuildStatus
}

async function getRecord(client: NodeClient, collection: string, key: string): Promise<StateRecord | undefined> {
  try {
    return await client.get<StateRecord>(`/v1/state/records/${collection}/${key}`)
  } catch (error) {
    if ((error as FormError).code === 'STATE_NOT_FOUND') return undefined
    throw error
  }
}

export async function readBuild(client: NodeClient, owner: string, build: string): Promise<BuildView> {
  const record = await getRecord(client, 'builds', requestKey(owner, build))
  const request = requestOf(record)
  const statusRecord = request ? await getRecord(client, 'builds', statusKey(owner, build, request.node)) : undefined
  return buildView(owner, build, record, statusRecord)
}

/** The owner's build request a record holds, when it holds a valid one. */
function requestOf(record: StateRecord | undefined): BuildRequest | undefined {
  const parsed = record ? parseBuildRequest(record.value) : undefined
  return parsed && 'request' in parsed ? parsed.request : undefined
}

function buildView(owner: string, build: string, record: StateRecord | undefined, statusRecord: StateRecord | undefined): BuildView {
  const request = requestOf(record)
  const status = statusRecord?.value as BuildStatus | undefined
  // a report of an earlier attempt says nothing about this one
  return { owner, build, request, record, status: status && status.request === request?.request ? status : undefined }
}

/**
 * Follows the build over the node's watch stream until it ends (or `signal` aborts); calls
 * `onChange` with every new view.
 */
export async function followBuild(client: NodeClient, owner: string, build: string, onChange: (v: BuildView) => void, signal?: AbortSignal): Promise<BuildView> {
  const { followRecords } = await loadFollow()
  const key = requestKey(owner, build)
  let last: string | undefined
  let view = buildView(owner, build, undefined, undefined)
  // the prefix also matches other builds whose id starts with this one's: the keys are looked up exactly
  for await (const records of followRecords(client, 'builds', { prefix: key, signal })) {
    const record = records.get(key)
    const node = requestOf(record)?.node
    view = buildView(owner, build, record, node ? records.get(statusKey(owner, build, node)) : undefined)
    const text = JSON.stringify(view.status ?? null)
    if (text !== last) {
      last = text
      onChange(view)
    }
    if (view.status && FINAL_STATES.includes(view.status.state)) return view
  }
  return view
}

/**
 * The failed build's output, which only its builder node holds and serves to its owner: `client`
 * must be signed by the owner and talk to that node. Undefined when the node has none (say why in `note`).
 */
export async function fetchFailure(client: NodeClient, v: BuildView): Promise<{ failure?: PrivateFailure; note?: string }> {
  if (!v.request || v.status?.state !== 'failed') return {}
  try {
    const r = await client.post<{ failure: PrivateFailure | null }>('/v1/pack/builds/failure', { build: v.build, request: v.request.request })
    return r.failure ? { failure: r.failure } : { note: 'the builder node keeps no output for this failure' }
  } catch (error) {
    return { note: `the output is on the builder node ${v.request.node}, which did not give it (${(error as Error).message}); ask it with --node <its API URL>` }
  }
}

const outputTail = (output: string | undefined) => (output?.trim() ? output.trimEnd().split('\n').slice(-20) : [])

export function describeBuild(v: BuildView, detail: { failure?: PrivateFailure; note?: string } = {}): string {
  if (!v.request) return `build ${v.build}: no request in state`
  const s = v.status
  const lines = [`build   ${v.build}`, `name    ${v.request.name}`, `node    ${v.request.node}`, `state   ${s?.state ?? 'requested (the node has not reported yet)'}`]
  if (s?.image) lines.push(`image   ${s.image}${s.reused ? ' (identical to an earlier build)' : ''}`)
  if (s?.state === 'building' && s.phase) lines.push(`phase   ${s.phase}`)
  if (s?.base) lines.push(`base    ${s.base.cached ? 'cached' : 'built'} (${(s.base.ms / 1000).toFixed(1)} s)`)
  else if (s?.baseProgress) lines.push(`base    ${s.state === 'building' ? 'building' : 'stopped while'}: ${describeBaseProgress(s.baseProgress)}`)
  for (const step of s?.steps ?? []) lines.push(`  line ${String(step.line).padStart(3)}  ${step.cached ? 'cached' : `ran ${(step.ms / 1000).toFixed(1)} s`}  ${step.text}`)
  if (s?.current && s.state === 'building') lines.push(`  line ${String(s.current.line).padStart(3)}  running  ${s.current.text}`)
  if (s?.error) {
    lines.push(`error   ${s.error.code}: ${s.error.message}`)
    if (s.error.instruction) lines.push(s.error.line ? `at      line ${s.error.line}: ${s.error.instruction}` : `command ${s.error.instruction}`)
    const tail = outputTail(detail.failure?.output)
    if (tail.length) lines.push('output (last lines, from the builder node):', ...tail.map((l) => `  ${l}`))
    else if (detail.note) lines.push(`output  ${detail.note}`)
  }
  if (s?.finishedAt && s.startedAt) lines.push(`took    ${((s.finishedAt - s.startedAt) / 1000).toFixed(1)} s`)
  return lines.join('\n')
}

export function buildFailure(v: BuildView, failure?: PrivateFailure): FormError {
  const e = v.status?.error
  const tail = outputTail(failure?.output).map((l) => `\n${l}`).join('')
  return new FormError(e?.code ?? 'BUILD_FAILED', `build ${v.build} failed: ${e?.message ?? 'no reason given'}${tail}`, {
    hint: `the whole log: form pack logs --build-id ${v.build}`,
    details: { status: v.status, ...(failure ? { output: failure.output } : {}) },
  })
}
