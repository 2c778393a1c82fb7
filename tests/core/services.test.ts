import t from 'tap'
import { orderServices } from '../../core/daemon/services.js'
import { API_VERSION, type FormPlugin, type ServiceDefinition } from '../../core/plugin.js'

const svc = (name: string, dependsOn: string[] = []): ServiceDefinition => ({ name, dependsOn, start: () => ({}) })
const plugin = (name: string, services: ServiceDefinition[]): FormPlugin => ({ name, version: '1', apiVersion: API_VERSION, services })
const names = (plugins: FormPlugin[]) => orderServices(plugins).map((s) => s.definition.name)

t.test('dependencies start first, across plugins, and ties keep plugin order', async (t) => {
  const order = names([
    plugin('state', [svc('state'), svc('sync', ['state', 'p2p'])]),
    plugin('net', [svc('p2p', ['state']), svc('formnet', ['state', 'p2p'])]),
    plugin('node', [svc('vmm', ['state', 'formnet'])]),
  ])
  t.same(order, ['state', 'p2p', 'sync', 'formnet', 'vmm'])
})

t.test('a missing dependency names both services', async (t) => {
  t.throws(() => names([plugin('x', [svc('vmm', ['formnet'])])]), {
    code: 'SERVICE_MISSING_DEPENDENCY',
    message: /service "vmm" \(plugin "x"\) depends on "formnet", which no loaded plugin provides/,
  })
})

t.test('a cycle is reported with its path', async (t) => {
  t.throws(() => names([plugin('x', [svc('a', ['b']), svc('b', ['c']), svc('c', ['a'])])]), {
    code: 'SERVICE_CYCLE',
    message: /a -> b -> c -> a/,
  })
  t.throws(() => names([plugin('x', [svc('self', ['self'])])]), { code: 'SERVICE_CYCLE', message: /self -> self/ })
})

t.test('two plugins providing one service name is an error', async (t) => {
  t.throws(() => names([plugin('a', [svc('state')]), plugin('b', [svc('state')])]), {
    code: 'SERVICE_DUPLICATE',
    message: /"state" is provided by both plugin "a" and plugin "b"/,
  })
})
