/**
 * The gossip topics a node takes part in, and the only ones it tracks: a stranger subscribing to
 * made-up topics cannot make it hold state for them.
 */
export const GOSSIP_TOPICS = { heartbeat: '/form/heartbeat/1.0.0' } as const
