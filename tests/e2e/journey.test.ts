import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { form, until } from '../helpers/form.js'
import { FormnetLab, type LabDeveloper, type LabNode } from '../helpers/formnet-lab.js'
import { guestImageUnavailable } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { builderSkip, shareCachedBase } from '../helpers/builder.js'

// builds, boots three Debian VMs under TCG and waits out a failover: longer than tap's default
t.setTimeout(60 * 60_000)

const missing = netnsUnavailable(['qemu-system-x86_64', 'wireguard-go', 'ssh', 'ssh-keygen', 'curl']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : builderSkip()

interface Replica {
  id: string
  node: string
  state: string
  ip: string | null
}

t.test(
  'the developer journey on three nodes: join, formnet-up, pack init/build/ship --replicas 2, get-ip, SSH and HTTP on each replica; a hosting node dies and its replica runs on the third node',
  { skip },
  async (t) => {
    const lab = new FormnetLab(t)
    const nodeConfig = (i: number) => ({
      node: ['hypervisor = "auto"', 'nat = false', 'shutdown_timeout_s = 5', 'boot_timeout_s = 600'],
      'node.resources': ['vcpus = 2', 'memory_mb = 1536', 'disk_gb = 20'],
      net: [`bridge_name = "${lab.net.name(`fb${i}`)}"`],
    })
    // node 1 builds (it has the machine's cached Debian base); nodes 2 and 3 only run instances
    const nodes: LabNode[] = [await lab.addNode({ config: nodeConfig(1), beforeStart: shareCachedBase }), await lab.addNode({ config: nodeConfig(2) }), await lab.addNode({ config: nodeConfig(3) })]
    const addresses = await Promise.all(nodes.map(async (n) => (await lab.status(n)).address))
    const accounts = await Promise.all(nodes.map(async (n) => (await createClient({ socket: n.env.socket }).get<{ address: string }>('/v1/state/info')).address))
    t.ok(await lab.until(async () => JSON.parse(lab.ok(await lab.form(nodes[0], ['state', 'list', 'nodes', '--json'])).stdout).records.length === 3, 60_000), 'the three nodes see each other in state')

    // the developer: wallet, formnet membership, the interface up
    const dev: LabDeveloper = await lab.addDeveloper(nodes[0])
    const sh = (args: string[], timeoutMs = 30_000) => spawnSync('ip', ['netns', 'exec', dev.ns, ...args], { encoding: 'utf8', timeout: timeoutMs })
    const joined = JSON.parse(lab.ok(await lab.form(dev, ['manage', 'join', '--interface', dev.interface, '--json'])).stdout)
    t.match(joined.address, /^10\./, `joined formnet as ${joined.address}`)
    lab.ok(await lab.form(dev, ['manage', 'formnet-up', '--detach', '--interval-ms', '1000']))
    for (const [i, a] of addresses.entries()) t.ok(await lab.ping(dev.ns, a, 60_000), `the developer reaches node ${i + 1} over formnet`)

    const key = join(dev.env.dir, 'id_ed25519')
    t.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'dev@journey', '-f', key]).status, 0)
    const app = join(dev.env.dir, 'hello')
    lab.ok(await lab.form(dev, ['pack', 'init', '--template', 'hello-web', '--dir', app, '--ssh-key', `${key}.pub`]))
    t.match(await readFile(join(app, 'Formfile'), 'utf8'), (await readFile(`${key}.pub`, 'utf8')).trim(), 'the Formfile carries the public key')

    const built = JSON.parse(lab.ok(await form(dev.env, ['pack', 'build', '--json'], { netns: dev.ns, cwd: app, timeoutMs: 1_200_000 })).stdout)
    t.match(built.status, { state: 'built', image: /^[0-9a-f]{64}$/ }, 'the image is built on node 1')
    const buildId: string = built.buildId

    const shipped = await form(dev.env, ['pack', 'ship', '--replicas', '2', '--failover-after', '20', '--json'], { netns: dev.ns, cwd: app, timeoutMs: 1_500_000 })
    lab.ok(shipped)
    const ship = JSON.parse(shipped.stdout)
    t.equal(ship.replicas.length, 2, 'two replicas')
    t.equal(new Set(ship.replicas.map((r: Replica) => r.node)).size, 2, 'on two different nodes')
    t.ok(ship.replicas.some((r: Replica) => r.node === accounts[0]), 'one on the node that holds the image')
    t.comment(`ship: scheduled in ${ship.scheduledMs} ms, all replicas running after ${ship.readyMs} ms`)

    const getIp = async (): Promise<Replica[]> => JSON.parse(lab.ok(await lab.form(dev, ['manage', 'get-ip', '--build-id', buildId, '--json'])).stdout).replicas
    const replicas = await getIp()
    t.same(replicas.map((r) => r.state), ['running', 'running'])
    const plain = lab.ok(await lab.form(dev, ['manage', 'get-ip', '--build-id', buildId])).stdout.trim().split('\n')
    t.same(plain, replicas.map((r) => r.ip), 'get-ip prints one address per replica')

    const sshArgs = ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR']
    /** SSH and HTTP from the developer's namespace, over formnet, to one replica. */
    const reach = async (r: Replica, label: string) => {
      const ssh = await until(`ssh to ${r.id} at ${r.ip}`, async () => {
        const res = sh(['ssh', ...sshArgs, `dev@${r.ip}`, 'echo $(whoami)@$(cat /etc/hostname); sudo -n true && echo sudo-ok'])
        return res.status === 0 ? res : undefined
      }, 120_000).catch(() => sh(['ssh', ...sshArgs, `dev@${r.ip}`, 'true']))
      t.equal(ssh.status, 0, `${label}: ssh with the Formfile's key works (${ssh.stderr?.trim()})`)
      t.match(ssh.stdout, `dev@${r.id}`, `${label}: logged in as dev on ${r.id}`)
      t.match(ssh.stdout, 'sudo-ok', `${label}: dev has sudo`)
      const http = await until(`HTTP from ${r.id}`, async () => {
        const res = sh(['curl', '-s', '--max-time', '5', `http://${r.ip}:8080/`])
        return res.status === 0 && res.stdout ? res : undefined
      }, 120_000).catch(() => sh(['curl', '-sS', '--max-time', '5', `http://${r.ip}:8080/`]))
      t.equal(http.stdout, `hello from formation from ${r.id}\n`, `${label}: the entrypoint answers on the EXPOSEd port (${http.stderr?.trim()})`)
    }
    for (const r of replicas) await reach(r, r.id)

    // form manage ssh picks the address and the Formfile's user
    const viaForm = await form(dev.env, ['manage', 'ssh', ...sshArgs, replicas[1].id, '--', 'cat', '/etc/hostname'], { netns: dev.ns, timeoutMs: 60_000 })
    t.equal(viaForm.code, 0, viaForm.stderr)
    t.equal(viaForm.stdout.trim(), replicas[1].id, 'form manage ssh <instance> runs the command on it')

    // a hosting node that is not the image's holder dies: the node, its VMs and its WireGuard
    const victim = replicas.find((r) => r.node !== accounts[0])!
    const dead = accounts.indexOf(victim.node)
    const spare = [0, 1, 2].find((i) => !replicas.some((r) => r.node === accounts[i]))!
    t.ok(lab.net.killAll(nodes[dead].ns) > 0, `node ${dead + 1} (hosting ${victim.id}) is killed`)
    const killedAt = Date.now()
    const moved = await until(
      `${victim.id} to run on node ${spare + 1}`,
      async () => {
        const r = (await getIp()).find((x) => x.id === victim.id)
        return r?.node === accounts[spare] && r.state === 'running' && r.ip ? r : undefined
      },
      900_000,
    )
    t.comment(`failover: ${victim.id} running on node ${spare + 1} ${Math.round((Date.now() - killedAt) / 1000)} s after node ${dead + 1} died (20 s of it waiting out the heartbeats)`)
    t.not(moved.ip, victim.ip, `the replica has an address of node ${spare + 1}'s subnet (${moved.ip})`)
    await reach(moved, `${victim.id} after failover`)
    const survivor = (await getIp()).find((x) => x.id !== victim.id)!
    t.match(survivor, { node: accounts[0], state: 'running' }, 'the other replica stayed where it was')
  },
)
