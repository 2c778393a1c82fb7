import t from 'tap'
import { form, makeEnv, startNode } from '../helpers/form.js'

/** `form manage dns set|list|rm`: an owner's own .fog names, signed records in state (collection `dns`). */

t.test('an owner publishes, lists and removes its names; bad input is refused with the flag to fix', async (t) => {
  const env = await makeEnv(t, { FORM_PASSWORD: 'correct horse battery staple' })
  const init = await form(env, ['kit', 'init', '--yes', '--no-join-formnet'])
  t.equal(init.code, 0, init.stderr)
  const node = await startNode(env)
  t.teardown(() => node.stop('SIGKILL'))

  const set = await form(env, ['manage', 'dns', 'set', 'API', '--a', '198.18.0.10', '--a', '198.18.1.12', '--ttl', '30', '--json'])
  t.equal(set.code, 0, set.stderr)
  t.same(JSON.parse(set.stdout), { name: 'api.fog', a: ['198.18.0.10', '198.18.1.12'], txt: [], ttl: 30 }, 'names are lower-cased')
  t.equal((await form(env, ['manage', 'dns', 'set', 'version', '--txt', 'v2'])).stdout.trim(), 'version.fog set')
  // setting again replaces (last writer wins, ordered after the record it replaces)
  t.equal((await form(env, ['manage', 'dns', 'set', 'api', '--a', '198.18.0.11'])).code, 0)
  const listed = JSON.parse((await form(env, ['manage', 'dns', 'list', '--json'])).stdout)
  t.same(listed, [
    { name: 'api.fog', a: ['198.18.0.11'], txt: [], ttl: 60 },
    { name: 'version.fog', a: [], txt: ['v2'], ttl: 60 },
  ])
  t.match((await form(env, ['manage', 'dns', 'list'])).stdout, /^api\.fog\t198\.18\.0\.11\tttl 60\nversion\.fog\t"v2"\tttl 60\n$/)

  t.equal((await form(env, ['manage', 'dns', 'rm', 'api'])).stdout.trim(), 'api.fog removed')
  t.same(JSON.parse((await form(env, ['manage', 'dns', 'list', '--json'])).stdout).map((n: { name: string }) => n.name), ['version.fog'])

  const badIp = await form(env, ['manage', 'dns', 'set', 'x', '--a', '300.0.0.1'])
  t.not(badIp.code, 0)
  t.match(badIp.stderr, /--a must be a list of at most 24 IPv4 addresses/)
  const badName = await form(env, ['manage', 'dns', 'set', 'bad_name!', '--a', '1.2.3.4'])
  t.match(badName.stderr, /"bad_name!" is not a DNS name/)
  t.match((await form(env, ['manage', 'dns', 'set', 'empty'])).stderr, /at least one/)
  t.match((await form(env, ['manage', 'dns', 'rm', 'nothing'])).stderr, /you have no name nothing\.fog/)
})
