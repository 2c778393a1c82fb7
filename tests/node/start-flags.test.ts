import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { form, makeEnv, startNode } from '../helpers/form.js'
import { OVERRIDES } from '../../plugins/node/commands/start.js'
import { netSettings } from '../../plugins/net/index.js'
import { nodeSettings } from '../../plugins/node/index.js'

// `form node start`'s flags and variables override declared settings: a bad value is refused by that
// setting's own validator before any service starts, and the error names the flag or variable.

t.test('each flag overrides one declared setting, and its help comes from that declaration', async (t) => {
  t.equal(OVERRIDES.listen.setting, netSettings.listen)
  t.equal(OVERRIDES.bootstrap.setting, netSettings.bootstrap)
  t.equal(OVERRIDES.apiListen.setting, nodeSettings.api_listen)
  const env = await makeEnv(t)
  const help = await form(env, ['node', 'start', '--help'])
  t.match(help.stdout, /--listen <[^>]+>\s+libp2p listen addresses \(repeatable; env FORM_LISTEN, comma-separated; overrides \[net\] listen\)/)
  t.match(help.stdout, /--bootstrap <[^>]+>\s+Peers to join/)
  t.match(help.stdout, /--api-listen <[^>]+>\s+Host:port for remote callers .*e\.g\. \["0\.0\.0\.0:3004"\] \(repeatable; env FORM_API_LISTEN/)
})

t.test('a bad value is refused before anything starts, naming the flag or variable and what the setting wants', async (t) => {
  const env = await makeEnv(t, { FORM_FORMNET: 'off' })
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--listen', '/ip4/1.2.3.4/udp/5'], {}, /^error\[USAGE\]: --listen: expected a TCP multiaddr such as \/ip4\/0\.0\.0\.0\/tcp\/3010 \(got "\/ip4\/1\.2\.3\.4\/udp\/5"\)\n  hint: see `man 5 form-operator` \(list of TCP multiaddr\)/],
    [['--bootstrap', '/ip4/1.2.3.4/tcp/5', '--bootstrap', 'nope'], {}, /^error\[USAGE\]: --bootstrap: expected a TCP multiaddr .*\(got "nope"\)/],
    [['--api-listen', 'nonsense'], {}, /^error\[USAGE\]: --api-listen: expected host:port such as 0\.0\.0\.0:3004 \(got "nonsense"\)/],
    [[], { FORM_LISTEN: '/ip4/127.0.0.1/tcp/1,foo' }, /^error\[USAGE\]: FORM_LISTEN: expected a TCP multiaddr .*\(got "foo"\)/],
    [[], { FORM_BOOTSTRAP: 'foo' }, /^error\[USAGE\]: FORM_BOOTSTRAP: expected a TCP multiaddr/],
    [[], { FORM_API_LISTEN: 'x' }, /^error\[USAGE\]: FORM_API_LISTEN: expected host:port/],
    [[], { FORM_FORMNET: 'maybe' }, /^error\[USAGE\]: FORM_FORMNET: expected one of "auto", "on", or "off" \(got "maybe"\)/],
    [[], { FORM_ADMINS: '0x12' }, /^error\[USAGE\]: FORM_ADMINS: expected an address/],
  ]
  for (const [args, extra, message] of cases) {
    const r = await form({ ...env, env: { ...env.env, ...extra } }, ['node', 'start', ...args])
    const what = [...args, ...Object.entries(extra).map(([k, v]) => `${k}=${v}`)].join(' ')
    t.equal(r.code, 1, what)
    t.match(r.stderr, message, what)
    t.notMatch(r.stderr, /starting/, `${what}: refused before the node starts`)
  }
})

t.test('with --detach a bad value is refused by the command itself, before it forks a node', async (t) => {
  const env = await makeEnv(t, { FORM_FORMNET: 'off' })
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--detach', '--api-listen', 'nonsense'], {}, /^error\[USAGE\]: --api-listen: expected host:port such as 0\.0\.0\.0:3004 \(got "nonsense"\)/],
    [['--detach', '--listen', 'nope'], {}, /^error\[USAGE\]: --listen: expected a TCP multiaddr/],
    [['--detach'], { FORM_ADMINS: '0x12' }, /^error\[USAGE\]: FORM_ADMINS: expected an address/],
  ]
  for (const [args, extra, message] of cases) {
    const r = await form({ ...env, env: { ...env.env, ...extra } }, ['node', 'start', ...args])
    const what = [...args, ...Object.entries(extra).map(([k, v]) => `${k}=${v}`)].join(' ')
    t.equal(r.code, 1, what)
    t.match(r.stderr, message, what)
    const log = await readFile(env.logFile, 'utf8').catch(() => '')
    t.notMatch(log, /starting/, `${what}: no node was started in the background`)
  }
})

t.test('the config is held to the same rule; a flag wins over its variable, a good value passes', async (t) => {
  const env = await makeEnv(t, { FORM_FORMNET: 'off' })
  const config = join(env.dir, 'bad.toml')
  await writeFile(config, '[net]\nlisten = ["bad"]\n')
  const fromConfig = await form(env, ['node', 'start', '--config', config])
  t.match(fromConfig.stderr, /\[net\] listen\[0\]: expected a TCP multiaddr such as \/ip4\/0\.0\.0\.0\/tcp\/3010 \(got "bad"\)/, 'the same words as for --listen')
  // a bad flag is refused although its variable is good: the flag is the value used
  const badFlag = await form({ ...env, env: { ...env.env, FORM_API_LISTEN: '127.0.0.1:0' } }, ['node', 'start', '--api-listen', 'bad'])
  t.match(badFlag.stderr, /--api-listen: expected host:port/)
  // and a good flag over a bad variable starts the node, serving the API where the flag says
  const node = await startNode({ ...env, env: { ...env.env, FORM_API_LISTEN: 'bad' } }, ['--api-listen', '127.0.0.1:0'])
  t.teardown(() => node.stop('SIGKILL'))
  t.match(node.output(), /node ready .*"api":\["127\.0\.0\.1:\d+"\]/)
  t.equal(await node.stop(), 0)
})
