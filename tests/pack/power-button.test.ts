import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { GUEST_AGENT_FILES, GUEST_AGENT_UNITS } from '../../plugins/pack/lib/builder/guest-agent.js'
import { finalizeScript } from '../../plugins/pack/lib/builder/agent.js'

/**
 * The guest's power-button handler, run on the host against fake input devices: a sysfs tree that
 * names them and regular files of struct input_event records (what /dev/input/eventN yields).
 * The real button is pressed in tests/e2e/stop.test.ts.
 */

const noPerl = spawnSync('sh', ['-c', 'command -v perl']).status !== 0

/** One struct input_event on x86_64: time (2 longs), type, code, value. */
function event(type: number, code: number, value: number): Buffer {
  const b = Buffer.alloc(24)
  b.writeBigInt64LE(1n, 0)
  b.writeBigInt64LE(2n, 8)
  b.writeUInt16LE(type, 16)
  b.writeUInt16LE(code, 18)
  b.writeInt32LE(value, 20)
  return b
}
const EV_KEY = 1
const EV_SYN = 0
const KEY_POWER = 116
const KEY_A = 30

async function guest(t: { testdir(): string }, devices: Record<string, { name: string; events: Buffer[] }>) {
  const dir = t.testdir()
  const script = join(dir, 'form-power-button')
  await writeFile(script, GUEST_AGENT_FILES['usr/local/sbin/form-power-button'].content, { mode: 0o755 })
  await mkdir(join(dir, 'dev'))
  for (const [ev, d] of Object.entries(devices)) {
    await mkdir(join(dir, 'sys', ev, 'device'), { recursive: true })
    await writeFile(join(dir, 'sys', ev, 'device', 'name'), `${d.name}\n`)
    await writeFile(join(dir, 'dev', ev), Buffer.concat(d.events))
  }
  await mkdir(join(dir, 'sys'), { recursive: true })
  const marker = join(dir, 'powered-off')
  await writeFile(join(dir, 'poweroff'), `#!/bin/sh\necho poweroff > ${marker}\n`, { mode: 0o755 })
  const run = spawnSync(script, [], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, FORM_POWER_SYSFS: join(dir, 'sys'), FORM_POWER_DEV: join(dir, 'dev'), FORM_POWER_COMMAND: join(dir, 'poweroff') },
  })
  return { run, poweredOff: existsSync(marker) && (await readFile(marker, 'utf8')).trim() === 'poweroff' }
}

t.test('the guest powers off when the power button is pressed, and only then', { skip: noPerl ? 'cannot run here: perl is not installed' : false }, async (t) => {
  const pressed = await guest(t, {
    event0: { name: 'AT Translated Set 2 keyboard', events: [event(EV_KEY, KEY_POWER, 1)] },
    event2: { name: 'Power Button', events: [event(EV_KEY, KEY_A, 1), event(EV_SYN, 0, 0), event(EV_KEY, KEY_POWER, 1), event(EV_SYN, 0, 0), event(EV_KEY, KEY_POWER, 0)] },
  })
  t.equal(pressed.run.status, 0, pressed.run.stderr)
  t.ok(pressed.poweredOff, 'a press of KEY_POWER on the "Power Button" device runs the poweroff')
  t.match(pressed.run.stdout, /watching .*event2\n.*the power button was pressed: powering off/)
  t.notMatch(pressed.run.stdout, /event0/, 'other input devices are not watched')

  const other = await guest(t, {
    event0: { name: 'AT Translated Set 2 keyboard', events: [event(EV_KEY, KEY_POWER, 1)] },
    event1: { name: 'Power Button', events: [event(EV_KEY, KEY_A, 1), event(EV_KEY, KEY_POWER, 0), event(EV_KEY, KEY_POWER, 2)] },
  })
  t.equal(other.run.status, 0, other.run.stderr)
  t.notOk(other.poweredOff, 'other keys, a release or a repeat of the button, or a power key elsewhere, power nothing off')

  const none = await guest(t, { event0: { name: 'AT Translated Set 2 keyboard', events: [] } })
  t.equal(none.run.status, 0, 'a guest without a power button boots on')
  t.match(none.run.stdout, 'no ACPI power button in this guest')
  t.notOk(none.poweredOff)
})

t.test('every image carries the handler and enables its unit', async (t) => {
  const unit = GUEST_AGENT_FILES['etc/systemd/system/form-power-button.service']
  t.match(unit.content, 'ExecStart=/usr/local/sbin/form-power-button')
  t.ok(GUEST_AGENT_UNITS.includes('form-power-button.service'))
  const finalize = finalizeScript({ name: 'x', expose: [], users: [], env: { services: {} } } as never)
  t.match(finalize, "put '/usr/local/sbin/form-power-button' 755")
  t.match(finalize, 'ln -s /etc/systemd/system/form-power-button.service /etc/systemd/system/multi-user.target.wants/form-power-button.service')
})
