import t from 'tap'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer, type Server } from 'node:net'
import { once } from 'node:events'
import {
  defaultHealthChecks,
  HealthMonitor,
  HealthTracker,
  healthChecksOf,
  Limiter,
  parseDuration,
  probe,
  restartDelay,
  type HealthCheck,
  type HealthTracker as Tracker,
} from '../../plugins/node/lib/vmm/health.js'
import { parseManifest } from '../../plugins/node/lib/vmm/image.js'

const check = (c: Partial<HealthCheck> & Pick<HealthCheck, 'kind' | 'port'>): HealthCheck => ({ intervalMs: 1000, timeoutMs: 500, retries: 2, startPeriodMs: 0, ...c })

async function listen(t: { teardown(fn: () => unknown): void }, server: Server | HttpServer, port = 0): Promise<number> {
  // a server waits for its open connections (the one that never answers, the flood) before it closes
  const open = new Set<import('node:net').Socket>()
  server.on('connection', (c: import('node:net').Socket) => open.add(c).size && c.on('close', () => open.delete(c)))
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const c of open) c.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return (server.address() as { port: number }).port
}

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

t.test('TCP probes: a listening port passes, a closed one is refused', async (t) => {
  const port = await listen(t, createServer((c) => c.end()))
  t.equal(await probe('127.0.0.1', check({ kind: 'tcp', port })), undefined)
  const closed = await closedPort()
  t.equal(await probe('127.0.0.1', check({ kind: 'tcp', port: closed })), `tcp ${closed}: connection refused`)
})

t.test('HTTP probes: 2xx and 3xx pass; other statuses, silence, garbage and endless headers fail within bounds', async (t) => {
  const requests: string[] = []
  const port = await listen(
    t,
    createHttpServer((req, res) => {
      requests.push(`${req.method} ${req.url} ${req.headers.host} ${req.headers['user-agent']}`)
      if (req.url === '/healthz') return res.end('ok')
      if (req.url === '/moved') return res.writeHead(302, { location: '/healthz' }).end()
      if (req.url === '/broken') return res.writeHead(503).end('no')
      if (req.url === '/silent') return // never answers
      res.writeHead(404).end()
    }),
  )
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port, path: '/healthz' })), undefined)
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port, path: '/moved' })), undefined)
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port, path: '/broken' })), `http /broken on ${port}: status 503`)
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port, path: '/nope' })), `http /nope on ${port}: status 404`)
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port, path: '/silent', timeoutMs: 300 })), `http /silent on ${port}: no answer within 300ms`)
  t.same(requests.slice(0, 1), [`GET /healthz 127.0.0.1:${port} form-health`], 'a plain GET with the Host the node sees')
  const closed = await closedPort()
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port: closed, path: '/healthz' })), `http /healthz on ${closed}: connection refused`)

  // not HTTP: a server that talks something else, one that hangs up, one that sends an endless first line
  const ssh = await listen(t, createServer((c) => c.end('SSH-2.0-OpenSSH_9.2\r\n')))
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port: ssh, path: '/' })), `http / on ${ssh}: the answer is not HTTP`)
  const hangup = await listen(t, createServer((c) => c.destroy()))
  t.match(await probe('127.0.0.1', check({ kind: 'http', port: hangup, path: '/' })), new RegExp(`^http / on ${hangup}: (closed without an answer|connection reset)$`))
  let sent = 0
  const flood = await listen(
    t,
    createServer((c) => {
      c.on('error', () => {})
      const chunk = Buffer.alloc(1024, 'A')
      const pump = () => {
        while (!c.destroyed && sent < 10 * 1024 * 1024 && c.write(chunk)) sent += chunk.length
      }
      c.on('drain', pump)
      pump()
    }),
  )
  t.equal(await probe('127.0.0.1', check({ kind: 'http', port: flood, path: '/' })), `http / on ${flood}: the answer is not HTTP`)
  t.ok(sent < 10 * 1024 * 1024, `the probe stopped reading after its bound (${sent} bytes sent before it hung up)`)
})

t.test('the state machine: starting → healthy; unhealthy after `retries` failures in a row; failures in the start period do not count', async (t) => {
  const c = check({ kind: 'tcp', port: 1, retries: 3, startPeriodMs: 10_000 })
  const tr = new HealthTracker([c], 0)
  t.notOk(tr.record(0, 'tcp 1: connection refused', 1000), 'still starting')
  t.notOk(tr.record(0, 'tcp 1: connection refused', 2000))
  t.notOk(tr.record(0, 'tcp 1: connection refused', 9000), 'three failures inside the start period count for nothing')
  t.equal(tr.state, 'starting')
  t.notOk(tr.record(0, 'tcp 1: connection refused', 10_000))
  t.notOk(tr.record(0, 'tcp 1: connection refused', 11_000))
  t.ok(tr.record(0, 'tcp 1: connection refused', 12_000), 'the third counted failure')
  t.match(tr, { state: 'unhealthy', reason: 'tcp 1: connection refused', since: 12_000 })
  t.ok(tr.record(0, undefined, 13_000), 'a pass heals it')
  t.match(tr, { state: 'healthy', reason: undefined, since: 13_000 })
  t.notOk(tr.record(0, 'tcp 1: timeout', 14_000), 'a healthy replica stays healthy through fewer than retries failures')
  t.notOk(tr.record(0, 'tcp 1: timeout', 15_000))
  t.notOk(tr.record(0, undefined, 16_000), 'and the count starts over after a pass')
  t.notOk(tr.record(0, 'x', 17_000))
  t.notOk(tr.record(0, 'x', 18_000))
  t.ok(tr.record(0, 'tcp 1: connection refused', 19_000))
  t.equal(tr.state, 'unhealthy')

  const early = new HealthTracker([c], 0)
  t.ok(early.record(0, undefined, 500), 'a pass in the start period makes it healthy at once')
  early.record(0, 'a', 600)
  early.record(0, 'b', 700)
  t.ok(early.record(0, 'c', 800), 'once healthy, failures count even inside the start period')
  t.match(early, { state: 'unhealthy', reason: 'c' })
})

t.test('with several checks: healthy when all pass, unhealthy when one fails, naming it', async (t) => {
  const checks = [check({ kind: 'tcp', port: 1, retries: 1 }), check({ kind: 'http', port: 2, path: '/h', retries: 2 })]
  const tr = new HealthTracker(checks, 0)
  tr.record(0, undefined, 1)
  t.equal(tr.state, 'starting', 'one of two passed')
  tr.record(1, undefined, 2)
  t.equal(tr.state, 'healthy')
  tr.record(1, 'http /h on 2: status 500', 3)
  t.equal(tr.state, 'healthy', 'one failure of a check with 2 retries')
  tr.record(1, 'http /h on 2: status 500', 4)
  t.match(tr, { state: 'unhealthy', reason: 'http /h on 2: status 500' })
  tr.record(0, undefined, 5)
  t.equal(tr.state, 'unhealthy', 'the other check passing does not heal it')
  tr.record(1, undefined, 6)
  t.equal(tr.state, 'healthy')
})

t.test('restart backoff: at once, then 10 s doubling to 5 min', async (t) => {
  t.same([0, 1, 2, 3, 4, 5, 6, 7, 50].map(restartDelay), [0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000])
})

t.test('checks from the manifest: validated as untrusted input; without a list, TCP checks for EXPOSE', async (t) => {
  t.same(healthChecksOf({ expose: [{ port: 80, protocol: 'tcp' }, { port: 53, protocol: 'udp' }, { port: 'x' }] }), [{ kind: 'tcp', port: 80, intervalMs: 10_000, timeoutMs: 3000, retries: 3, startPeriodMs: 30_000 }])
  t.same(healthChecksOf({ health: [], expose: [{ port: 80, protocol: 'tcp' }] }), [], 'an empty list: no checks (HEALTHCHECK none)')
  const good = check({ kind: 'http', port: 8080, path: '/healthz' })
  t.same(healthChecksOf({ health: [{ ...good, extra: 'dropped' }] }), [good], 'unknown fields are dropped')
  const bad: [unknown, RegExp][] = [
    ['nope', /health must be a list/],
    [[{ ...good, kind: 'udp' }], /health\[0\] kind must be "tcp" or "http"/],
    [[{ ...good, port: 70000 }], /port must be 1-65535/],
    [[{ ...good, path: 'healthz' }], /path must be an absolute path/],
    [[{ ...good, path: '/a b' }], /path must be an absolute path/],
    [[{ ...good, path: '/a\r\nX-Injected: 1' }], /path must be an absolute path/],
    [[{ ...good, intervalMs: 10 }], /intervalMs must be a whole number from 1000/],
    [[{ ...good, timeoutMs: 5000, intervalMs: 2000 }], /timeoutMs must not exceed intervalMs/],
    [[{ ...good, retries: 0 }], /retries must be a whole number from 1 to 100/],
    [Array.from({ length: 17 }, () => good), /at most 16/],
  ]
  for (const [health, message] of bad) t.match(healthChecksOf({ health }), message, JSON.stringify(health).slice(0, 60))
  t.equal(defaultHealthChecks(Array.from({ length: 40 }, (_, i) => ({ port: i + 1, protocol: 'tcp' }))).length, 16, 'defaults are bounded too')

  const manifest = { schema: 'form.image/1', kernel: { sha256: 'a'.repeat(64), size: 1 }, disk: { sha256: 'b'.repeat(64), size: 1, format: 'raw' }, cmdline: '', resources: { vcpus: 1, memoryMb: 1, diskGb: 1 } }
  t.same(parseManifest(JSON.stringify({ ...manifest, expose: [{ port: 80, protocol: 'tcp' }] })).health, [{ kind: 'tcp', port: 80, intervalMs: 10_000, timeoutMs: 3000, retries: 3, startPeriodMs: 30_000 }], 'an image from before HEALTHCHECK gets the defaults')
  t.throws(() => parseManifest(JSON.stringify({ ...manifest, health: [{ ...good, port: 0 }] })), { code: 'VMM_BAD_IMAGE', message: /the image manifest's health\[0\] port must be 1-65535/ })
})

t.test('durations', async (t) => {
  t.same(['500ms', '10s', '2m', '1h', '1m30s', '10', 's', '1.5s', '-1s', ''].map(parseDuration), [500, 10_000, 120_000, 3_600_000, 90_000, undefined, undefined, undefined, undefined, undefined])
})

t.test('a limiter runs at most its bound at once', async (t) => {
  const limiter = new Limiter(2)
  let active = 0
  let most = 0
  const release: (() => void)[] = []
  const tasks = Array.from({ length: 6 }, () =>
    limiter.run(async () => {
      most = Math.max(most, ++active)
      await new Promise<void>((r) => release.push(r))
      active--
    }),
  )
  while (release.length || active) {
    await new Promise((r) => setImmediate(r))
    release.shift()?.()
  }
  await Promise.all(tasks)
  t.equal(most, 2)
})

t.test('a monitor against a real server: the service dies → unhealthy after retries; it comes back → healthy', async (t) => {
  const up = () => createHttpServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end())
  let server = up()
  const port = await listen(t, server)
  const changes: { state: string; reason?: string }[] = []
  let notify: (() => void) | undefined
  const next = (state: string) =>
    new Promise<void>((resolve) => {
      notify = () => changes.at(-1)?.state === state && resolve()
      notify()
    })
  const c: HealthCheck = { kind: 'http', port, path: '/healthz', intervalMs: 1000, timeoutMs: 500, retries: 2, startPeriodMs: 0 }
  let probes = 0
  const monitor = new HealthMonitor({
    host: '127.0.0.1',
    checks: [c],
    limiter: new Limiter(1),
    bootedAt: Date.now(),
    probe: (h, ch) => (probes++, probe(h, ch)),
    onChange: (tr: Tracker) => {
      changes.push({ state: tr.state, reason: tr.reason })
      notify?.()
    },
  })
  t.teardown(() => monitor.stop())
  monitor.start()
  await next('healthy')
  const before = probes
  await new Promise<void>((r) => server.close(() => r()))
  await next('unhealthy')
  t.ok(probes - before >= 2, `unhealthy only after ${c.retries} failed probes (${probes - before} probes since the service died)`)
  t.match(changes.at(-1), { state: 'unhealthy', reason: `http /healthz on ${port}: connection refused` })
  server = up()
  await listen(t, server, port)
  await next('healthy')
  t.same(changes.map((x) => x.state), ['healthy', 'unhealthy', 'healthy'])
  monitor.stop()
  const stoppedAt = probes
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(probes, stoppedAt, 'a stopped monitor probes no more')
})
