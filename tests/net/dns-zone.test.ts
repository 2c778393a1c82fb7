import t from 'tap'
import { OwnerNames, Zone } from '../../plugins/net/lib/dns/zone.js'

// The owners' names are kept one change at a time (a bulk of name writes no longer re-reads every
// name); whatever the order of changes, the names must answer as a zone built from the final records.
t.test('owner names kept change by change answer as a zone read from the final records', async (t) => {
  const owners = ['0xaa', '0xbb']
  // "Api" and "api" are two keys for one name; "bad_name!" is no name; some values are not records
  const names = ['api', 'Api', 'www', 'db', 'bad_name!']
  const values = [{ a: ['198.18.0.1'] }, { a: ['198.18.0.2'], ttl: 5 }, { txt: ['v2'] }, { a: 'not a list' }, undefined]
  let seed = 7
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
  for (let round = 0; round < 50; round++) {
    const own = new OwnerNames()
    const final = new Map<string, unknown>()
    for (let i = 0; i < 40; i++) {
      const key = `${owners[random(2)]}/${names[random(names.length)]}`
      const value = values[random(values.length)]
      own.set(key, value)
      if (value === undefined) final.delete(key)
      else final.set(key, value)
    }
    const read = Zone.build({ instances: [], peers: [], dns: [...final].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => ({ key, value })) })
    const kept = new Zone(own)
    for (const owner of owners) {
      for (const name of ['api', 'www', 'db', 'bad_name!']) t.same(kept.lookup(owner, name), read.lookup(owner, name), `round ${round}: ${owner} ${name}`)
    }
    t.equal(kept.size, read.size, `round ${round}: as many names`)
  }
})

t.test('an owner\'s own name wins over an instance name, and stops winning when it is deleted', async (t) => {
  const own = new OwnerNames()
  const instances = [
    { key: '0xaa/web-1/desired', value: { state: 'running' } },
    { key: '0xaa/web-1/observed/0xnode', value: { state: 'running', ip: '198.18.5.2', updatedAt: 1 } },
  ]
  const zone = Zone.build({ instances, peers: [] }, own)
  t.same(zone.lookup('0xaa', 'web')?.a, ['198.18.5.2'], 'the build name answers with its replica')
  own.set('0xaa/web', { a: ['203.0.113.9'] })
  t.same(zone.lookup('0xaa', 'WEB')?.a, ['203.0.113.9'], 'the owner\'s record wins, without a rebuild')
  t.equal(zone.lookup('0xbb', 'web'), undefined, 'in its owner\'s scope only')
  own.set('0xaa/web', undefined)
  t.same(zone.lookup('0xaa', 'web')?.a, ['198.18.5.2'], 'deleted: the instance name answers again')
})
