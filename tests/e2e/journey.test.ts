import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { until } from '../helpers/form.js'
import { guestImageUnavailable } from '../helpers/guest-image.js'
import { JourneyLab, SSH_OPTIONS, type Replica } from '../helpers/journey-lab.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { builderSkip } from '../helpers/builder.js'


const missing = netnsUnavailable(['qemu-system-x86_64', 'wireguard-go', 'ssh', 'ssh-keygen', 'curl']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : builderSkip()

t.test(
  'the developer journey on three nodes: join, formnet-up, pack init/build/ship --replicas 2, get-ip, SSH and HTTP on each replica; a hosting node dies and its replica runs on the third node',
  { skip },
  async (t) => {
    const j = new JourneyLab(t)
    await j.startNodes()
    const { joined } = await j.addDeveloper()
    t.match(joined.address, /^198\.1[89]\./, `joined formnet (default 198.18.0.0/15) as ${joined.address}`)
    for (const [i, a] of j.addresses.entries()) t.ok(await j.lab.ping(j.dev.ns, a, 60_000), `the developer reaches node ${i + 1} over formnet`)

    j.lab.ok(await j.lab.form(j.dev, ['pack', 'init', '--template', 'hello-web', '--dir', j.app, '--ssh-key', `${j.key}.pub`]))
    t.match(await readFile(join(j.app, 'Formfile'), 'utf8'), (await readFile(`${j.key}.pub`, 'utf8')).trim(), 'the Formfile carries the public key')

    const built = JSON.parse(j.lab.ok(await j.devForm(['pack', 'build', '--json'], 1_200_000)).stdout)
    t.match(built.status, { state: 'built', image: /^[0-9a-f]{64}$/ }, 'the image is built on node 1')
    const buildId: string = built.buildId

    const ship = JSON.parse(j.lab.ok(await j.devForm(['pack', 'ship', '--replicas', '2', '--failover-after', '20', '--json'], 1_500_000)).stdout)
    t.equal(ship.replicas.length, 2, 'two replicas')
    t.equal(new Set(ship.replicas.map((r: Replica) => r.node)).size, 2, 'on two different nodes')
    t.ok(ship.replicas.some((r: Replica) => r.node === j.accounts[0]), 'one on the node that holds the image')
    t.comment(`ship: scheduled in ${ship.scheduledMs} ms, all replicas running after ${ship.readyMs} ms; ${JSON.stringify(ship.replicas.map((r: { id: string; timings?: unknown }) => [r.id, r.timings]))}`)

    const replicas = await j.replicas(buildId)
    t.same(replicas.map((r) => r.state), ['running', 'running'])
    const plain = j.lab.ok(await j.devForm(['manage', 'get-ip'])).stdout.trim().split('\n')
    t.same(plain, replicas.map((r) => r.ip), 'get-ip (the build of ./Formfile) prints one address per replica')

    /** SSH and HTTP from the developer's namespace, over formnet, to one replica. */
    const reach = async (r: Replica, label: string) => {
      const ssh = await j.ssh(r, "echo $(whoami)@$(cat /etc/hostname); sudo -n true && echo sudo-ok; df -B1 --output=size / | tail -n 1")
      t.equal(ssh.status, 0, `${label}: ssh with the Formfile's key works ${ssh.stderr?.trim()}`)
      t.match(ssh.stdout, `dev@${r.id}`, `${label}: logged in as dev on ${r.id}`)
      t.match(ssh.stdout, 'sudo-ok', `${label}: dev has sudo`)
      t.notMatch(ssh.stderr, /unable to resolve host/, `${label}: the hostname resolves`)
      // the image's disk is sized to its files; the instance's is DISK (5 GB): the guest grew its filesystem
      const rootBytes = Number(ssh.stdout.trim().split('\n').at(-1))
      t.ok(rootBytes > 4.5 * 2 ** 30, `${label}: / is ${(rootBytes / 2 ** 30).toFixed(2)} GiB, grown to the instance's disk`)
      const http = await j.http(r)
      t.equal(http.stdout, `hello from formation from ${r.id}\n`, `${label}: the entrypoint answers on the EXPOSEd port ${http.stderr?.trim()}`)
    }
    for (const r of replicas) await reach(r, r.id)

    // form manage ssh finds the address and the Formfile's user itself
    const viaForm = await j.devForm(['manage', 'ssh', '-i', j.key, ...SSH_OPTIONS, replicas[1].id, '--', 'cat', '/etc/hostname'])
    t.equal(viaForm.code, 0, viaForm.stderr)
    t.equal(viaForm.stdout.trim(), replicas[1].id, 'form manage ssh <instance> runs the command on it')

    // a hosting node that is not the image's holder dies: the node, its VMs and its WireGuard
    const victim = replicas.find((r) => r.node !== j.accounts[0])!
    const dead = j.accounts.indexOf(victim.node)
    const spare = [0, 1, 2].find((i) => !replicas.some((r) => r.node === j.accounts[i]))!
    t.ok(j.lab.net.killAll(j.nodes[dead].ns) > 0, `node ${dead + 1} (hosting ${victim.id}) is killed`)
    const killedAt = Date.now()
    const moved = await until(
      `${victim.id} to run on node ${spare + 1}`,
      async () => {
        const r = (await j.replicas(buildId)).find((x) => x.id === victim.id)
        return r?.node === j.accounts[spare] && r.state === 'running' && r.ip ? r : undefined
      },
      900_000,
    )
    t.comment(`failover: ${victim.id} running on node ${spare + 1} ${Math.round((Date.now() - killedAt) / 1000)} s after node ${dead + 1} died (20 s of it waiting out the heartbeats)`)
    t.not(moved.ip, victim.ip, `the replica has an address of node ${spare + 1}'s subnet (${moved.ip})`)
    await reach(moved, `${victim.id} after failover`)
    const survivor = (await j.replicas(buildId)).find((x) => x.id !== victim.id)!
    t.match(survivor, { node: j.accounts[0], state: 'running' }, 'the other replica stayed where it was')
  },
)
