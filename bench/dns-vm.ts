// DNS answer latency from inside a real instance: a Debian guest built by `form pack build` and
// booted by a node under QEMU (TCG here), in the node's network namespace. The node's DNS (on its
// bridge address, the guest's resolv.conf) forwards to an upstream resolver this bench runs in a
// namespace of its own (tests/helpers/dns.ts, the same as tests/node/ssh-dns-vm.test.ts); NAT is on,
// as by default, so the guest also reaches that upstream directly, and each row is timed the same way:
// bench/dns-guest.pl, one perl process in the guest sending one UDP query at a time and reading the
// monotonic clock around each (no fork per query). The guest's own cost is measured in the same run:
// the clock read, and the same query loop against an echo on the guest's loopback (no wire, no node).
// A last pair of rows times `getent` (libc's resolver, fork+exec each) as programs see it.
// Rows from the node's namespace (no guest) show what the guest adds.
// Run: npm run build && npx tsx bench/dns-vm.ts   (root, qemu, mmdebstrap; the Debian base cached by
// tests/helpers/builder.ts)   BENCH_QUERIES=1000 by default
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT, until } from '../tests/helpers/form.js'
import { SSH_OPTIONS } from '../tests/helpers/journey-lab.js'
import { VmmLab } from '../tests/helpers/vmm-lab.js'
import { benchScope, recordResults } from './results.js'

const N = Number(process.env.BENCH_QUERIES ?? 1000)
const GETENT_N = Math.min(N, 200)
const FIXTURE = join(ROOT, 'tests', 'net', 'fixtures', 'dns-node.ts')
const GUEST_SCRIPT = join(ROOT, 'bench', 'dns-guest.pl')
const UPSTREAM = '192.0.2.53'
const run = promisify(execFile)
const { scope, run: round, close } = benchScope('dns-vm')

const pct = (values: number[], p: number) => {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

interface Row {
  what: string
  n: number
  failed: number
  p50: number
  p99: number
}
const guestRows: Row[] = []
const hostRows: Row[] = []
let clock: Row | undefined
let forwarded = { miss: 0, hit: 0, direct: 0 }
let resolver = ''

// close() also when the round fails: the lab's teardown has run, the folders go too
await round(async () => {
  const key = join(scope.testdir(), 'id_ed25519')
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench@dns-vm', '-f', key])
  const lab = new VmmLab(scope, {
    builtImage: true,
    nat: true,
    sshPublicKey: await readFile(`${key}.pub`, 'utf8'),
    // the per-source rate (100/s by default) is lifted: one client in a tight loop measures latency, not the limit
    net: [`dns_upstreams = ["${UPSTREAM}"]`, 'dns_rate_per_s = 1000000', 'dns_rate_burst = 1000000'],
  })
  const upNs = lab.net.namespace('bup')
  const link = lab.net.name('bupv')
  lab.net.run(['ip', 'link', 'add', link, 'netns', lab.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', upNs])
  lab.net.run(['ip', '-n', lab.ns, 'addr', 'add', '192.0.2.1/24', 'dev', link])
  lab.net.run(['ip', '-n', lab.ns, 'link', 'set', link, 'up'])
  lab.net.run(['ip', '-n', upNs, 'addr', 'add', `${UPSTREAM}/24`, 'dev', 'eth0'])
  lab.net.run(['ip', '-n', upNs, 'link', 'set', 'eth0', 'up'])
  const up: ChildProcess = lab.net.spawnIn(upNs, [process.execPath, '--import', 'tsx', FIXTURE, 'upstream', UPSTREAM, '53', JSON.stringify({ '*': '203.0.113.9', 'web.fog': '203.0.113.10' })])
  // read every ASKED line (a full pipe would stall the upstream) and count the forwarded ones per row
  const asked: string[] = []
  up.stdout!.on('data', (d: Buffer) => asked.push(...d.toString().split('\n').filter(Boolean)))

  await lab.setUp()
  await lab.createInstance('dnsb-1', { diskGb: 5, memoryMb: 512 })
  const running = await lab.until('dnsb-1', 'running', () => true, 900_000)
  const ip = running.ip!

  const ssh = (command: string, input?: string, timeoutMs = 600_000) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('ip', ['netns', 'exec', lab.ns, 'ssh', '-i', key, ...SSH_OPTIONS, `ada@${ip}`, command], { stdio: ['pipe', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      child.stdout.on('data', (d: Buffer) => (stdout += d))
      child.stderr.on('data', (d: Buffer) => (stderr += d))
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve({ code, stdout, stderr })
      })
      child.stdin.end(input ?? '')
    })
  await until('SSH into the instance', async () => ((await ssh('true', undefined, 30_000)).code === 0 ? true : undefined), 300_000)
  const copied = await ssh('cat > /tmp/dns-guest.pl', await readFile(GUEST_SCRIPT, 'utf8'))
  if (copied.code !== 0) throw new Error(`copying the guest script failed: ${copied.stderr}`)
  resolver = (await ssh("awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf")).stdout.trim()
  if (!resolver) throw new Error('the guest has no nameserver in /etc/resolv.conf')

  const inGuest = async (what: string, args: string[], n: number): Promise<Row> => {
    const r = await ssh(`perl /tmp/dns-guest.pl ${args.map((a) => `'${a}'`).join(' ')} ${n}`)
    if (r.code !== 0) throw new Error(`${what}: the guest script exited ${r.code}: ${r.stderr}`)
    const [line, failLine] = r.stdout.split('\n')
    const ms = line.split(' ').filter(Boolean).map((x) => Number(x) / 1e6)
    const failed = Number(/FAIL (\d+)/.exec(failLine ?? '')?.[1] ?? NaN)
    if (!ms.length) throw new Error(`${what}: no answer at all (${failed} failed)`)
    return { what, n, failed, p50: pct(ms, 50), p99: pct(ms, 99) }
  }
  const askedFor = (tag: string) => asked.filter((l) => l.includes(tag)).length

  clock = await inGuest('one timestamp (clock_gettime syscall)', ['clock', '-', '-', '-'], N)
  guestRows.push(await inGuest("the guest's own floor: the same loop against an echo on its loopback", ['udp', 'loopback', '0', 'n%d.echo.test'], N))
  guestRows.push(await inGuest('direct to the upstream resolver (baseline, through the node\'s NAT)', ['udp', UPSTREAM, '53', 'n%d.direct.bench.test'], N))
  guestRows.push(await inGuest("via the node's DNS, each name new (cache miss: forwarded)", ['udp', resolver, '53', 'n%d.miss.bench.test'], N))
  guestRows.push(await inGuest("via the node's DNS, one name again (cache hit)", ['udp', resolver, '53', 'www.hit.bench.test'], N))
  guestRows.push(await inGuest("via the node's DNS, the replica's `.fog` name (from state)", ['udp', resolver, '53', 'dnsb-1.fog'], N))
  forwarded = { direct: askedFor('.direct.bench.test'), miss: askedFor('.miss.bench.test'), hit: askedFor('www.hit.bench.test') }
  guestRows.push(await inGuest('`getent ahostsv4 localhost` (fork+exec, /etc/hosts, no DNS)', ['getent', '-', '-', 'localhost'], GETENT_N))
  guestRows.push(await inGuest("`getent ahostsv4` via the node's DNS, cache hit (fork+exec)", ['getent', '-', '-', 'www.hit.bench.test'], GETENT_N))

  // the same queries from the node's namespace: no guest, no TCG on the querier's side
  const fromNode = async (what: string, server: string, names: string[]): Promise<Row> => {
    const r = await run('ip', ['netns', 'exec', lab.ns, process.execPath, '--import', 'tsx', FIXTURE, 'measure', server, '53', JSON.stringify(names)], { maxBuffer: 64 * 1024 * 1024 })
    const ms = JSON.parse(r.stdout) as number[]
    return { what, n: names.length, failed: 0, p50: pct(ms, 50), p99: pct(ms, 99) }
  }
  hostRows.push(await fromNode('direct to the upstream resolver', UPSTREAM, Array.from({ length: N }, (_, i) => `n${i}.hdirect.bench.test`)))
  hostRows.push(await fromNode("the node's DNS on the bridge address, cache miss", resolver, Array.from({ length: N }, (_, i) => `n${i}.hmiss.bench.test`)))
}).finally(close)

if (!clock || guestRows.length < 5) process.exit(1)
// rows: [0] the guest's floor, [1] direct to the upstream (the baseline), [2..4] via the node, then getent
const base = guestRows[1]
const fmt = (r: Row, ratio = true) => `| ${r.what} | ${r.n} | ${r.failed} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${ratio ? (r.p50 / base.p50).toFixed(2) : ''} | ${ratio ? (r.p99 / base.p99).toFixed(2) : ''} |`
const table = [
  '| measured inside the instance | queries | failed | p50 (ms) | p99 (ms) | p50 / direct | p99 / direct |',
  '|---|---|---|---|---|---|---|',
  ...guestRows.map((r, i) => fmt(r, i >= 1 && i <= 4)),
].join('\n')
const hostTable = [
  "| measured from the node's namespace (no guest) | queries | p50 (ms) | p99 (ms) |",
  '|---|---|---|---|',
  ...hostRows.map((r) => `| ${r.what} | ${r.n} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} |`),
].join('\n')
const how = [
  `A Debian instance (built by \`form pack build\` from the cached base, 1 vCPU, 512 MiB) booted by a node under QEMU **TCG** (no KVM on this machine), in the node's network namespace, NAT on (the default).`,
  `The upstream resolver is a small authoritative server (tests/helpers/dns.ts) in a namespace of its own on a veth from the node's; the node's DNS (the guest's resolv.conf: ${resolver}) forwards to it.`,
  `Measured in the guest by bench/dns-guest.pl: one perl process sends one UDP A query at a time and reads CLOCK_MONOTONIC (clock_gettime syscall) around each; the base has perl-base but no Time::HiRes, python or dig. Rate limit lifted (dns_rate_per_s) so the loop measures latency, not the limit.`,
  `The guest's own overhead, same run: one timestamp costs p50 ${(clock.p50 * 1000).toFixed(1)} µs (p99 ${(clock.p99 * 1000).toFixed(1)} µs); the same query loop against an echo on the guest's loopback (no wire, no node) is the first row.`,
  `Forwarded to the upstream during the rows: direct ${forwarded.direct}/${N}, cache miss ${forwarded.miss}/${N}, cache hit ${forwarded.hit}/${N} (the first query fills the cache).`,
  `**TCG caveat:** every guest instruction is emulated, so the guest's network stack, perl and the virtio-net path cost far more than under KVM; the absolute figures are the emulator's, and the node's own share is the difference between the rows, not their ratio alone. The 2 cores are shared with other helpers' QEMU guests, which shows in p99.`,
].join('\n\n')
console.log(`${how}\n\n${table}\n\n${hostTable}`)
recordResults('DNS answer latency inside a real instance (bench/dns-vm.ts)', `${how}\n\n${table}\n\n${hostTable}`)
