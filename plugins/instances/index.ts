import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { instanceCollections } from './lib/collections.js'

/**
 * The instance domain, in one place: the records (`instances/<owner>/<id>/desired` and
 * `…/observed/<node>`), their keys and schema, host assignment and room rules, placement, and the
 * owner's views of them. `node` (which runs instances), `pack` (which ships them) and `manage`
 * (which lists and changes them) all use it through this file; it has no commands or services.
 */
export default definePlugin({
  name: 'instances',
  version: '0.1.0',
  apiVersion: API_VERSION,
  collections: instanceCollections,
  description: 'the instance domain: records, host assignment, placement and views (no commands)',
})

/** The instance records in state (light: Node built-ins only). */
export { desiredKey, observedKey, parseDesired, parseInstanceKey, DEFAULT_FAILOVER_MS, DEFAULT_INSTANCE_RESOURCES, DESIRED_STATES, FAILOVER_S, MAX_CANDIDATES, REPLICAS, wholeWithin } from './lib/records.js'
export type { DesiredInstance, DesiredState, HealthReport, HealthState, InstanceKey, ObservedInstance, ObservedState, Resources, StopReport } from './lib/records.js'
/** Which node hosts each instance now, and the room rules failover and shipping share. */
export { desiredEntries, hasQuorum, hostsOf, livenessFrom, rendezvous, roomsOf, shortOf, usageOn, type DesiredEntry, type HostsOptions, type Liveness, type MemberRoom } from './lib/hosts.js'
/** Placement of a build's replicas on nodes (what `form pack ship` plans with). */
export { candidatesFrom, place, type GpuNeed, type NodeCandidate, type PlacementRequest, type PlacementResult, type SchedulerOptions } from './lib/scheduler.js'
export { instanceCollections } from './lib/collections.js'
/** An owner's instances as state tells them, followed, selected and written (loaded on demand: it reads a node over its API). */
export type { ConsoleChunk, InstanceView } from './lib/views.js'
export const loadInstanceViews = () => import('./lib/views.js')
