// formnet timings in network namespaces (3 real node processes + 1 developer, wireguard-go):
// (a) `form manage join` + `formnet-up --detach` to the developer's first answered ping of a node;
// (b) a new (4th) node started until every existing node pings it.
// Baseline, measured in the same run: two namespaces whose wireguard-go interfaces are configured by
// hand through the UAPI, until the first answered ping: the floor any WireGuard mesh pays.
// Run: npm run build && npx tsx bench/formnet.ts   (root, wireguard-go, iproute2, ping)
import { existsSync } from 'node:fs'
import { generateWireGuardKeys } from '../plugins/net/lib/wireguard/keys.js'
import { uapiSet } from '../plugins/net/lib/wireguard/uapi.js'
import { FormnetLab } from '../tests/helpers/formnet-lab.js'
import { benchScope, median, recordResults } from './results.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const { scope, run, close } = benchScope('formnet')

/** Two namespaces, wireguard-go configured by hand, until the first ping is answered. */
async function baseline(): Promise<number> {
  let ms = 0
  await run(async () => {
    const lab = new FormnetLab(scope)
    const [a, b] = ['ba', 'bb'].map((p, i) => {
      const ns = lab.net.namespace(p)
      lab.net.plug(ns, lab.hub, `${lab.lan}.${i + 1}/24`)
      return ns
    })
    const t0 = performance.now()
    const keys = [generateWireGuardKeys(), generateWireGuardKeys()]
    const names = [lab.net.name('bwa'), lab.net.name('bwb')]
    for (const [i, ns] of [a, b].entries()) {
      lab.net.spawnIn(ns, ['wireguard-go', '-f', names[i]])
      const sock = `/var/run/wireguard/${names[i]}.sock`
      lab.net.ownSocket(sock)
      while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 10))
      const o = 1 - i
      await uapiSet(sock, { privateKey: keys[i].privateKey, listenPort: 51820, peers: [{ publicKey: keys[o].publicKey, endpoint: `${lab.lan}.${o + 1}:51820`, allowedIps: [`10.77.${o}.1/32`] }] })
      lab.net.run(['ip', '-n', ns, 'addr', 'add', `10.77.${i}.1/16`, 'dev', names[i]])
      lab.net.run(['ip', '-n', ns, 'link', 'set', names[i], 'up'])
    }
    if ((await lab.ping(a, '10.77.1.1', 30_000)) === undefined) throw new Error('baseline ping failed')
    ms = performance.now() - t0
  })
  return ms
}

async function formnet(): Promise<{ join: number; newNode: number }> {
  const out = { join: 0, newNode: 0 }
  await run(async () => {
    const lab = new FormnetLab(scope)
    const nodes = [await lab.addNode(), await lab.addNode(), await lab.addNode()]
    const addr = await Promise.all(nodes.map(async (n) => (await lab.status(n)).address))
    // the mesh is up first, so (a) measures the developer's part only
    for (const n of nodes.slice(1)) if ((await lab.ping(n.ns, addr[0], 60_000)) === undefined) throw new Error('mesh did not form')
    const dev = await lab.addDeveloper(nodes[0])
    const t0 = performance.now()
    lab.ok(await lab.form(dev, ['manage', 'join', '--interface', dev.interface]))
    lab.ok(await lab.form(dev, ['manage', 'formnet-up', '--detach', '--interval-ms', '1000']))
    if ((await lab.ping(dev.ns, addr[1], 60_000)) === undefined) throw new Error('developer ping failed')
    out.join = performance.now() - t0

    const t1 = performance.now()
    const fourth = await lab.addNode()
    const a4 = (await lab.status(fourth)).address
    for (const n of nodes) if ((await lab.ping(n.ns, a4, 60_000)) === undefined) throw new Error('new node unreachable')
    out.newNode = performance.now() - t1
  })
  return out
}

try {
  const base: number[] = []
  const joins: number[] = []
  const newNodes: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    base.push(await baseline())
    const f = await formnet()
    joins.push(f.join)
    newNodes.push(f.newNode)
    console.log(`round ${i + 1}: baseline ${base[i].toFixed(0)} ms, join to ping ${f.join.toFixed(0)} ms, new node reachable ${f.newNode.toFixed(0)} ms`)
  }
  const b = median(base)
  const body = [
    `Median of ${ROUNDS} rounds, 2 cores. Every host is a network namespace on one bridge; wireguard-go (userspace). Nodes: state heartbeat 2 s, peer reconciliation on every state change (and every 2 s). The developer syncs its peers every 1 s.`,
    '',
    '| measure | median ms | ratio to baseline |',
    '|---|---|---|',
    `| baseline: two hand-configured wireguard-go interfaces, start to first ping | ${b.toFixed(0)} | 1.00 |`,
    `| \`form manage join\` + \`formnet-up --detach\` to the first ping of a node | ${median(joins).toFixed(0)} | ${(median(joins) / b).toFixed(2)} |`,
    `| new node: \`form node start\` until all 3 existing nodes ping it | ${median(newNodes).toFixed(0)} | ${(median(newNodes) / b).toFixed(2)} |`,
    '',
    'The join path includes two CLI start-ups, unlocking the keystore (scrypt) to sign the join, and starting wireguard-go; the new-node path includes the node start-up (LevelDB, libp2p, DHT bootstrap) and the node record replicating to every node.',
  ].join('\n')
  console.log(body)
  recordResults('formnet: join and new-node reachability (bench/formnet.ts)', body)
} finally {
  await close()
}
