import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { form } from '../helpers/form.js'
import { builderSkip, shareCachedBase } from '../helpers/builder.js'
import { FormnetLab } from '../helpers/formnet-lab.js'
import { guestImageUnavailable } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'

const missing = netnsUnavailable(['qemu-system-x86_64', 'ssh-keygen']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : builderSkip()

t.test(
  'a clean `form manage stop` of an image built by `form pack build`: the guest hears the ACPI power button and powers off (not forced)',
  { skip },
  async (t) => {
    const lab = new FormnetLab(t)
    const node = await lab.addNode({
      // a long grace: the test measures how long a clean stop takes, it must not be cut short by a force
      config: { node: ['hypervisor = "auto"', 'nat = false', 'shutdown_timeout_s = 120', 'boot_timeout_s = 600'], 'node.resources': ['vcpus = 2', 'memory_mb = 1536', 'disk_gb = 20'], net: [`bridge_name = "${lab.net.name('fbs')}"`] },
      beforeStart: shareCachedBase,
    })
    const dev = await lab.addDeveloper(node)
    const key = join(dev.env.dir, 'id_ed25519')
    const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key], { encoding: 'utf8' })
    t.equal(keygen.status, 0, keygen.stderr)
    const app = join(dev.env.dir, 'hello')
    const devForm = (args: string[], timeoutMs = 120_000) => form(dev.env, args, { netns: dev.ns, cwd: app, timeoutMs })
    lab.ok(await form(dev.env, ['pack', 'init', '--template', 'hello-web', '--dir', app, '--ssh-key', `${key}.pub`], { netns: dev.ns }))
    lab.ok(await devForm(['pack', 'build', '--json'], 1_200_000))
    const ship = JSON.parse(lab.ok(await devForm(['pack', 'ship', '--replicas', '1', '--json'], 1_200_000)).stdout)
    const id: string = ship.replicas[0].id
    t.comment(`running after ${ship.readyMs} ms`)

    const stop = JSON.parse(lab.ok(await devForm(['manage', 'stop', id, '--wait', '--json'], 300_000)).stdout)
    const stopped = stop.instances[0]
    t.equal(stopped.state, 'stopped', 'the instance is stopped')
    t.equal(stopped.shutdown?.how, 'powered-off', `the guest powered itself off, not forced (${JSON.stringify(stopped.shutdown)})`)
    t.notOk(stopped.shutdown?.reason, 'no reason to report')
    t.comment(`clean stop: ${stopped.shutdown?.ms} ms from the power button to the VM process gone`)

    const logs = lab.ok(await devForm(['manage', 'logs', id])).stdout
    t.match(logs, 'form-power-button: the power button was pressed: powering off', 'the console shows the guest heard the button')

    // the text form says it too, and a stopped instance started again boots from its cleanly unmounted disk
    lab.ok(await devForm(['manage', 'start', id, '--wait'], 900_000))
    const again = lab.ok(await devForm(['manage', 'stop', id, '--wait'], 300_000)).stdout
    t.match(again, new RegExp(`${id}.*: stopped, powered off by the guest in [0-9.]+ s`), 'manage stop --wait says the guest powered off')
  },
)
