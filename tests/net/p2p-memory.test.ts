import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { ByteBudget } from '../../plugins/net/lib/p2p/framing.js'
import { memoryReleaser, ReleaseRule } from '../../plugins/net/service/p2p/memory.js'

const MiB = 2 ** 20
const budget = () => new ByteBudget(512 * MiB, 512 * MiB)
/** holds `mib` MiB of frames in the budget, as a peer's half-sent frames would; returns their drop */
const hold = (b: ByteBudget, mib: number) => b.reserve('stranger', mib * MiB, new AbortController().signal)

t.test('release rule: a burst over 32 MiB is released once, when it has fallen under a quarter of its peak', async (t) => {
  const b = budget()
  const rule = new ReleaseRule(b)
  const drop = await hold(b, 40)
  t.equal(rule.due(), false, 'frames still held: nothing to give back')
  drop()
  t.equal(rule.due(), true, 'dropped: collect')
  t.equal(rule.due(), false, 'the same burst is not collected twice')
  const again = await hold(b, 40)
  again()
  t.equal(rule.due(), true, 'a second burst is released again')
})

t.test('release rule: up to 32 MiB is left to V8', async (t) => {
  const b = budget()
  const rule = new ReleaseRule(b)
  ;(await hold(b, 32))()
  t.equal(rule.due(), false)
  ;(await hold(b, 33))()
  t.equal(rule.due(), true, 'just over the line')
})

t.test('release rule: waits until under a quarter of the peak is held', async (t) => {
  const b = budget()
  const rule = new ReleaseRule(b)
  const most = await hold(b, 30)
  const rest = await hold(b, 10)
  t.equal(rule.due(), false, '40 MiB held')
  most()
  t.equal(rule.due(), false, '10 MiB held is a quarter of 40, not under it')
  rest()
  t.equal(rule.due(), true, 'nothing held')
})

t.test('release rule: a burst that came and went between two looks counts', async (t) => {
  const b = budget()
  const rule = new ReleaseRule(b)
  t.equal(rule.due(), false)
  ;(await hold(b, 100))()
  t.equal(b.bytes, 0, 'the look sees an empty budget')
  t.equal(rule.due(), true)
})

t.test('releaser: collects, then asks the allocator for the pages and says how much came back; stop ends it', async (t) => {
  const b = budget()
  const calls: string[] = []
  const logged: [string, string | undefined][] = []
  const releaser = await memoryReleaser(b, (m, level) => void logged.push([m, level]), { gc: () => void calls.push('gc'), trim: () => void calls.push('trim'), everyMs: 20 })
  t.teardown(releaser.stop)
  ;(await hold(b, 40))()
  await sleep(100)
  t.same(calls, ['gc'], 'one collection for one burst, the trim after a delay')
  await sleep(1100)
  t.same(calls, ['gc', 'trim'])
  t.match(logged, [[/^dropped frames' memory given back: RSS \d+ -> \d+ MiB$/, 'info']])
  releaser.stop()
  ;(await hold(b, 40))()
  await sleep(100)
  t.same(calls, ['gc', 'trim'], 'stopped: no more looks')
})

t.test('releaser: stopped between the collection and the trim, it does not trim', async (t) => {
  const b = budget()
  const calls: string[] = []
  const releaser = await memoryReleaser(b, () => {}, { gc: () => void calls.push('gc'), trim: () => void calls.push('trim'), everyMs: 20 })
  ;(await hold(b, 40))()
  await sleep(100)
  releaser.stop()
  await sleep(1100)
  t.same(calls, ['gc'])
})

t.test('releaser: without malloc_trim it still collects', async (t) => {
  const b = budget()
  const calls: string[] = []
  const releaser = await memoryReleaser(b, () => {}, { gc: () => void calls.push('gc'), trim: undefined, everyMs: 20 })
  t.teardown(releaser.stop)
  ;(await hold(b, 40))()
  await sleep(100)
  t.same(calls, ['gc'])
})
