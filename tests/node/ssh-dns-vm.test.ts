import t from 'tap'
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { walletSigner } from '../../plugins/kit/lib/signer.js'
import { createWallet } from '../../plugins/kit/lib/wallet.js'
import { writeDesiredRecord } from '../../plugins/instances/lib/views.js'
import type { DesiredInstance, ObservedInstance } from '../../plugins/instances/index.js'
import { ROOT, until } from '../helpers/form.js'
import { guestImageUnavailable } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { VmmLab } from '../helpers/vmm-lab.js'

/**
 * Issue 20 with a real VM (a Debian image built by `form pack build`, booted under QEMU): the guest
 * reports its SSH host keys on the console, `form manage ssh` connects with StrictHostKeyChecking=yes
 * on the first try, and inside the instance its node's DNS answers `.fog` names and forwards the
 * rest to an upstream resolver this test runs in a namespace of its own. A second owner's instance on
 * the same node resolves its own names and none of the first owner's.
 */

const run = promisify(execFile)
const FIXTURE = join(ROOT, 'tests', 'net', 'fixtures', 'dns-node.ts')
const missing = netnsUnavailable(['qemu-system-x86_64', 'iptables', 'mmdebstrap', 'ssh', 'ssh-keygen']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : false

t.test('strict SSH on the first try, and .fog names inside a real instance', { skip }, async (t) => {
  // not t.testdir(): the lab's makeEnv calls it again, which empties it
  const dir = await mkdtemp(join(tmpdir(), 'form-ssh-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const key = join(dir, 'id_ed25519')
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ada@test', '-f', key])
  const lab = new VmmLab(t, { builtImage: true, sshPublicKey: await readFile(`${key}.pub`, 'utf8'), net: ['dns_upstreams = ["192.0.2.53"]'] })
  // the upstream resolver, in its own namespace on a link from the node's
  const upNs = lab.net.namespace('fup')
  const link = lab.net.name('fupv')
  lab.net.run(['ip', 'link', 'add', link, 'netns', lab.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', upNs])
  lab.net.run(['ip', '-n', lab.ns, 'addr', 'add', '192.0.2.1/24', 'dev', link])
  lab.net.run(['ip', '-n', lab.ns, 'link', 'set', link, 'up'])
  lab.net.run(['ip', '-n', upNs, 'addr', 'add', '192.0.2.53/24', 'dev', 'eth0'])
  lab.net.run(['ip', '-n', upNs, 'link', 'set', 'eth0', 'up'])
  const up: ChildProcess = lab.net.spawnIn(upNs, [process.execPath, '--import', 'tsx', FIXTURE, 'upstream', '192.0.2.53', '53', JSON.stringify({ 'www.example.test': '203.0.113.7' })])
  const asked: string[] = []
  up.stdout!.on('data', (d: Buffer) => asked.push(...d.toString().split('\n').filter(Boolean)))

  await lab.setUp()
  // Debian with systemd: a larger disk and more memory than the busybox guest
  await lab.createInstance('sshvm-1', { diskGb: 5, memoryMb: 512 })
  // another owner's replica of the same image on the same node, booting alongside
  const stranger = walletSigner(createWallet())
  const node = await lab.nodeAddress()
  const strangerDesired: DesiredInstance = { buildId: 'e'.repeat(64), image: lab.image.image, node, state: 'running', name: 'other-1', vcpus: 1, memoryMb: 512, diskGb: 5 }
  await writeDesiredRecord(lab.client, stranger, 'other-1', strangerDesired)
  const running = await lab.until('sshvm-1', 'running', (o) => (o.hostKeys?.length ?? 0) > 0, 900_000)
  t.match(running.hostKeys, [/^ssh-ed25519 AAAA/], 'the observed record carries the host keys the guest reported')

  const planned = JSON.parse(lab.ok(await lab.form(['manage', 'ssh', 'sshvm-1', '--json'])).stdout)
  t.match(planned.command.join(' '), /-o StrictHostKeyChecking=yes/, 'ssh runs with strict host key checking')
  const knownHosts = join(lab.env.configDir, 'known_hosts')
  t.match(await readFile(knownHosts, 'utf8'), `${running.ip} ${running.hostKeys![0]}`, "the CLI's known_hosts holds the reported key")

  const ssh = (...command: string[]) => lab.form(['manage', 'ssh', 'sshvm-1', '-i', key, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=30', '--', ...command])
  const first = await ssh('cat', '/etc/ssh/ssh_host_ed25519_key.pub')
  t.equal(first.code, 0, `the first connection succeeds without a question: ${first.stderr}`)
  t.equal(first.stdout.trim().split(' ').slice(0, 2).join(' '), running.hostKeys!.find((k) => k.startsWith('ssh-ed25519')), 'and the key it checked is the guest\'s own')

  // strictness is real: a wrong key for the address is refused
  const wrong = join(dir, 'wrong_known_hosts')
  const other = join(dir, 'other')
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other])
  await writeFile(wrong, `${running.ip} ${(await readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ')}\n`)
  const refused = await run('ip', ['netns', 'exec', lab.ns, 'ssh', '-i', key, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${wrong}`, '-o', 'StrictHostKeyChecking=yes', `ada@${running.ip}`, 'true']).then(() => 0, (e: { code: number }) => e.code)
  t.equal(refused, 255, 'ssh refuses a host whose key is not the reported one')

  // names, from inside the instance, through its node's DNS (the guest's resolv.conf: its gateway)
  const getent = async (...args: string[]) => {
    const r = await ssh('getent', ...args)
    return { code: r.code, addresses: [...new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]))].sort() }
  }
  t.same(await getent('ahostsv4', 'sshvm-1.fog'), { code: 0, addresses: [running.ip] }, 'the replica resolves by its name')
  t.same(await getent('ahostsv4', 'sshvm.fog'), { code: 0, addresses: [running.ip] }, 'and by its build name')
  t.same(await getent('ahostsv4', 'www.example.test'), { code: 0, addresses: ['203.0.113.7'] }, 'other names are forwarded')
  t.ok(asked.includes('ASKED www.example.test A'), 'to the upstream resolver')
  t.equal((await getent('ahostsv4', 'someone-else.fog')).code, 2, 'an unknown .fog name is NXDOMAIN')
  lab.ok(await lab.form(['manage', 'dns', 'set', 'api', '--a', '203.0.113.9']))
  t.same(await until('the owner\'s own name', async () => {
    const r = await getent('ahostsv4', 'api.fog')
    return r.code === 0 ? r : undefined
  }, 60_000), { code: 0, addresses: ['203.0.113.9'] }, "the owner's own record answers in its instance")

  // the second owner's instance: its own names answer, the first owner's do not
  const second = await until('the other owner\'s instance to run', async () => {
    const rec = await lab.client.get<{ value: ObservedInstance }>(`/v1/state/records/instances/${stranger.address}/other-1/observed/${node}`).catch(() => undefined)
    return rec?.value.state === 'running' ? rec.value : undefined
  }, 900_000)
  const fromOther = async (name: string) => {
    const r = await run('ip', ['netns', 'exec', lab.ns, 'ssh', '-i', key, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=30', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', `ada@${second.ip}`, 'getent', 'ahostsv4', name]).then(
      (x) => ({ code: 0, stdout: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout ?? '' }),
    )
    return { code: r.code, addresses: [...new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]))].sort() }
  }
  t.same(await fromOther('other-1.fog'), { code: 0, addresses: [second.ip] }, "the second owner's replica resolves its own name")
  t.same(await fromOther('sshvm-1.fog'), { code: 2, addresses: [] }, "but not the first owner's replica")
  t.same(await fromOther('sshvm.fog'), { code: 2, addresses: [] }, "nor the first owner's build name")
  t.same(await fromOther('api.fog'), { code: 2, addresses: [] }, "nor the first owner's own records")
  t.same(await fromOther('www.example.test'), { code: 0, addresses: ['203.0.113.7'] }, 'names outside .fog are forwarded for it too')
})
