import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { loadInstanceViews } from '../../plugins/instances/index.js'
import { consoleTail } from '../../plugins/instances/lib/views.js'
import type { DesiredInstance } from '../../plugins/instances/index.js'
import { consoleExcerpt, planRollout, rolloutFailure, runRollout, type Before, type RolloutRow, type Strategy } from '../../plugins/pack/lib/rollout.js'
import type { ShipPlan } from '../../plugins/pack/lib/ship.js'
import { createClient } from '../../core/client.js'
import { signRequest } from '../../core/auth/sign.js'
import { guestImageUnavailable, putGuestImage, type GuestImage } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { VmmLab } from '../helpers/vmm-lab.js'

const missing = netnsUnavailable(['qemu-system-x86_64', 'iptables', 'curl']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : false
const run = promisify(execFile)

/**
 * The rollout `form pack ship` runs (planRollout + runRollout, the command's own functions), on
 * busybox guests of one node: two replicas serving HTTP on 8080 with an HTTP health check, shipped
 * a new image, a broken one and one that panics at boot. Planning across nodes is planShip's (tested
 * in ship-plan); what is tested here is that the old replicas keep serving while new ones come up.
 */
const CHECK = { kind: 'http' as const, port: 8080, path: '/', intervalMs: 2000, timeoutMs: 2000, retries: 2, startPeriodMs: 0 }
const web = (version: string) => `mkdir -p /www && echo ${version} > /www/index.html
httpd -p 8080 -h /www`
const IDS = ['web-1', 'web-2']

t.test('rolling updates on real VMs', { skip }, async (t) => {
  const lab = new VmmLab(t, { bridgeSubnet: '10.77.23.0/24' })
  await lab.setUp()
  const dataDir = String(lab.env.env.FORM_DATA_DIR)
  const image = (version: string, extra: Partial<Parameters<typeof putGuestImage>[1]> = {}) =>
    putGuestImage(dataDir, { owner: lab.owner, buildId: lab.buildId, services: web(version), expose: [{ port: 8080, protocol: 'tcp' }], health: [CHECK], ...extra })
  const v1 = await image('v1')
  const v2 = await image('v2')
  const broken = await image('broken', { services: 'echo "form-test-guest: the service does not start"' })
  // the kernel panics when /init exits: the guest's last words, then QEMU exits (panic=-1, -no-reboot)
  const panics = await image('panics', { init: '#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\necho "form-test-guest: about to fail: no root filesystem here"\nexit 1\n' })
  const { listInstances } = await loadInstanceViews()
  const signed = createClient({ socket: lab.env.socket, signer: (req) => signRequest({ ...req, signer: lab.signer }) })
  const node = await lab.nodeAddress()

  for (const id of IDS) await lab.createInstance(id, { image: v1.image })
  for (const id of IDS) await lab.until(id, 'running', (o) => o.health?.state === 'healthy')

  /** What each replica's HTTP answers (its body, or '-'), read every ~300 ms until stopped. */
  const watchHttp = () => {
    const rounds: { at: number; answers: string[] }[] = []
    let stop = false
    const done = (async () => {
      while (!stop) {
        const answers = await Promise.all(
          IDS.map(async (id) => {
            const ip = (await lab.observed(id))?.ip
            if (!ip) return '-'
            return run('ip', ['netns', 'exec', lab.ns, 'curl', '-sS', '--max-time', '2', `http://${ip}:8080/`]).then((r) => r.stdout.trim() || '-', () => '-')
          }),
        )
        rounds.push({ at: Date.now(), answers })
        await new Promise((r) => setTimeout(r, 300))
      }
    })()
    return { rounds, stop: async () => ((stop = true), await done) }
  }

  /** Ships `to` over the replicas now on `from`, the way `form pack ship` does. */
  const ship = async (from: GuestImage, to: GuestImage, strategy: Strategy = 'rolling') => {
    const views = await listInstances(lab.client, lab.owner)
    const writes: ShipPlan['writes'] = IDS.map((id) => ({ id, action: 'update', desired: { ...views.find((v) => v.id === id)!.desired!, image: to.image } as DesiredInstance }))
    const before: Before = new Map(IDS.map((id) => [id, { image: from.image, state: 'running' }]))
    const steps = planRollout(writes, before, { strategy, maxUnavailable: 1 })
    const rows: RolloutRow[] = IDS.map((id) => ({ id, node, state: 'requested', ip: null }))
    const outcome = await runRollout({
      steps,
      writes,
      image: to.image,
      rows,
      before: new Map(views.map((v) => [v.id, v.observed])),
      unchanged: new Set(),
      write: async (w) => {
        const record = (await listInstances(lab.client, lab.owner)).find((v) => v.id === w.id)?.record
        const { writeDesiredRecord } = await loadInstanceViews()
        await writeDesiredRecord(lab.client, lab.signer, w.id, w.desired, record?.t)
      },
      list: () => listInstances(lab.client, lab.owner),
      deadline: Date.now() + 600_000,
    })
    return { steps, rows, outcome }
  }
  const gaps = (rounds: { at: number; answers: string[] }[]) => rounds.filter((r) => r.answers.every((a) => a === '-'))

  await t.test('(a) a new image to 2 replicas: one at a time, at least one serving HTTP at every moment', async (t) => {
    const http = watchHttp()
    const t0 = Date.now()
    const { steps, outcome } = await ship(v1, v2)
    const ms = Date.now() - t0
    // a last look once both run v2
    await new Promise((r) => setTimeout(r, 1000))
    await http.stop()
    t.same(steps.map((s) => s.ids), [['web-1'], ['web-2']], 'one replica per step')
    t.notOk(outcome.stopped, 'the rollout went through')
    t.same(outcome.steps.map((s) => s.result), ['ready', 'ready'])
    const seen = [...new Set(http.rounds.map((r) => r.answers.join(' ')))]
    t.same(http.rounds.at(-1)!.answers, ['v2', 'v2'], 'both serve the new image at the end')
    t.ok(seen.includes('- v1'), `web-1 was down while web-2 served v1 (seen: ${seen.join(' | ')})`)
    t.ok(seen.includes('v2 -'), 'then web-2 was down while web-1 served v2')
    t.notOk(http.rounds.some((r) => r.answers[1] === '-' && r.answers[0] !== 'v2'), 'web-2 went down only once web-1 served v2')
    t.same(gaps(http.rounds), [], `no moment without a replica answering (${http.rounds.length} polls over ${ms} ms)`)
    t.comment(`rollout v1 → v2 of 2 replicas: ${ms} ms; steps ${outcome.steps.map((s) => `${s.ids} ${s.ms} ms`).join(', ')}; ${http.rounds.length} HTTP polls, ${gaps(http.rounds).length} without an answer`)
  })

  await t.test('(b) a broken image (never healthy) stops the rollout after the first replica; the other keeps serving the old image', async (t) => {
    const http = watchHttp()
    const { steps, rows, outcome } = await ship(v2, broken)
    await http.stop()
    t.match(outcome.stopped, { index: 0, result: 'unhealthy', rows: [{ id: 'web-1', health: { state: 'unhealthy', reason: /^http \/ on 8080: / } }] })
    t.same(outcome.notWritten, ['web-2'], 'web-2 was never told to change')
    const error = rolloutFailure(outcome.stopped!, steps, rows)
    t.match(error, { code: 'SHIP_REPLICA_UNHEALTHY', message: /web-1 on node .*unhealthy: http \/ on 8080: .*The rollout stopped at step 1 of 2: web-2 still runs the old image, untouched/, hint: /form pack build && form pack ship.*roll back/ })
    const web2 = (await listInstances(lab.client, lab.owner)).find((v) => v.id === 'web-2')!
    t.equal(web2.desired!.image, v2.image, "web-2's desired record keeps the old image")
    t.equal(web2.observed!.image, v2.image, 'and its node runs it')
    t.same(gaps(http.rounds), [], 'web-2 answered throughout')
    t.ok(http.rounds.every((r) => r.answers[1] === 'v2'), 'with the old image')
    t.comment(`broken image: stopped after ${outcome.steps[0].ms} ms: ${error.message.split('\n')[0]}`)
  })

  await t.test('(c) a VM that panics at boot fails the ship at once, with the end of its console', async (t) => {
    const t0 = Date.now()
    const { steps, rows, outcome } = await ship(v2, panics)
    const ms = Date.now() - t0
    t.match(outcome.stopped, { result: 'failed', rows: [{ id: 'web-1', state: 'failed', reason: /exited on its own/ }] })
    const tail = await consoleTail(signed, 'web-1', 16384)
    const error = rolloutFailure(outcome.stopped!, steps, rows, new Map([['web-1', consoleExcerpt(tail)]]))
    t.match(error.message, /web-1 on node .*\(failed: the VM process \(pid \d+\) exited on its own\)/)
    t.match(error.message, /last lines of web-1's console:\n[\s\S]*form-test-guest: about to fail: no root filesystem here[\s\S]*Kernel panic - not syncing: Attempted to kill init/, 'the guest\'s last words and the panic')
    t.ok(error.message.split("console:\n")[1].split('\n').length <= 21, 'at most 20 lines of it (and a note on the stack trace left out)')
    t.comment(`the error:\n${error.message}`)
    t.equal((await lab.observed('web-2'))!.image, v2.image, 'web-2 still runs the old image')
    t.comment(`panic at boot: the rollout stopped ${ms} ms after the write`)
  })
})
