import t from 'tap'
import { statfsSync } from 'node:fs'
import { availableParallelism, totalmem } from 'node:os'
import { join } from 'node:path'
import { hostResources, nodeConfiguration, offeredResources } from '../../plugins/node/index.js'
import { planShip } from '../../plugins/pack/lib/ship.js'
import { form, makeEnv, startNode } from '../helpers/form.js'

const reserve = nodeConfiguration.defaults.reserve

t.test('a node offers the host minus the reserve, unless [node.resources] says otherwise', async (t) => {
  const dir = t.testdir()
  const fs = statfsSync(dir)
  const host = hostResources(join(dir, 'not', 'made', 'yet'), reserve)
  t.equal(host.vcpus, Math.max(1, availableParallelism() - reserve.vcpus), 'CPUs minus the reserve')
  t.equal(host.memory_mb, Math.floor(totalmem() / 2 ** 20) - reserve.memory_mb, 'memory minus the reserve')
  // free space moves while other tests write: within 1 GB of what statfs said a moment ago
  t.ok(Math.abs(host.disk_gb - (Math.floor((fs.bavail * fs.bsize) / 1e9) - reserve.disk_gb)) <= 1, 'free disk of the data dir\'s filesystem minus the reserve')
  const none = { vcpus: 0, memory_mb: 0, disk_gb: 0 }
  t.equal(hostResources(dir, none).memory_mb - hostResources(dir, reserve).memory_mb, reserve.memory_mb, 'the reserve is what makes the difference')
  t.equal(hostResources(dir, { ...none, vcpus: 1 }).vcpus, Math.max(1, availableParallelism() - 1), 'a CPU reserve is taken off')
  t.same(hostResources(dir, { vcpus: 10_000, memory_mb: 10 ** 9, disk_gb: 10 ** 9 }), { vcpus: 1, memory_mb: 1, disk_gb: 1 }, 'never less than 1 of each')

  const some = offeredResources({ resources: { vcpus: 3 } }, reserve, dir)
  t.equal(some.vcpus, 3, 'a configured key wins')
  t.same(some.measured, ['memory_mb', 'disk_gb'])
  t.equal(some.memory_mb, host.memory_mb)
  const all = offeredResources({ resources: { vcpus: 3, memory_mb: 2048, disk_gb: 20 } }, reserve, dir)
  t.same(all, { vcpus: 3, memory_mb: 2048, disk_gb: 20, measured: [] }, 'all configured: nothing measured')
})

t.test('form node start offers the host\'s resources in its node record', async (t) => {
  const fe = await makeEnv(t)
  const node = await startNode(fe)
  t.teardown(() => node.stop())
  const r = await form(fe, ['state', 'list', 'nodes', '--json'])
  t.equal(r.code, 0, r.stderr)
  const records = JSON.parse(r.stdout) as { records?: { value: { capacity: Record<string, number> } }[] } | { value: { capacity: Record<string, number> } }[]
  const list = Array.isArray(records) ? records : records.records!
  const capacity = list[0].value.capacity
  const host = hostResources(join(fe.dir, 'data'), reserve)
  t.equal(capacity.vcpus, host.vcpus)
  t.equal(capacity.memoryMb, host.memory_mb)
  t.ok(Math.abs(capacity.diskGb - host.disk_gb) <= 1, `disk ${capacity.diskGb} GB ~ ${host.disk_gb} GB`)
  t.match(node.output(), /resources offered .*"measured":"vcpus,memory_mb,disk_gb"/)
})

t.test('SHIP_NO_NODES names the node\'s [node.resources] as a way out', async (t) => {
  const node = { collection: 'nodes', key: '0x' + 'a'.repeat(40), value: { capacity: { vcpus: 1, memoryMb: 1024, diskGb: 10 }, heartbeat: 1000 }, deleted: false, hash: 'h', t: { ms: 0, counter: 0, node: '' }, author: '' }
  t.throws(
    () => planShip({ owner: '0x' + 'e'.repeat(40), build: 'f'.repeat(64), name: 'web', image: '1'.repeat(64), resources: { vcpus: 2, memoryMb: 512, diskGb: 1 }, replicas: 1, failoverMs: 30_000, imageHolders: [], nodes: [node as never], seen: new Map([[node.key, 1000]]), instances: [], now: 1000 }),
    { code: 'SHIP_NO_NODES', message: /needs 2 vCPU, 1 free/, hint: /\[node\.resources\].*\[node\.reserve\]/ },
  )
})
