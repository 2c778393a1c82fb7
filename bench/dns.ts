// The node's DNS latency as an instance sees it, against a direct query to the upstream resolver in
// the same run. Network namespaces on one L2 segment: an instance stand-in (.10), the node's DNS
// server (the real DnsServer over a real state store, .1) and the upstream resolver (.53, a small
// authoritative server). Each figure is N sequential queries from the instance namespace:
// direct to upstream; via the node, each name new (a cache miss: forwarded); via the node, one
// name again and again (cache hits); a `.fog` replica name (answered from state).
// Run: npx tsx bench/dns.ts   (root, iproute2)   BENCH_QUERIES=2000 by default
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { StateStore } from '../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys } from '../plugins/state/lib/identity.js'
import { allCollections } from '../tests/helpers/collections.js'
import { ROOT } from '../tests/helpers/form.js'
import { NetnsLab } from '../tests/helpers/netns.js'
import { benchScope, recordResults } from './results.js'

const N = Number(process.env.BENCH_QUERIES ?? 2000)
const FIXTURE = join(ROOT, 'tests', 'net', 'fixtures', 'dns-node.ts')
const run = promisify(execFile)
const { scope, run: round, close } = benchScope('dns')

const pct = (values: number[], p: number) => {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

const rows: { what: string; p50: number; p99: number }[] = []
await round(async () => {
  const lab = new NetnsLab(scope)
  const [owner, node] = [authorFromKeys(generateAuthorKeys()), authorFromKeys(generateAuthorKeys())]
  const dir = join(scope.testdir(), 'state')
  const store = await StateStore.open({ collections: allCollections, dir })
  await store.put(owner, 'instances', `${owner.address}/web-1/desired`, { buildId: 'b', image: 'a'.repeat(64), node: node.address, state: 'running', name: 'web-1' })
  await store.put(node, 'instances', `${owner.address}/web-1/observed/${node.address}`, { state: 'running', ip: '198.18.7.10', backend: 'qemu-tcg', updatedAt: Date.now() })
  await store.close()

  const hub = lab.hub('bdh')
  const nsNode = lab.namespace('bdn')
  lab.plug(nsNode, hub, '198.18.7.1/24')
  const nsUp = lab.namespace('bdu')
  lab.plug(nsUp, hub, '198.18.7.53/24')
  const nsVm = lab.namespace('bdv')
  lab.plug(nsVm, hub, '198.18.7.10/24')
  const started = (child: ReturnType<typeof lab.spawnIn>) => new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('READY') && resolve())
    child.once('exit', (c) => reject(new Error(`a fixture exited ${c}`)))
  })
  await started(lab.spawnIn(nsUp, [process.execPath, '--import', 'tsx', FIXTURE, 'upstream', '198.18.7.53', '53', JSON.stringify({ '*': '203.0.113.9' })]))
  await started(lab.spawnIn(nsNode, [process.execPath, '--import', 'tsx', FIXTURE, 'node', dir, JSON.stringify([{ host: '198.18.7.1', port: 53 }]), JSON.stringify(['198.18.0.0/15']), '198.18.7.53', JSON.stringify({ ratePerS: 1_000_000, rateBurst: 1_000_000 })]))
  // the per-source rate (100/s by default) is lifted: one client in a tight loop measures latency, not the limit
  const measure = async (server: string, names: string[]) => JSON.parse((await run('ip', ['netns', 'exec', nsVm, process.execPath, '--import', 'tsx', FIXTURE, 'measure', server, '53', JSON.stringify(names)], { maxBuffer: 64 * 1024 * 1024 })).stdout) as number[]
  const fresh = (tag: string) => Array.from({ length: N }, (_, i) => `n${i}.${tag}.bench.test`)
  const record = (what: string, ms: number[]) => rows.push({ what, p50: pct(ms, 50), p99: pct(ms, 99) })
  record('direct to the upstream resolver (baseline)', await measure('198.18.7.53', fresh('direct')))
  record('via the node, cache miss (forwarded)', await measure('198.18.7.1', fresh('miss')))
  record('via the node, cache hit', await measure('198.18.7.1', Array.from({ length: N }, () => 'www.bench.test')))
  record('via the node, `.fog` name from state', await measure('198.18.7.1', Array.from({ length: N }, () => 'web-1.fog')))
})
await close()

const base = rows[0]
const table = [
  '| query path | p50 (ms) | p99 (ms) | p50 / direct | p99 / direct |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.what} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${(r.p50 / base.p50).toFixed(2)} | ${(r.p99 / base.p99).toFixed(2)} |`),
].join('\n')
console.log(table)
recordResults('DNS answer latency from an instance (bench/dns.ts)', `${N} sequential UDP queries per row from an instance's namespace; the node's DnsServer (real state store) and the upstream in namespaces on one bridge. The machine's 2 cores are shared with other test runs (QEMU TCG guests), which shows in p99: compare the rows of one run.\n\n${table}`)
