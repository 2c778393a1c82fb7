import t from 'tap'
import { execFile, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from '../helpers/form.js'
import { NetnsLab, netnsUnavailable } from '../helpers/netns.js'

/**
 * Issue 20: instances reach the internet through their node by default (NAT), but never the node's
 * own services (API, P2P) beyond DNS, nor the operator's private ranges unless allowed. The node's
 * instance network is set up by the node's own code in a namespace; an instance is a namespace
 * plugged into its bridge; "the internet" is a namespace with a public (TEST-NET-3) address and no
 * route back to the instances, and the operator's LAN one in 192.168/16.
 */

const run = promisify(execFile)
const FIXTURE = join(ROOT, 'tests', 'node', 'fixtures', 'instance-net.ts')
const missing = netnsUnavailable(['iptables', 'ping'])
const skip = missing ? `cannot run here: ${missing}` : false

function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = ''
    child.stderr!.on('data', (d: Buffer) => (err += d))
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('READY') && resolve())
    child.once('exit', (code) => reject(new Error(`the instance network fixture exited ${code}: ${err}`)))
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) throw new Error(`the instance network fixture already exited (${child.exitCode})`)
  const gone = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await gone
}

t.test('NAT by default; the node and private ranges stay closed to instances unless allowed', { skip }, async (t) => {
  const lab = new NetnsLab(t)
  const node = lab.namespace('inn')
  const vm = lab.namespace('inv')
  const internet = lab.namespace('ini')
  const lan = lab.namespace('inl')
  const bridge = lab.name('ibr')
  const veth = (ns: string, here: string, there: string) => {
    const a = lab.name(`x${ns.slice(2, 3)}`)
    lab.run(['ip', 'link', 'add', a, 'netns', node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    lab.run(['ip', '-n', node, 'addr', 'add', here, 'dev', a])
    lab.run(['ip', '-n', node, 'link', 'set', a, 'up'])
    lab.run(['ip', '-n', ns, 'addr', 'add', there, 'dev', 'eth0'])
    lab.run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
  }
  veth(internet, '203.0.113.1/24', '203.0.113.2/24')
  veth(lan, '192.168.77.1/24', '192.168.77.2/24')
  // the node's API stands in: a TCP listener on its bridge address
  const api = lab.spawnIn(node, [process.execPath, '-e', "require('net').createServer((s)=>s.end('api')).listen(3004,'0.0.0.0',()=>console.log('READY'))"])
  await ready(api)

  const start = async (config: Record<string, unknown>) => {
    const child = lab.spawnIn(node, [process.execPath, '--import', 'tsx', FIXTURE, JSON.stringify({ bridge, formnetCidr: '198.18.0.0/15', dnsPort: 53, ...config }), '198.18.5.0/24'])
    await ready(child)
    return child
  }
  let net = await start({ nat: true })
  // the instance: plugged into the node's bridge, its gateway the bridge address
  const outer = lab.name('xv')
  lab.run(['ip', 'link', 'add', outer, 'netns', node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', vm])
  lab.run(['ip', '-n', node, 'link', 'set', outer, 'master', bridge, 'up'])
  lab.run(['ip', '-n', vm, 'addr', 'add', '198.18.5.10/24', 'dev', 'eth0'])
  lab.run(['ip', '-n', vm, 'link', 'set', 'eth0', 'up'])
  lab.run(['ip', '-n', vm, 'route', 'add', 'default', 'via', '198.18.5.1'])

  const ping = (to: string) => run('ip', ['netns', 'exec', vm, 'ping', '-c', '1', '-W', '2', to]).then(() => true, () => false)
  const connect = (to: string, port: number) =>
    run('ip', ['netns', 'exec', vm, process.execPath, '-e', `const s=require('net').connect(${port},'${to}');s.on('data',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),2000)`]).then(() => true, () => false)

  t.ok(await ping('203.0.113.2'), 'the instance reaches the internet (masqueraded: the far side has no route back to it)')
  t.ok(await ping('198.18.5.1'), 'and pings its gateway')
  t.notOk(await connect('198.18.5.1', 3004), "but not the node's API on the bridge address")
  t.notOk(await connect('203.0.113.1', 3004), "nor on the node's other addresses")
  t.notOk(await ping('192.168.77.2'), "nor the operator's private LAN")

  // the same node restarted with NAT off and the LAN allowed
  await stop(net)
  net = await start({ nat: false, allowCidrs: ['192.168.77.0/24'] })
  // the node removed its bridge on the way down; the instance's tap goes into the new one
  lab.run(['ip', '-n', node, 'link', 'set', outer, 'master', bridge, 'up'])
  t.ok(await ping('198.18.5.1'), 'the instance is on the new bridge')
  t.notOk(await ping('203.0.113.2'), '[node] nat = false: no way out to the internet')
  t.notOk(await connect('198.18.5.1', 3004), 'the node stays closed')
  // the LAN host needs a route back to the instance without NAT
  lab.run(['ip', '-n', lan, 'route', 'add', '198.18.5.0/24', 'via', '192.168.77.1'])
  t.ok(await ping('192.168.77.2'), 'instance_allow_cidrs opens a private range')

  await stop(net)
  const { stdout } = await run('ip', ['netns', 'exec', node, 'sh', '-c', 'iptables -w -S; iptables -w -t nat -S'])
  t.notMatch(stdout, /form-vmm/, 'every rule goes with the node')
})
