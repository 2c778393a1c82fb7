import t from 'tap'
import { spawnSync } from 'node:child_process'
import type { ObservedInstance } from '../../plugins/instances/index.js'
import { processState } from '../../plugins/node/lib/hypervisor/process.js'
import { until } from '../helpers/form.js'
import { guestImageUnavailable, putGuestImage } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { VmmLab } from '../helpers/vmm-lab.js'

const missing = netnsUnavailable(['qemu-system-x86_64', 'iptables']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : false

/**
 * The busybox guest serves /healthz on 8080 (busybox httpd); a connection to its port 9000 kills
 * the web server, as a crashing service would, and leaves the guest running.
 */
const SERVICES = `mkdir -p /www && echo ok > /www/healthz
httpd -p 8080 -h /www
printf '#!/bin/sh\\nkillall httpd\\necho "form-test-guest: the web server was killed" > /dev/console\\n' > /bin/kill-service && chmod 755 /bin/kill-service
nc -l -p 9000 -e /bin/kill-service &`

const CHECK = { kind: 'http' as const, port: 8080, path: '/healthz', intervalMs: 2000, timeoutMs: 2000, retries: 2, startPeriodMs: 0 }

t.test('a replica whose service dies is reported unhealthy and restarted by its node, then healthy again; a second death waits for the backoff', { skip }, async (t) => {
  const lab = new VmmLab(t, { bridgeSubnet: '10.77.9.0/24' })
  await lab.setUp()
  const image = await putGuestImage(String(lab.env.env.FORM_DATA_DIR), { owner: lab.owner, buildId: 'svc', services: SERVICES, expose: [{ port: 8080, protocol: 'tcp' }], health: [CHECK] })
  await lab.createInstance('svc', { image: image.image, buildId: 'svc' })
  const healthy = await lab.until('svc', 'running', (o) => o.health?.state === 'healthy')
  t.match(healthy.health, { state: 'healthy', restarts: 0, checks: 1 }, 'healthy once /healthz answers')
  t.notOk(healthy.health!.lastFailure, 'no failure yet')
  const list = JSON.parse(lab.ok(await lab.form(['manage', 'list', '--json'])).stdout)
  t.match(list.instances, [{ id: 'svc', state: 'running', health: { state: 'healthy' } }], 'manage list --json carries the health')
  t.match(lab.ok(await lab.form(['manage', 'list'])).stdout, /^svc\s.*\srunning\s+healthy\s/m, 'and its table shows it')

  // the service dies; every record the node writes from now on is kept, to see each step
  const seen: ObservedInstance[] = []
  const watch = (what: string, done: (o: ObservedInstance) => boolean, timeoutMs = 240_000) =>
    until(
      what,
      async () => {
        const o = await lab.observed('svc')
        if (o && seen.at(-1)?.updatedAt !== o.updatedAt) seen.push(o)
        if (o?.state === 'failed') throw Object.assign(new Error(`svc failed: ${o.reason}`), { fatal: true })
        return o && done(o) ? o : undefined
      },
      timeoutMs,
    )
  const step = (o: ObservedInstance) => `${o.state}/${o.health?.state ?? '-'}`
  const kill = (ip: string) => spawnSync('ip', ['netns', 'exec', lab.ns, 'busybox', 'nc', '-w', '5', ip, '9000'], { input: '', encoding: 'utf8', timeout: 20_000 })
  const killedAt = Date.now()
  const nc = kill(healthy.ip!)
  t.equal(nc.status, 0, `the kill switch answered ${nc.stderr}`)

  const unhealthy = await watch('svc to be unhealthy', (o) => o.health?.state === 'unhealthy')
  const unhealthyMs = unhealthy.health!.since - killedAt
  t.match(unhealthy, { state: 'running', pid: healthy.pid, health: { state: 'unhealthy', reason: /^http \/healthz on 8080: (connection refused|closed without an answer)$/, restarts: 0 } }, 'reported unhealthy with the failing check and why, the same VM still running')
  t.equal(unhealthy.health!.restartAt, unhealthy.health!.lastFailure!.at, 'the first restart is due at once')

  const back = await watch('svc to be restarted and healthy', (o) => o.state === 'running' && o.pid !== healthy.pid && o.health?.state === 'healthy')
  const booting = seen.find((o) => o.state === 'booting')
  t.match(booting, { health: { state: 'starting', restarts: 1, lastFailure: { reason: unhealthy.health!.reason } } }, 'the node booted it again, and says why')
  const steps = seen.map(step).filter((x, i, all) => x !== all[i - 1]).join(' → ')
  t.match(steps, /^(running\/healthy → )?running\/unhealthy → booting\/starting → (running\/starting → )?running\/healthy$/, `the records went ${steps}`)
  t.match(back.health, { state: 'healthy', restarts: 1, lastFailure: { reason: /^http \/healthz on 8080: / } }, 'healthy again; the record keeps why it was restarted')
  t.not(await processState(healthy.pid!), 'alive', 'the old VM process is gone')
  t.match(lab.ok(await lab.form(['manage', 'logs', 'svc', '--bytes', '0'])).stdout, /form-test-guest: the web server was killed[\s\S]*boots=2\b/, 'the guest rebooted from its own disk after its service died')
  t.match(lab.node.output(), /instance unhealthy/, 'the node log says so')
  t.match(lab.ok(await lab.form(['manage', 'list'])).stdout, /^svc: restarted 1 time by its node for failing health checks; the last: http \/healthz on 8080: /m, 'manage list tells why it was restarted')

  // it dies again before it stayed healthy for 5 min: this restart waits 10 s
  seen.length = 0
  t.equal(kill(back.ip!).status, 0)
  const second = await watch('svc to be unhealthy again', (o) => o.health?.state === 'unhealthy')
  t.equal(second.health!.restartAt! - second.health!.lastFailure!.at, 10_000, 'the second restart is due 10 s after it turned unhealthy')
  t.match(lab.ok(await lab.form(['manage', 'list'])).stdout, /^svc: unhealthy: http \/healthz on 8080: .*; its node restarts it in \d+ s \(restarted 1 time already\)/m, 'manage list shows why and when')
  const third = await watch('svc to be restarted again', (o) => o.state === 'running' && o.pid !== back.pid && o.health?.state === 'healthy')
  t.equal(third.health!.restarts, 2)
  const rebooted = seen.find((o) => o.state === 'booting')!
  t.ok(rebooted.updatedAt - second.health!.lastFailure!.at >= 10_000, `not restarted before its backoff (${rebooted.updatedAt - second.health!.lastFailure!.at} ms)`)

  t.comment(`service killed → unhealthy ${unhealthyMs} ms; → booting again ${booting!.updatedAt - killedAt} ms; → healthy again ${back.health!.since - killedAt} ms (check every ${CHECK.intervalMs} ms, ${CHECK.retries} retries)`)
})
