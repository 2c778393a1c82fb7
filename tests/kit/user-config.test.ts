import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadUserConfig } from '../../plugins/kit/lib/user-config.js'
import { FAILOVER_S, REPLICAS } from '../../plugins/instances/index.js'

// ~/.config/form/config.json is checked by the shared rules: `form pack ship`'s bounds (REPLICAS,
// FAILOVER_S, the same check as its flags) and core/validators for addresses and interface names.

const valid = { version: 1, address: '0x' + 'a'.repeat(40), keystore: 'k.json', hosts: [], formnet: { join: false } }

async function load(t: { testdir(): string }, config: unknown) {
  const dir = t.testdir()
  await writeFile(join(dir, 'config.json'), JSON.stringify(config))
  return loadUserConfig(dir)
}

t.test('the ship defaults stay within the bounds of the flags they stand for', async (t) => {
  t.same((await load(t, { ...valid, ship: { replicas: REPLICAS.max, failoverAfterS: FAILOVER_S.min } }))?.ship, { replicas: REPLICAS.max, failoverAfterS: FAILOVER_S.min })
  for (const ship of [{ replicas: REPLICAS.min - 1 }, { replicas: REPLICAS.max + 1 }, { replicas: 2.5 }, { failoverAfterS: FAILOVER_S.min - 1 }, { failoverAfterS: FAILOVER_S.max + 1 }]) {
    await t.rejects(load(t, { ...valid, ship }), { code: 'CONFIG_INVALID', message: new RegExp(`ship\\.${Object.keys(ship)[0]}: `) }, JSON.stringify(ship))
  }
})

t.test('addresses and the interface name are held to the shared rules', async (t) => {
  t.ok(await load(t, { ...valid, formnet: { join: true, address: '198.18.3.7', cidr: '198.18.0.0/15', interface: 'formnet0' } }))
  for (const [config, message] of [
    [{ ...valid, address: '0x' + 'A'.repeat(40) }, /address: Expected an address \(0x and 40 lower-case hex digits\)/],
    [{ ...valid, formnet: { join: true, address: '198.18.3.300' } }, /formnet\.address: Expected an IPv4 address/],
    [{ ...valid, formnet: { join: true, cidr: '198.18.0.0/33' } }, /formnet\.cidr: Expected an IPv4 CIDR/],
    [{ ...valid, formnet: { join: true, interface: 'a-name-too-long-for-linux' } }, /formnet\.interface: Expected an interface name/],
  ] as const) {
    await t.rejects(load(t, config), { code: 'CONFIG_INVALID', message }, JSON.stringify(config))
  }
})
