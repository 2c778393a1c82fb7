import t from 'tap'
import type { Test } from 'tap'
import { readFile, stat, writeFile, access } from 'node:fs/promises'
import { createServer } from 'node:net'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { FORM_BIN, fixture, form, linkPlugin, makeEnv, startNode, until, type FormEnv } from '../helpers/form.js'
import { createClient } from '../../core/client.js'

async function withFixture(t: Test, config: string): Promise<{ fe: FormEnv; events: string }> {
  const fe = await makeEnv(t)
  const events = join(fe.dir, 'events.log')
  await linkPlugin(fe, 'fixture-services', fixture('services'))
  await writeFile(join(fe.configDir, 'operator.toml'), `[fixture]\nevents_file = ${JSON.stringify(events)}\n${config}`)
  return { fe, events }
}

const exists = (p: string) => access(p).then(() => true, () => false)

t.test('services start in dependency order, report their state, and stop in reverse on SIGTERM', async (t) => {
  const { fe, events } = await withFixture(t, '')
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const status = await form(fe, ['node', 'status', '--json'])
  t.equal(status.code, 0, status.stderr)
  const s = JSON.parse(status.stdout)
  t.equal(s.running, true)
  t.equal(s.pid, node.child.pid)
  t.same(s.services.filter((x: { plugin: string }) => x.plugin === 'fixture').map((x: { name: string }) => x.name), ['svc-a', 'svc-b', 'svc-c', 'svc-d'])
  t.ok(s.services.every((x: { state: string }) => x.state === 'running'))
  t.same([s.health, s.notRunning], ['ok', []], 'the node as a whole: ok')
  t.equal(s.services[0].name, 'state', 'built-in services run beside the plugin\'s')
  const human = await form(fe, ['node', 'status'])
  t.match(human.stdout, /running\s+pid \d+/)
  t.match(human.stdout, /svc-c\s+fixture\s+running/)

  const sock = await stat(fe.socket)
  t.equal(sock.mode & 0o777, 0o660, 'the socket is created with mode 0660')

  t.equal(await node.stop('SIGTERM'), 0)
  t.equal(await readFile(events, 'utf8'), ['start svc-a', 'start svc-b', 'start svc-c', 'start svc-d', 'stop svc-d', 'stop svc-c', 'stop svc-b', 'stop svc-a', ''].join('\n'))
  t.notOk(await exists(fe.socket), 'socket removed on stop')
  t.notOk(await exists(fe.pidFile), 'pid file removed on stop')
})

t.test('a third-party service that fails to start is reported failed, with what depends on it; the node runs without them', async (t) => {
  const { fe, events } = await withFixture(t, 'fail = "svc-b"\n')
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const s = JSON.parse((await form(fe, ['node', 'status', '--json'])).stdout)
  const fixtureServices = s.services.filter((x: { plugin: string }) => x.plugin === 'fixture').map(({ name, state, reason }: Record<string, string>) => ({ name, state, reason }))
  t.same(fixtureServices, [
    { name: 'svc-a', state: 'running', reason: undefined },
    { name: 'svc-b', state: 'failed', reason: 'svc-b was told to fail' },
    { name: 'svc-c', state: 'failed', reason: 'it depends on "svc-b", which failed to start' },
    { name: 'svc-d', state: 'running', reason: undefined },
  ])
  t.ok(s.services.filter((x: { plugin: string }) => x.plugin !== 'fixture').every((x: { state: string }) => x.state === 'running'), 'the built-in services run')
  t.same([s.health, s.notRunning], ['degraded', ['svc-b', 'svc-c']], 'the node as a whole: degraded, naming what does not run')
  const human = (await form(fe, ['node', 'status'])).stdout
  t.match(human, /^degraded: svc-b failed, svc-c failed  pid \d+/m)
  t.match(human, /svc-b\s+fixture\s+failed/)
  t.match(human, /^svc-b: failed: svc-b was told to fail$/m)
  const client = createClient({ socket: fe.socket })
  t.same(await client.get('/v1/fixture/svc-a'), { name: 'svc-a' })
  await t.rejects(client.get('/v1/fixture/svc-b'), { code: 'API_NOT_FOUND' }, 'the route of the failed service was taken back')
  t.equal(await node.stop(), 0)
  t.equal(await readFile(events, 'utf8'), ['start svc-a', 'fail svc-b', 'start svc-d', 'stop svc-d', 'stop svc-a', ''].join('\n'))
  t.match(await readFile(fe.logFile, 'utf8'), /ERROR service svc-b \(plugin fixture\) failed to start; the node runs without it \{"error":"svc-b was told to fail"\}/)
})

t.test('a built-in service that fails to start rolls back the started ones and exits non-zero with the cause', async (t) => {
  const fe = await makeEnv(t)
  // p2p cannot listen on a port another process holds
  const squatter = createServer()
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => squatter.close(() => r())))
  const port = (squatter.address() as { port: number }).port
  const r = await form({ ...fe, env: { ...fe.env, FORM_LISTEN: `/ip4/127.0.0.1/tcp/${port}` } }, ['node', 'start'])
  t.equal(r.code, 1)
  t.match(r.stderr, /error\[SERVICE_START\]: service "p2p" \(plugin "net"\) failed to start: /)
  t.match(r.stderr, /service state stopped/, 'the service started before it was stopped')
  t.notOk(await exists(fe.socket))
  t.notOk(await exists(fe.pidFile))
})

t.test('a stale socket and pid file from a killed node are replaced', async (t) => {
  const fe = await makeEnv(t)
  const first = await startNode(fe)
  t.equal(await first.stop('SIGKILL'), null)
  t.ok(await exists(fe.socket), 'SIGKILL leaves the socket behind')
  t.ok(await exists(fe.pidFile), 'and the pid file')
  const second = await startNode(fe)
  t.teardown(() => second.stop('SIGKILL'))
  const health = await createClient({ socket: fe.socket }).get('/v1/health')
  t.equal(health.pid, second.child.pid)
  t.equal(await second.stop(), 0)
})

t.test('a second node on the same runtime directory is refused', async (t) => {
  const fe = await makeEnv(t)
  const first = await startNode(fe)
  t.teardown(() => first.stop('SIGKILL'))
  const second = await form(fe, ['node', 'start'])
  t.equal(second.code, 1)
  t.match(second.stderr, new RegExp(`error\\[NODE_ALREADY_RUNNING\\]: a node is already running \\(pid ${first.child.pid}`))
  const detached = await form(fe, ['node', 'start', '--detach'])
  t.equal(detached.code, 1)
  t.match(detached.stderr, /NODE_ALREADY_RUNNING/)
  // the first node is unharmed
  t.equal((await createClient({ socket: fe.socket }).get('/v1/health')).pid, first.child.pid)
})

t.test('a socket served by another process is never stolen', async (t) => {
  const fe = await makeEnv(t)
  await form(fe, ['--version'])
  const { mkdir } = await import('node:fs/promises')
  await mkdir(fe.runtimeDir, { recursive: true })
  const squatter = createServer((c) => c.end())
  await new Promise<void>((r) => squatter.listen(fe.socket, r))
  t.teardown(() => new Promise<void>((r) => squatter.close(() => r())))
  const r = await form(fe, ['node', 'start'])
  t.equal(r.code, 1)
  t.match(r.stderr, /another process is serving the node socket/)
  t.notOk(await exists(fe.pidFile), 'the lock is released after the refusal')
})

t.test('--detach, status, logs and stop', async (t) => {
  const fe = await makeEnv(t)
  const start = await form(fe, ['node', 'start', '--detach', '--json'])
  t.equal(start.code, 0, start.stderr)
  const { pid } = JSON.parse(start.stdout)
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  })
  t.equal(Number((await readFile(fe.pidFile, 'utf8')).trim()), pid)
  const status = JSON.parse((await form(fe, ['node', 'status', '--json'])).stdout)
  t.equal(status.pid, pid)
  const logs = await form(fe, ['node', 'logs', '-n', '5'])
  t.equal(logs.code, 0)
  t.match(logs.stdout, /node ready/)
  // a follower that has printed the last line goes on with what the node writes next
  const follower = spawn(process.execPath, [FORM_BIN, 'node', 'logs', '-f', '-n', '1'], { env: fe.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => follower.kill('SIGKILL'))
  let followed = ''
  follower.stdout!.on('data', (d) => (followed += d))
  await until('node logs -f to print the last line', async () => (followed.length ? true : undefined))
  const stop = await form(fe, ['node', 'stop', '--json'])
  t.equal(stop.code, 0, stop.stderr)
  t.match(JSON.parse(stop.stdout), { stopped: true, pid })
  const after = await form(fe, ['node', 'status', '--json'])
  t.equal(after.code, 3)
  t.same(JSON.parse(after.stdout), { running: false, socket: fe.socket })
  t.match((await form(fe, ['node', 'logs'])).stdout, /node stopped/)
  await until('node logs -f to print the stop', async () => (/node stopped/.test(followed) ? true : undefined), 30_000)
  t.pass('node logs -f printed the lines written after it started')
  follower.kill()
  t.equal((await form(fe, ['node', 'stop'])).code, 0, 'stopping a stopped node is not an error')
})

t.test('a bad operator config stops start-up with the file, key and expected type', async (t) => {
  const fe = await makeEnv(t)
  const config = join(fe.configDir, 'operator.toml')
  await writeFile(config, '[node]\nhypervisor = "qemu"\n[node.resources]\nmemory_mb = "4G"\n')
  const r = await form(fe, ['node', 'start'])
  t.equal(r.code, 1)
  t.equal(r.stderr.split('\n').filter((l) => l.startsWith('error')).length, 1)
  t.match(r.stderr, `error[CONFIG_INVALID]: ${config}: [node] resources.memory_mb: expected a number (got "4G")`)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace for a user mistake')
  const verbose = await form(fe, ['node', 'start', '--verbose'])
  t.match(verbose.stderr, /\n\s+at /, '--verbose shows the stack')
  const json = await form(fe, ['node', 'start', '--json'])
  t.match(JSON.parse(json.stdout), { error: { code: 'CONFIG_INVALID' } })
  const missing = await form(fe, ['node', 'start', '--config', join(fe.dir, 'nope.toml')])
  t.match(missing.stderr, /error\[CONFIG_READ\]: cannot read the operator config .*nope\.toml/)
})

t.test('commands that need the node say so when it is not running', async (t) => {
  const fe = await makeEnv(t)
  const r = await form(fe, ['node', 'status'])
  t.equal(r.code, 3)
  t.match(r.stdout, /not running/)
  t.match(r.stdout, /form node start/)
  const client = createClient({ socket: fe.socket })
  await t.rejects(client.get('/v1/node'), { code: 'NODE_NOT_RUNNING', hint: /form node start/ })
})

t.test('the API answers unknown routes and methods with clear errors', async (t) => {
  const fe = await makeEnv(t)
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const client = createClient({ socket: fe.socket })
  await t.rejects(client.get('/v1/nothing/here'), { code: 'API_NOT_FOUND', message: /no route \/v1\/nothing\/here/ })
  await t.rejects(client.post('/v1/health', {}), { code: 'API_METHOD' })
  await node.stop()
})
