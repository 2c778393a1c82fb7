import t from 'tap'
import { execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { StateStore } from '../../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { allCollections } from '../helpers/collections.js'
import { NetnsLab, netnsUnavailable } from '../helpers/netns.js'
import { ROOT } from '../helpers/form.js'

/**
 * The node's DNS, seen from instances: each instance is a network namespace plugged into the node's
 * bridge with the address state gives it (standing in for a booted VM, which resolves through the
 * same glibc `getent` path), the node's DNS server runs in the node's namespace over a real LevelDB
 * state store, and the upstream resolver is a DNS server this test runs in a namespace of its own.
 */

const run = promisify(execFile)
const FIXTURE = join(ROOT, 'tests', 'net', 'fixtures', 'dns-node.ts')
const skip = netnsUnavailable(['getent'])

const [ownerA, ownerB, node] = Array.from({ length: 3 }, () => authorFromKeys(generateAuthorKeys()))
const image = 'a'.repeat(64)
const desired = (name: string) => ({ buildId: 'b', image, node: node.address, state: 'running', name })
const observed = (ip: string) => ({ state: 'running', ip, backend: 'qemu-tcg', updatedAt: Date.now() })

function waitFor(child: ChildProcess, pattern: RegExp, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`no ${pattern} from the fixture`)), 60_000)
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      const parts = buf.split('\n')
      buf = parts.pop()!
      lines.push(...parts)
      if (parts.some((l) => pattern.test(l))) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`the fixture exited (${code}) before ${pattern}`)))
  })
}

t.test('instances resolve their owner\'s .fog names; other names go upstream; owners stay apart', { skip }, async (t) => {
  const lab = new NetnsLab(t)
  const dir = t.testdir()
  const store = await StateStore.open({ collections: allCollections, dir: join(dir, 'state') })
  await store.put(ownerA, 'instances', `${ownerA.address}/hello-web-1/desired`, desired('hello-web-1'))
  await store.put(ownerA, 'instances', `${ownerA.address}/hello-web-2/desired`, desired('hello-web-2'))
  await store.put(ownerB, 'instances', `${ownerB.address}/other-1/desired`, desired('other-1'))
  await store.put(ownerA, 'instances', `${ownerA.address}/stopped-1/desired`, { ...desired('stopped-1'), state: 'stopped' })
  await store.put(node, 'instances', `${ownerA.address}/hello-web-1/observed/${node.address}`, observed('198.18.7.10'))
  await store.put(node, 'instances', `${ownerA.address}/hello-web-2/observed/${node.address}`, observed('198.18.7.11'))
  await store.put(node, 'instances', `${ownerB.address}/other-1/observed/${node.address}`, observed('198.18.7.20'))
  await store.put(node, 'instances', `${ownerA.address}/stopped-1/observed/${node.address}`, { ...observed('198.18.7.12'), state: 'stopped' })
  await store.put(ownerA, 'dns', `${ownerA.address}/api`, { a: ['198.18.7.99'], ttl: 30 })
  await store.close()

  // the node: its bridge holds the subnet's first address; a second bridge is the outside LAN
  const hub = lab.hub('dnb')
  lab.run(['ip', '-n', hub.ns, 'addr', 'add', '198.18.7.1/24', 'dev', hub.bridge])
  const lan = { ns: hub.ns, bridge: 'br1' }
  lab.run(['ip', '-n', hub.ns, 'link', 'add', 'br1', 'type', 'bridge'])
  lab.run(['ip', '-n', hub.ns, 'addr', 'add', '192.0.2.1/24', 'dev', 'br1'])
  lab.run(['ip', '-n', hub.ns, 'link', 'set', 'br1', 'up'])
  const nsA = lab.namespace('dia')
  lab.plug(nsA, hub, '198.18.7.10/24')
  const nsB = lab.namespace('dib')
  lab.plug(nsB, hub, '198.18.7.20/24')
  const nsUp = lab.namespace('dup')
  lab.plug(nsUp, lan, '192.0.2.53/24')
  const nsStranger = lab.namespace('dst')
  lab.plug(nsStranger, lan, '192.0.2.66/24')

  const upLines: string[] = []
  const up = lab.spawnIn(nsUp, [process.execPath, '--import', 'tsx', FIXTURE, 'upstream', '192.0.2.53', '53', JSON.stringify({ 'www.example.test': '203.0.113.7' })])
  await waitFor(up, /^READY$/, upLines)
  const nodeLines: string[] = []
  const listen = [{ host: '198.18.7.1', port: 53 }, { host: '192.0.2.1', port: 53 }]
  const dns = lab.spawnIn(hub.ns, [process.execPath, '--import', 'tsx', FIXTURE, 'node', join(dir, 'state'), JSON.stringify(listen), JSON.stringify(['198.18.0.0/15']), '192.0.2.53'])
  dns.stderr!.on('data', (d: Buffer) => t.comment(d.toString().trim()))
  await waitFor(dns, /^READY$/, nodeLines)

  // each instance's resolv.conf points at its node's bridge address, as the guest's does (form.dns)
  for (const ns of [nsA, nsB, nsStranger]) {
    mkdirSync(`/etc/netns/${ns}`, { recursive: true })
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, `nameserver ${ns === nsStranger ? '192.0.2.1' : '198.18.7.1'}\noptions timeout:1 attempts:1\n`)
    t.teardown(() => rmSync(`/etc/netns/${ns}`, { recursive: true, force: true }))
  }
  // asynchronous: the fixtures' output (what the upstream was asked) is read meanwhile
  const getent = async (ns: string, name: string) => {
    const r = await run('ip', ['netns', 'exec', ns, 'getent', 'ahostsv4', name], { encoding: 'utf8', timeout: 20_000 }).catch((e: { code?: number; stdout?: string }) => ({ stdout: e.stdout ?? '', code: e.code }))
    return { status: 'code' in r ? r.code : 0, addresses: [...new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]))].sort() }
  }

  t.same(await getent(nsA, 'hello-web-1.fog'), { status: 0, addresses: ['198.18.7.10'] }, 'a replica by its name')
  t.same(await getent(nsA, 'hello-web-2.fog'), { status: 0, addresses: ['198.18.7.11'] })
  t.same(await getent(nsA, 'hello-web.fog'), { status: 0, addresses: ['198.18.7.10', '198.18.7.11'] }, 'the build name answers every running replica')
  t.same(await getent(nsA, 'api.fog'), { status: 0, addresses: ['198.18.7.99'] }, "the owner's own record")
  t.equal((await getent(nsA, 'stopped-1.fog')).status, 2, 'a stopped replica has no name')
  t.same(await getent(nsA, 'www.example.test'), { status: 0, addresses: ['203.0.113.7'] }, 'other names are forwarded upstream')
  t.same(await getent(nsA, 'www.example.test'), { status: 0, addresses: ['203.0.113.7'] })
  t.equal(upLines.filter((l) => l === 'ASKED www.example.test A').length, 1, 'the second answer came from the cache')
  t.equal((await getent(nsA, 'nothing.example.test')).status, 2, "the upstream's NXDOMAIN reaches the instance")

  t.same(await getent(nsB, 'other-1.fog'), { status: 0, addresses: ['198.18.7.20'] }, 'the second owner resolves its own names')
  t.equal((await getent(nsB, 'hello-web-1.fog')).status, 2, "the second owner cannot resolve the first owner's replica")
  t.equal((await getent(nsB, 'hello-web.fog')).status, 2, "nor the first owner's build")
  t.equal((await getent(nsB, 'api.fog')).status, 2, "nor the first owner's records")
  t.same(await getent(nsB, 'www.example.test'), { status: 0, addresses: ['203.0.113.7'] }, 'forwarding serves every instance')

  const asked = upLines.length
  t.equal((await getent(nsStranger, 'www.example.test')).status, 2, 'a source outside formnet and the bridge gets no answer (no open resolver)')
  t.equal((await getent(nsStranger, 'fresh.example.test')).status, 2)
  t.equal(upLines.length, asked, 'and nothing was forwarded for it')
})
