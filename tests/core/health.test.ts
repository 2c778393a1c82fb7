import t from 'tap'
import { readFile } from 'node:fs/promises'
import { fixture, form, linkPlugin, makeEnv, startNode, until } from '../helpers/form.js'
import { createClient } from '../../core/client.js'

interface Status {
  services: { name: string; plugin: string; state: string; reason?: string }[]
}

t.test('a service whose background loop dies shows as degraded with the reason, and as running once it recovers', async (t) => {
  const fe = await makeEnv(t)
  await linkPlugin(fe, 'fixture-health', fixture('health'))
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const ticker = async () => {
    const r = await form(fe, ['node', 'status', '--json'])
    if (r.code !== 0) throw new Error(r.stderr)
    return (JSON.parse(r.stdout) as Status).services.find((s) => s.name === 'ticker')!
  }
  t.match(await ticker(), { state: 'running', plugin: 'health-fixture' })
  t.notOk((await ticker()).reason, 'a running service has no reason')
  const before = JSON.parse((await form(fe, ['node', 'status', '--json'])).stdout) as Status
  t.ok(before.services.every((s) => s.state === 'running'), 'every built-in service runs too')

  const client = createClient({ socket: fe.socket })
  await client.post('/v1/health-fixture/break', { reason: 'the store went away' })
  const degraded = await until('the ticker is degraded', async () => {
    const s = await ticker()
    return s.state === 'degraded' ? s : undefined
  }, 10_000)
  t.equal(degraded.reason, 'tick loop failed: the store went away')
  t.match(JSON.parse((await form(fe, ['node', 'status', '--json'])).stdout), { health: 'degraded', notRunning: ['ticker'] })
  const human = await form(fe, ['node', 'status'])
  t.equal(human.code, 0, 'the node still runs')
  t.match(human.stdout, /ticker\s+health-fixture\s+degraded/)
  t.match(human.stdout, /^ticker: degraded: tick loop failed: the store went away$/m)

  await client.post('/v1/health-fixture/recover', {})
  t.match(await ticker(), { state: 'running' })
  t.match(JSON.parse((await form(fe, ['node', 'status', '--json'])).stdout), { health: 'ok', notRunning: [] })
  t.notMatch((await form(fe, ['node', 'status'])).stdout, /^ticker: /m, 'no reason printed')

  t.equal(await node.stop(), 0)
  const log = await readFile(fe.logFile, 'utf8')
  t.match(log, /WARN  \[ticker\] service degraded \{"part":"tick loop","reason":"tick loop failed: the store went away"\}/)
  t.match(log, /INFO  \[ticker\] service recovered \{"part":"tick loop"\}/)
  t.notMatch(log, /tick loop ended/, 'the loop ending with the node is no failure')
})
