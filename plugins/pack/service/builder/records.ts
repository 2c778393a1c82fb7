import { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import type { StateHandle, StateRecord } from '../../../state/index.js'
import { FINAL_STATES, parseBuildKey, parseBuildRequest, publicFailure, requestKey, statusKey, type BuildFailure, type BuildStatus } from '../../lib/builds.js'
import type { BuilderFiles } from './files.js'
import type { BuildJobs, Job } from './jobs.js'

export interface BuildRecordsDeps {
  state: Pick<StateHandle, 'get'>
  me: string
  jobs: Pick<BuildJobs, 'queue' | 'running' | 'pump' | 'writeStatus'>
  files: Pick<BuilderFiles, 'ownRequest'>
  /** why this node cannot build, or undefined */
  unavailable: string | undefined
  log: Logger
}

/**
 * What this node does with a record of `builds`: a request its owner wrote for this node is queued
 * (or refused, with a status saying why), a cancel stops it, a newer request replaces an older attempt.
 */
export function buildRecordHandler(deps: BuildRecordsDeps): (record: StateRecord) => Promise<void> {
  const { state, me, jobs, unavailable, log } = deps
  const { queue, running, writeStatus } = jobs
  const { ownRequest } = deps.files
  return async (record: StateRecord) => {
    const key = parseBuildKey(record.key)
    if (!key || key.node || record.author !== key.owner) return
    const parsed = parseBuildRequest(record.value)
    if (!('request' in parsed) || parsed.request.node !== me) return
    const req = parsed.request
    const id = requestKey(key.owner, key.build)
    const active = running.get(id) ?? queue.find((j) => requestKey(j.owner, j.build) === id)
    if (active && active.req.request === req.request) {
      if (req.cancel) active.abort.abort(new FormError('BUILD_CANCELLED', 'the build was cancelled by its owner'))
      if (req.cancel && queue.includes(active)) {
        queue.splice(queue.indexOf(active), 1)
        await writeStatus(active, { state: 'cancelled', finishedAt: Date.now() })
      }
      return
    }
    // a newer request replaces an older attempt of the same build
    if (active) {
      active.abort.abort(new FormError('BUILD_CANCELLED', 'replaced by a newer build of the same Formfile'))
      if (queue.includes(active)) queue.splice(queue.indexOf(active), 1)
    }
    const current = (await state.get('builds', statusKey(key.owner, key.build, me)))?.value as BuildStatus | undefined
    if (current?.request === req.request && FINAL_STATES.includes(current.state)) return
    const owned = req.cancel ? undefined : await ownRequest(key.owner, key.build, req)
    const stored = owned && 'formfile' in owned ? owned : undefined
    const job: Job = { owner: key.owner, build: key.build, req, stored: stored!, abort: new AbortController(), status: { request: req.request, name: req.name, state: 'queued', steps: [], queuedAt: Date.now(), updatedAt: Date.now() } }
    if (req.cancel) {
      await writeStatus(job, { state: 'cancelled', finishedAt: Date.now() })
      return
    }
    if (!stored) {
      log.warn('refused a build request', { owner: key.owner, build: key.build, code: (owned as BuildFailure).code })
      await writeStatus(job, { state: 'failed', error: owned as BuildFailure, finishedAt: Date.now() })
      return
    }
    if (unavailable) {
      await writeStatus(job, { state: 'failed', error: publicFailure('BUILDER_UNAVAILABLE', `this node cannot build images: ${unavailable}`), finishedAt: Date.now() })
      return
    }
    await writeStatus(job, { state: 'queued' })
    queue.push(job)
    jobs.pump()
  }
}
