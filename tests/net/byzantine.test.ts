import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createClient } from '../../core/client.js'
import { makeEnv, startNode, until, type FormEnv } from '../helpers/form.js'

const PEER = fileURLToPath(new URL('./fixtures/byzantine-peer.ts', import.meta.url))

function runPeer(target: string, rounds: number): Promise<{ round: number; sent?: boolean; error?: string }[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', PEER, target, String(rounds)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('exit', () => resolve(out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))))
  })
}

t.test('a peer that pushes forged and unauthorized operations is rejected and banned; honest nodes stay identical', async (t) => {
  const a = await makeEnv(t)
  const nodeA = await startNode(a)
  t.teardown(() => nodeA.stop('SIGKILL'))
  const addrA = (await createClient({ socket: a.socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const b: FormEnv = await makeEnv(t, { FORM_BOOTSTRAP: addrA })
  const nodeB = await startNode(b)
  t.teardown(() => nodeB.stop('SIGKILL'))

  // max_invalid_ops is 20 by default: 2 bad ops per round, so the ban comes with round 11
  const rounds = await runPeer(addrA, 20)
  t.ok(rounds.slice(0, 10).every((r) => r.sent), 'the first rounds get through to the store, which rejects them', { rounds: rounds.slice(0, 10) })
  t.equal(rounds.length, 20, 'the liar kept trying after the ban')

  // What the peer sees after the ban races with the hang-up (a write can land in a socket the node is
  // closing), so the node's own counters are the truth: it processed nothing more once it banned.
  // The node verifies what it received on its own time (worker threads, up to 4 streams queued): on a
  // loaded machine the last rounds are still being processed when the liar exits.
  const readSync = () => createClient({ socket: a.socket }).get<{ bans: number; invalid: Record<string, number> }>('/v1/state/sync')
  const sync = await until('node A to ban the liar', async () => ((await readSync()).bans > 0 ? readSync() : undefined), 60_000).catch(readSync)
  t.equal(sync.bans, 1, 'one peer banned', { rounds })
  const counted = Object.values(sync.invalid)[0]
  t.ok(counted > 20 && counted <= 24, `invalid operations processed: ${counted} of the 40 sent (the ban stops the rest; at most one batch was in flight)`)
  const info = await createClient({ socket: a.socket }).get<{ rejected: Record<string, Record<string, number>> }>('/v1/state/info')
  const counts = Object.values(info.rejected).find((c) => c.OP_BAD_SIGNATURE)
  t.ok(counts && counts.OP_BAD_SIGNATURE >= 10 && counts.OP_UNAUTHORIZED >= 10, `rejections by reason: ${JSON.stringify(counts)}`)

  const records = async (fe: FormEnv) => {
    const c = createClient({ socket: fe.socket })
    return JSON.stringify([(await c.get('/v1/state/records/accounts')).records, (await c.get('/v1/state/records/dns')).records])
  }
  t.equal(await records(a), JSON.stringify([[], []]), 'nothing the liar sent was stored')
  t.equal(await records(b), await records(a), 'the honest nodes agree')
})
