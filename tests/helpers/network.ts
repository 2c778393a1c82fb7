import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { admit, joinEnv, makeEnv, startNode, stateAddress, until, type FormEnv, type NodeProcess } from './form.js'

interface Teardown {
  testdir(): string
  teardown(fn: () => unknown): void
}

export interface TestNetwork {
  envs: FormEnv[]
  nodes: NodeProcess[]
  /** state addresses, in start order (the first is the genesis admin) */
  addresses: string[]
  /** libp2p multiaddr of the first node */
  boot: string
}

/**
 * `count` real nodes on loopback: the first is the genesis admin (no admins configured), the others
 * join with it as admin and are admitted by it. `toml` is written as every node's operator config.
 * Resolves once every node (of `waitFor`) holds every other's node record.
 */
export async function startNetwork(
  t: Teardown,
  count: number,
  toml = '',
  extraEnv: (i: number) => NodeJS.ProcessEnv = () => ({}),
  /** which nodes to wait for, and wait on (a node whose clock is off holds, or is held by, the others for a while) */
  waitFor: (i: number) => boolean = () => true,
): Promise<TestNetwork> {
  const envs: FormEnv[] = []
  const nodes: NodeProcess[] = []
  t.teardown(async () => {
    for (const n of nodes) await n.stop('SIGKILL')
  })
  const start = async (extra: NodeJS.ProcessEnv, i: number) => {
    const fe = await makeEnv(t, { ...extra, ...extraEnv(i) })
    if (toml) await writeFile(join(fe.configDir, 'operator.toml'), toml)
    envs.push(fe)
    nodes.push(await startNode(fe))
    return fe
  }
  const first = await start({}, 0)
  const boot = (await createClient({ socket: first.socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const network = await joinEnv(first)
  for (let i = 1; i < count; i++) await start({ ...network, FORM_BOOTSTRAP: boot }, i)
  const addresses = await Promise.all(envs.map(stateAddress))
  await admit(first, ...addresses.slice(1))
  await until('every node record on every node', async () => {
    for (const [i, fe] of envs.entries()) {
      if (!waitFor(i)) continue
      const keys = (await createClient({ socket: fe.socket }).get<{ records: { key: string }[] }>('/v1/state/records/nodes')).records.map((r) => r.key)
      if (!addresses.every((a, j) => !waitFor(j) || keys.includes(a))) return undefined
    }
    return true
  })
  return { envs, nodes, addresses, boot }
}

export const api = (fe: FormEnv) => createClient({ socket: fe.socket })

/** node address -> when `fe`'s node last received a new record from it (its clock), and its clock. */
export async function liveness(fe: FormEnv): Promise<{ now: number; seen: Record<string, number> }> {
  return api(fe).get('/v1/state/liveness')
}

/**
 * Waits until `fe`'s node has received fresh node records from each of `addresses` after `since`
 * (its own clock): they are heartbeating and it is hearing them.
 */
export async function heartbeatsAfter(fe: FormEnv, addresses: string[], since: number, timeoutMs = 30_000): Promise<Record<string, number>> {
  return until(
    `fresh heartbeats from ${addresses.length} node(s)`,
    async () => {
      const l = await liveness(fe)
      return addresses.every((a) => (l.seen[a] ?? 0) > since) ? l.seen : undefined
    },
    timeoutMs,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message} (after ${since}; ${fe.socket} saw ${JSON.stringify(await liveness(fe).catch(() => undefined))})`)
  })
}
