import t from 'tap'
import { consoleExcerpt, planRollout, reportsOn, rolloutFailure, runRollout, type Before, type RolloutRow, type RolloutView } from '../../plugins/pack/lib/rollout.js'
import type { ShipPlan } from '../../plugins/pack/lib/ship.js'
import type { DesiredInstance, ObservedInstance } from '../../plugins/instances/index.js'

const OLD = '0'.repeat(64)
const NEW = '1'.repeat(64)
const desired = (id: string, image = NEW, state: DesiredInstance['state'] = 'running'): DesiredInstance => ({ buildId: 'b', image, node: `node-${id}`, state, name: id, vcpus: 1, memoryMb: 256, diskGb: 1 })
type Write = ShipPlan['writes'][number]
const w = (id: string, action: Write['action'], image = NEW): Write => ({ id, action, desired: desired(id, image, action === 'delete' ? 'deleted' : 'running') })
const before = (entries: [string, string, DesiredInstance['state']?][]): Before => new Map(entries.map(([id, image, state]) => [id, { image, state: state ?? 'running' }]))

t.test('a new image replaces running replicas one at a time after the new, deleted and unchanged ones', async (t) => {
  const writes = [w('web-1', 'update'), w('web-2', 'update'), w('web-3', 'update'), w('web-4', 'create'), w('web-5', 'delete', OLD)]
  const was = before([['web-1', OLD], ['web-2', OLD], ['web-3', NEW], ['web-5', OLD]])
  t.same(planRollout(writes, was, { strategy: 'rolling', maxUnavailable: 1 }), [
    { ids: ['web-3', 'web-4', 'web-5'], replaces: false },
    { ids: ['web-1'], replaces: true },
    { ids: ['web-2'], replaces: true },
  ])
  t.same(planRollout(writes, was, { strategy: 'rolling', maxUnavailable: 2 }).map((s) => s.ids), [['web-3', 'web-4', 'web-5'], ['web-1', 'web-2']], 'two at a time')
  t.same(planRollout(writes, was, { strategy: 'immediate', maxUnavailable: 1 }), [{ ids: ['web-1', 'web-2', 'web-3', 'web-4', 'web-5'], replaces: false }], 'immediate: one step, as before')
})

t.test('only running replicas with another image are rolled; a stopped one changes at once', async (t) => {
  const writes = [w('web-1', 'update'), w('web-2', 'update')]
  t.same(planRollout(writes, before([['web-1', OLD, 'stopped'], ['web-2', OLD]]), { strategy: 'rolling', maxUnavailable: 1 }), [
    { ids: ['web-1'], replaces: false },
    { ids: ['web-2'], replaces: true },
  ])
  t.same(planRollout(writes, before([['web-1', NEW], ['web-2', NEW]]), { strategy: 'rolling', maxUnavailable: 1 }), [{ ids: ['web-1', 'web-2'], replaces: false }], 'same image: nothing to roll')
  t.throws(() => planRollout(writes, new Map(), { strategy: 'rolling', maxUnavailable: 0 }), { code: 'USAGE' })
})

t.test('a replica already down on the old image counts against --max-unavailable', async (t) => {
  const writes = [w('web-1', 'update'), w('web-2', 'update'), w('web-3', 'update')]
  const was = (down: string): Before => new Map(['web-1', 'web-2', 'web-3'].map((id) => [id, { image: OLD, state: 'running' as const, down: id === down }]))
  // the old plan took web-1 and web-2 while web-3 was down: all three out at once with a budget of 2
  t.same(planRollout(writes, was('web-3'), { strategy: 'rolling', maxUnavailable: 2 }), [
    { ids: ['web-3', 'web-1'], replaces: true },
    { ids: ['web-2'], replaces: true },
  ], 'the down one first, with one serving replica beside it')
  // and with the default budget: web-1 went while web-2 was down (two out of three)
  t.same(planRollout(writes, was('web-2'), { strategy: 'rolling', maxUnavailable: 1 }).map((s) => s.ids), [['web-2'], ['web-1'], ['web-3']], 'the down one alone, then one at a time')
  const allDown: Before = new Map(['web-1', 'web-2', 'web-3'].map((id) => [id, { image: OLD, state: 'running' as const, down: id !== 'web-1' }]))
  t.same(planRollout(writes, allDown, { strategy: 'rolling', maxUnavailable: 1 }).map((s) => s.ids), [['web-2', 'web-3'], ['web-1']], 'more down than the budget: they go together, the serving one waits for them')
  // every step's unavailable replicas (its own, and the down ones not yet replaced) stay within the budget whenever that is possible
  for (const [down, max] of [['web-1', 1], ['web-2', 1], ['web-3', 1], ['web-3', 2], ['web-1', 2]] as const) {
    const steps = planRollout(writes, was(down), { strategy: 'rolling', maxUnavailable: max })
    const fixed = new Set<string>()
    for (const s of steps) {
      const out = new Set([...s.ids, ...(fixed.has(down) ? [] : [down])])
      t.ok(out.size <= max, `--max-unavailable ${max} with ${down} down: step ${s.ids.join(', ')} leaves ${out.size} out`)
      for (const id of s.ids) fixed.add(id)
    }
  }
})

t.test('a report counts for the shipped image only', async (t) => {
  const o = (extra: Partial<ObservedInstance>): ObservedInstance => ({ state: 'running', backend: 'qemu-tcg', updatedAt: 5, ...extra })
  t.notOk(reportsOn(o({ image: OLD, updatedAt: 9 }), NEW, o({ image: OLD }), false), 'the old VM still running, however fresh its record')
  t.ok(reportsOn(o({ image: NEW }), NEW, o({ image: OLD }), false))
  t.ok(reportsOn(o({ state: 'failed', updatedAt: 9 }), NEW, o({}), false), 'a failure without a disk, written after the ship')
  t.notOk(reportsOn(o({ state: 'failed' }), NEW, o({}), false), 'the failure seen before the ship')
  t.notOk(reportsOn(undefined, NEW, undefined, true))
})

/** Nodes as a script: each list() moves every written replica one phase on; `fate` says where one ends. */
function fakeNetwork(fate: Record<string, 'ok' | 'failed' | 'unhealthy'>) {
  const phases = new Map<string, number>()
  const log: string[] = []
  const list = async (): Promise<RolloutView[]> => {
    const views: RolloutView[] = []
    for (const id of Object.keys(fate)) {
      const p = phases.get(id)
      if (p === undefined) {
        views.push({ id, host: 'n', observed: { state: 'running', image: OLD, backend: 'x', updatedAt: 1, health: { state: 'healthy' } as never } })
        continue
      }
      phases.set(id, p + 1)
      const end = fate[id]
      const observed: ObservedInstance =
        p < 1 ? { state: 'booting', image: NEW, backend: 'x', updatedAt: 2 + p }
        : end === 'failed' ? { state: 'failed', reason: 'the VM exited during boot', image: NEW, backend: 'x', updatedAt: 9 }
        : { state: 'running', image: NEW, backend: 'x', updatedAt: 9, health: { state: end === 'ok' ? 'healthy' : 'unhealthy', reason: 'http / on 8080: connection refused' } as never }
      views.push({ id, host: 'n', observed })
    }
    // replicas written but not yet running healthy on the new image: the ones not serving
    log.push(Object.keys(fate).filter((id) => (phases.get(id) ?? 99) <= 1).join(' ') + '|' + Object.keys(fate).map((id) => `${id}:${phases.has(id) ? 'new' : 'old'}`).join(' '))
    return views
  }
  const write = async (x: Write) => {
    phases.set(x.id, 0)
  }
  return { list, write, log }
}

t.test('runRollout: each batch ready before the next is written; a broken one stops it with the rest untouched', async (t) => {
  const writes = [w('web-1', 'update'), w('web-2', 'update'), w('web-3', 'update')]
  const steps = planRollout(writes, before([['web-1', OLD], ['web-2', OLD], ['web-3', OLD]]), { strategy: 'rolling', maxUnavailable: 1 })
  const rows = (): RolloutRow[] => writes.map((x) => ({ id: x.id, node: 'n', state: 'requested', ip: null }))
  const common = { steps, writes, image: NEW, before: new Map(), unchanged: new Set<string>(), deadline: Date.now() + 60_000, intervalMs: 1 }

  const ok = fakeNetwork({ 'web-1': 'ok', 'web-2': 'ok', 'web-3': 'ok' })
  const done = await runRollout({ ...common, rows: rows(), ...ok })
  t.same(done.steps.map((s) => [s.ids, s.result]), [[['web-1'], 'ready'], [['web-2'], 'ready'], [['web-3'], 'ready']])
  t.notOk(done.stopped)
  t.ok(ok.log.every((l) => l.split('|')[0].split(' ').filter(Boolean).length <= 1), `never more than one replica down at a time: ${ok.log.map((l) => l.split('|')[0] || '-').join(', ')}`)

  const broken = fakeNetwork({ 'web-1': 'ok', 'web-2': 'unhealthy', 'web-3': 'ok' })
  const stopped = await runRollout({ ...common, rows: rows(), ...broken })
  t.match(stopped.stopped, { index: 1, result: 'unhealthy', rows: [{ id: 'web-2', health: { state: 'unhealthy', reason: /connection refused/ } }] })
  t.same(stopped.notWritten, ['web-3'], 'web-3 was never written: it keeps the old image')
  t.ok(broken.log.every((l) => l.includes('web-3:old')))

  const dead = fakeNetwork({ 'web-1': 'failed', 'web-2': 'ok', 'web-3': 'ok' })
  const first = await runRollout({ ...common, rows: rows(), ...dead })
  t.match(first.stopped, { index: 0, result: 'failed', rows: [{ id: 'web-1', reason: 'the VM exited during boot' }] })
  t.same(first.notWritten, ['web-2', 'web-3'])
})

t.test('a step of new replicas that fails names the failed one first, not one still booting', async (t) => {
  // as bench/ship.ts saw it: the image transfer to web-2's node broke while web-1 was still booting
  const steps = planRollout([w('web-1', 'create'), w('web-2', 'create')], new Map(), { strategy: 'rolling', maxUnavailable: 1 })
  const rows: RolloutRow[] = [
    { id: 'web-1', node: 'node-one-0000', state: 'booting', ip: null, health: { state: 'starting', since: 0, restarts: 0, checks: 1 } },
    { id: 'web-2', node: 'node-two-0000', state: 'failed', ip: null, reason: 'could not create the instance: the disk of image … could not be fetched' },
  ]
  const error = rolloutFailure({ index: 0, result: 'failed', rows }, steps, rows)
  t.equal(error.code, 'SHIP_REPLICA_FAILED')
  t.match(error.message, /^2 of 2 replicas are not running and healthy: web-2 on node node-two-0… \(failed: could not create the instance: .*\), web-1 on node node-one-0… \(booting, starting\)\./)
  t.match(error.hint, /form manage logs web-2/, 'the hint points at the failed replica')
  t.notMatch(error.hint, /web-1/)
})

t.test('a console excerpt ends at a kernel panic, not in its stack trace', async (t) => {
  const boot = Array.from({ length: 30 }, (_, i) => `boot line ${i}`)
  t.equal(consoleExcerpt(boot.join('\n'), 20), boot.slice(-20).join('\n'), 'no panic: the last lines')
  const trace = Array.from({ length: 25 }, (_, i) => `[ 11.0] trace ${i}`)
  const panicked = [...boot, 'guest: about to fail', '[ 11.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100', ...trace].join('\n')
  const excerpt = consoleExcerpt(panicked, 20).split('\n')
  t.equal(excerpt.length, 21)
  t.match(excerpt.at(-2), /Kernel panic - not syncing/)
  t.equal(excerpt.at(-3), 'guest: about to fail')
  t.equal(excerpt.at(-1), '(25 more lines: the kernel\'s stack trace)')
  const short = ['a', '[ 1.0] Kernel panic - not syncing: x', 'b'].join('\n')
  t.equal(consoleExcerpt(short, 20), short, 'a panic within the last lines: those lines')
})
