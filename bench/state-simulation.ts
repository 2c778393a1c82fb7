// What the state layer costs each node of a 50-, 200- and 1,000-node network, by simulation: the
// replication rules of plugins/state/service/sync.ts and gossipsub's forwarding, run over random
// connection graphs, with sizes and per-hop latency taken from measured runs (bench/RESULTS.md).
// Nothing here is a measurement of 1,000 real nodes; the inputs and rules are listed in the output.
// Run: npx tsx bench/state-simulation.ts
import { recordResults } from './results.js'

// Inputs measured elsewhere
/** stored operation, average (issue 18's 8-node measurement: 1.16 KB) */
const OP_BYTES = 1160
/** heartbeat message (bench/p2p-propagation.ts) */
const HEARTBEAT_BYTES = 460
/** one hop: post, verify, store on a peer (single-write p50 to 5 nodes, bench/p2p-propagation.ts) */
const HOP_MS = 21
// The rules (defaults in code)
const HEARTBEAT_INTERVAL_S = 10
const MAX_CONNECTIONS = 64 // [net] max_connections
const ANNOUNCE_FANOUT = 8
const ANNOUNCE_GRACE_MS = 1500
/** a shorter grace, to show what the relay hop costs */
const SHORT_GRACE_MS = 300
const ANTI_ENTROPY_MS = 30_000
const MESH_D = 6 // gossipsub D
const MESH_D_HIGH = 12 // gossipsub Dhi
/** records each node keeps in state at rest: its node record, its admission, its formnet subnet claim */
const RECORDS_PER_NODE = 3
/** node records rewritten a day (content changes only: addresses, capacity), an assumption */
const RECORD_CHANGES_PER_NODE_PER_DAY = 4
const TRIALS = 20

let seed = 42
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
const pick = <T>(items: T[], n: number): T[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out.slice(0, n)
}

/** Random connections: each node dials peers until it has min(n - 1, MAX_CONNECTIONS / 2), none beyond MAX_CONNECTIONS. */
function connections(n: number): Set<number>[] {
  const links = Array.from({ length: n }, () => new Set<number>())
  const want = Math.min(n - 1, MAX_CONNECTIONS / 2)
  for (let a = 0; a < n; a++)
    for (let tries = 0; links[a].size < want && tries < 20 * n; tries++) {
      const b = Math.floor(random() * n)
      if (b !== a && links[b].size < MAX_CONNECTIONS) links[a].add(b), links[b].add(a)
    }
  return links
}

/** gossipsub's mesh over the connections: each node grafts peers until it has D, none beyond Dhi. */
function mesh(links: Set<number>[]): Set<number>[] {
  const m = links.map(() => new Set<number>())
  for (let a = 0; a < links.length; a++)
    for (const b of pick([...links[a]], links[a].size)) {
      if (m[a].size >= MESH_D) break
      if (m[b].size < MESH_D_HIGH) m[a].add(b), m[b].add(a)
    }
  return m
}

/** Earliest arrival at every node by Dijkstra over `edges(node, time)`. */
function spread(n: number, from: number, edges: (node: number) => [number, number][]): number[] {
  const at = new Array<number>(n).fill(Infinity)
  at[from] = 0
  const done = new Array<boolean>(n).fill(false)
  for (;;) {
    let u = -1
    for (let i = 0; i < n; i++) if (!done[i] && at[i] < Infinity && (u === -1 || at[i] < at[u])) u = i
    if (u === -1) return at
    done[u] = true
    for (const [v, cost] of edges(u)) if (at[u] + cost < at[v]) at[v] = at[u] + cost
  }
}

/**
 * A write on `author`: pushed to its connections; every other holder announces it to 8, who fetch it
 * after the grace; and every holder reconciles with each connection once an anti-entropy interval, at
 * a random phase.
 */
function writeToAll(links: Set<number>[], author: number, graceMs: number): number {
  const at = spread(links.length, author, (u) => [
    ...(u === author ? [...links[u]].map((v): [number, number] => [v, HOP_MS]) : pick([...links[u]], ANNOUNCE_FANOUT).map((v): [number, number] => [v, HOP_MS + graceMs + 2 * HOP_MS])),
    ...[...links[u]].map((v): [number, number] => [v, random() * ANTI_ENTROPY_MS + 2 * HOP_MS]),
  ])
  return Math.max(...at)
}

/** Copies of one heartbeat each node receives: the author sends to all its peers, each node forwards once to its mesh. */
function heartbeatCopies(links: Set<number>[], m: Set<number>[], author: number): number {
  const n = links.length
  const at = spread(n, author, (u) => [...(u === author ? links[u] : m[u])].map((v) => [v, HOP_MS]))
  let copies = 0
  for (let u = 0; u < n; u++) for (const v of u === author ? links[u] : m[u]) if (v !== author && at[u] < Infinity) copies++
  return copies / (n - 1)
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]
const rows: string[] = []
for (const n of [50, 200, 1000]) {
  const latencies: number[] = []
  const shortGrace: number[] = []
  const copies: number[] = []
  for (let trial = 0; trial < TRIALS; trial++) {
    const links = connections(n)
    const m = mesh(links)
    const author = Math.floor(random() * n)
    const state = seed
    latencies.push(writeToAll(links, author, ANNOUNCE_GRACE_MS))
    seed = state // the same announcement targets and phases
    shortGrace.push(writeToAll(links, author, SHORT_GRACE_MS))
    copies.push(heartbeatCopies(links, m, author))
  }
  const copiesAvg = copies.reduce((a, b) => a + b) / copies.length
  const storedOps = n * RECORDS_PER_NODE
  const heartbeatKiBs = ((n / HEARTBEAT_INTERVAL_S) * copiesAvg * HEARTBEAT_BYTES) / 1024
  // each record change reaches each node once, plus up to 8 announcements (32-byte hashes) from relays
  const opsPerDay = n * RECORD_CHANGES_PER_NODE_PER_DAY
  const opBytesPerDay = opsPerDay * (OP_BYTES + ANNOUNCE_FANOUT * 32)
  rows.push(
    `| ${n} | ${storedOps} | ${((storedOps * OP_BYTES) / 2 ** 20).toFixed(2)} | 0 | ${((opBytesPerDay / 2 ** 20)).toFixed(1)} | ${copiesAvg.toFixed(1)} | ${heartbeatKiBs.toFixed(1)} | ${((heartbeatKiBs * 86_400) / 2 ** 20).toFixed(1)} | ${quantile(latencies, 0.5).toFixed(0)} | ${quantile(latencies, 0.99).toFixed(0)} | ${quantile(shortGrace, 0.5).toFixed(0)} / ${quantile(shortGrace, 0.99).toFixed(0)} |`,
  )
  console.log(rows.at(-1))
}
const body = [
  `A simulation, not a measurement: ${TRIALS} random networks per size. Each node keeps random connections (dials up to ${MAX_CONNECTIONS / 2}, accepts up to ${MAX_CONNECTIONS}, [net] max_connections); gossipsub's mesh grafts ${MESH_D} peers (at most ${MESH_D_HIGH}). A write is pushed by its author's node to its connections; every node that stores it announces it to ${ANNOUNCE_FANOUT} random connections, which fetch it ${ANNOUNCE_GRACE_MS} ms after the first announcement if it has not arrived, and each node reconciles with each connection every ${ANTI_ENTROPY_MS / 1000} s at a random phase (sync.ts). A heartbeat (every ${HEARTBEAT_INTERVAL_S} s, ${HEARTBEAT_BYTES} bytes) goes from its author to all its connections and from every other node once to its mesh peers. Inputs measured on real nodes: ${OP_BYTES}-byte operations, ${HOP_MS} ms per hop (single-write p50 to 5 nodes). Assumed: ${RECORDS_PER_NODE} records per node at rest (node record, admission, formnet claim) and ${RECORD_CHANGES_PER_NODE_PER_DAY} node-record changes per node a day; developers' builds, instances and names add to both in proportion to their use.`,
  '',
  `| nodes | operations stored per node | MiB stored per node | stored operations added per day (compaction) | MiB of operations received per node per day | heartbeat copies received per node | heartbeat KiB/s per node | heartbeat GiB per node per day | write-to-all p50 (ms) | write-to-all p99 (ms) | p50 / p99 with a ${SHORT_GRACE_MS} ms grace |`,
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
  `Write-to-all at this scale is set by the relay hop: a node the author's node is not connected to waits the ${ANNOUNCE_GRACE_MS} ms grace, and one no announcement reaches waits for anti-entropy. Heartbeats cost each node about 8 copies of every node's heartbeat (the author's sends to all its connections plus the mesh), so their bandwidth grows with the node count.`,
  '',
  'Before compaction and off-log heartbeats (issue 18): 1,000 nodes beating every 10 s stored 8.6 million operations (~10 GB) a day on every node.',
].join('\n')
console.log(body)
recordResults('State at 50, 200 and 1,000 nodes, simulated (bench/state-simulation.ts)', body)
