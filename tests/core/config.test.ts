import t from 'tap'
import { join } from 'node:path'
import * as ty from 'typanion'
import { loadOperatorConfig, resolveSections } from '../../core/config.js'
import { resolvePaths, splitPathFlags } from '../../core/paths.js'
import { API_VERSION, type FormPlugin } from '../../core/plugin.js'
import node from '../../plugins/node/index.js'
import net from '../../plugins/net/index.js'
import pack from '../../plugins/pack/index.js'

const plugins: FormPlugin[] = [node, net, { name: 'bare', version: '1', apiVersion: API_VERSION }]

t.test('no config file is a valid devnet: every section gets its defaults', async (t) => {
  const dir = t.testdir()
  const { file, raw } = await loadOperatorConfig(join(dir, 'operator.toml'), false)
  t.equal(file, undefined)
  const sections = resolveSections(file, raw, plugins)
  t.equal(sections.node.hypervisor, 'auto')
  t.same(sections.net.listen, ['/ip4/127.0.0.1/tcp/3010'], 'a devnet listens on loopback only')
})

t.test('a named config file that does not exist is an error', async (t) => {
  await t.rejects(loadOperatorConfig('/nonexistent/operator.toml', true), { code: 'CONFIG_READ', message: /\/nonexistent\/operator.toml/ })
})

t.test('partial sections are merged over the defaults', async (t) => {
  const dir = t.testdir({ 'operator.toml': '[node.resources]\nvcpus = 8\n\n[net]\nbootstrap = ["/ip4/10.1.0.1/tcp/3010/p2p/QmX"]\n' })
  const { file, raw } = await loadOperatorConfig(join(dir, 'operator.toml'), true)
  const s = resolveSections(file, raw, plugins)
  t.same(s.node.resources, { vcpus: 8, memory_mb: 4096, disk_gb: 50 })
  t.same(s.net.bootstrap, ['/ip4/10.1.0.1/tcp/3010/p2p/QmX'])
  t.equal(s.net.formnet_port, 51820)
})

t.test('a wrong type names the file, the table, the key and the expected type', async (t) => {
  const dir = t.testdir({ 'operator.toml': '[node.resources]\nvcpus = "lots"\n' })
  const path = join(dir, 'operator.toml')
  const { file, raw } = await loadOperatorConfig(path, true)
  t.throws(() => resolveSections(file, raw, plugins), {
    code: 'CONFIG_INVALID',
    message: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: \\[node\\] resources\\.vcpus: expected a number \\(got "lots"\\)`),
  })
})

t.test('unknown keys and unknown tables are reported', async (t) => {
  const dir = t.testdir({ 'a.toml': '[net]\nlisten_addr = ["/ip4/1.2.3.4/tcp/1"]\n', 'b.toml': '[nett]\nlisten = []\n' })
  const a = await loadOperatorConfig(join(dir, 'a.toml'), true)
  t.throws(() => resolveSections(a.file, a.raw, plugins), { code: 'CONFIG_INVALID', message: /\[net\] listen_addr: unknown key/ })
  const b = await loadOperatorConfig(join(dir, 'b.toml'), true)
  t.throws(() => resolveSections(b.file, b.raw, plugins), { code: 'CONFIG_INVALID', message: /unknown table \[nett\]/, hint: /\[net\]/ })
})

t.test('a TOML syntax error gives the file, line and column', async (t) => {
  const dir = t.testdir({ 'operator.toml': '[node]\nhypervisor = "qemu"\nresources = {vcpus = }\n' })
  await t.rejects(loadOperatorConfig(join(dir, 'operator.toml'), true), { code: 'CONFIG_SYNTAX', message: /operator\.toml:3:\d+: invalid TOML/ })
})

t.test('values outside an enum or a pattern are refused', async (t) => {
  const dir = t.testdir({ 'operator.toml': '[node]\nhypervisor = "vmware"\n[net]\nformnet_cidr = "10.0.0.0"\n' })
  const { file, raw } = await loadOperatorConfig(join(dir, 'operator.toml'), true)
  const err = t.throws(() => resolveSections(file, raw, plugins)) as unknown as Error
  t.match(err.message, /\[node\] hypervisor: expected one of/)
  // the shared CIDR validator names the file, the table and the key, and says what it wanted
  t.throws(() => resolveSections(file, { net: raw.net }, plugins), { message: /operator\.toml: \[net\] formnet_cidr: expected an IPv4 CIDR such as 10\.20\.0\.0\/16 \(got "10\.0\.0\.0"\)/ })
  // octets and prefixes out of range too, which the old pattern let through
  t.throws(() => resolveSections(file, { node: { instance_allow_cidrs: ['10.0.0.0/8', '300.1.2.3/8'] } }, plugins), { message: /\[node\] instance_allow_cidrs\[1\]: expected an IPv4 CIDR/ })
  t.throws(() => resolveSections(file, { pack: { build_allow_cidrs: ['10.20.0.0/33'] } }, [pack]), { message: /\[pack\] build_allow_cidrs\[0\]: expected an IPv4 CIDR/ })
  t.throws(() => resolveSections(file, { net: { bridge_name: 'a-bridge-name-too-long' } }, plugins), { message: /\[net\] bridge_name: expected an interface name/ })
  t.throws(() => resolveSections(file, { net: { bootstrap: ['/ip4/1.2.3.4/udp/3010'] } }, plugins), { message: /\[net\] bootstrap\[0\]: expected a TCP multiaddr/ })
})

t.test('address-and-port settings use the shared rules: what the config accepts is what the code that uses it accepts', async (t) => {
  const bad = (net: Record<string, unknown>, message: RegExp) => t.throws(() => resolveSections(undefined, { net }, plugins), { message }, JSON.stringify(net))
  const good = (net: Record<string, unknown>) => t.doesNotThrow(() => resolveSections(undefined, { net }, plugins), JSON.stringify(net))
  bad({ dns_listen: ['198.18.0.1'] }, /\[net\] dns_listen\[0\]: expected ip:port such as 198\.18\.0\.1:53 \(got "198\.18\.0\.1"\)/)
  bad({ dns_listen: ['300.18.0.1:53'] }, /\[net\] dns_listen\[0\]: expected ip:port/)
  good({ dns_listen: ['198.18.0.1:53'] })
  bad({ dns_upstreams: ['1.1.1.256'] }, /\[net\] dns_upstreams\[0\]: expected an IPv4 address or ip:port/)
  bad({ dns_upstreams: ['dns.google'] }, /\[net\] dns_upstreams\[0\]/)
  good({ dns_upstreams: ['1.1.1.1', '192.0.2.53:5353'] })
  // peers drop a node whose record's endpoint they refuse, so the config refuses what they would
  bad({ formnet_endpoint: 'my_host:51820' }, /\[net\] formnet_endpoint: expected host:port such as 203\.0\.113\.5:51820, or ""/)
  bad({ formnet_endpoint: '203.0.113.5' }, /\[net\] formnet_endpoint/)
  good({ formnet_endpoint: '' })
  good({ formnet_endpoint: 'vpn.example.com:51820' })
  good({ formnet_endpoint: '[2001:db8::1]:51820' })
  t.throws(() => resolveSections(undefined, { node: { api_listen: ['3004'] } }, plugins), { message: /\[node\] api_listen\[0\]: expected host:port such as 0\.0\.0\.0:3004/ })
})

t.test('paths: flags beat environment, environment beats defaults; root uses system directories', async (t) => {
  const env = { HOME: '/home/ada', FORM_DATA_DIR: '/env/data' }
  const user = resolvePaths({}, env, false)
  t.equal(user.configDir, '/home/ada/.config/form')
  t.equal(user.dataDir, '/env/data')
  t.equal(user.pluginDir, '/env/data/plugins')
  t.equal(user.operatorConfig, '/home/ada/.config/form/operator.toml')
  const flagged = resolvePaths({ dataDir: '/flag/data', runtimeDir: '/flag/run' }, env, false)
  t.equal(flagged.dataDir, '/flag/data')
  t.equal(flagged.socket, '/flag/run/node.sock')
  const root = resolvePaths({}, { HOME: '/root' }, true)
  t.same([root.configDir, root.dataDir, root.runtimeDir], ['/etc/form', '/var/lib/form', '/run/form'])
  t.same(splitPathFlags(['node', 'start', '--data-dir', '/a', '--runtime-dir=/b', '--json', '--', '--config', 'x']), {
    overrides: { dataDir: '/a', runtimeDir: '/b' },
    rest: ['node', 'start', '--json', '--', '--config', 'x'],
  })
})

t.test('typanion schemas from plugins are used as given', async (t) => {
  const p: FormPlugin = { name: 'x', version: '1', apiVersion: API_VERSION, configuration: { schema: ty.isObject({ n: ty.isNumber() }), defaults: { n: 1 } } }
  t.same(resolveSections(undefined, { x: { n: 5 } }, [p]).x, { n: 5 })
  t.throws(() => resolveSections(undefined, { x: { n: 'five' } }, [p]), { message: /operator config: \[x\] n: expected a number/ })
  t.throws(() => resolveSections(undefined, { x: 5 }, [p]), { message: /\[x\] must be a table/ })
})
