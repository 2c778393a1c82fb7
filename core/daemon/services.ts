import { FormError } from '../errors.js'
import type { FormPlugin, ServiceDefinition } from '../plugin.js'

export interface PlannedService {
  plugin: string
  definition: ServiceDefinition
}

/**
 * Orders services so that each starts after what it depends on. Ties keep plugin order, so the
 * start order is stable from run to run. Missing dependencies and cycles are errors naming the services.
 */
export function orderServices(plugins: FormPlugin[]): PlannedService[] {
  const byName = new Map<string, PlannedService>()
  for (const plugin of plugins) {
    for (const definition of plugin.services ?? []) {
      const existing = byName.get(definition.name)
      if (existing) {
        throw new FormError('SERVICE_DUPLICATE', `service "${definition.name}" is provided by both plugin "${existing.plugin}" and plugin "${plugin.name}"`, {
          hint: 'remove one of the two plugins (`form plugin remove NAME`)',
        })
      }
      byName.set(definition.name, { plugin: plugin.name, definition })
    }
  }
  for (const s of byName.values()) {
    for (const dep of s.definition.dependsOn ?? []) {
      if (!byName.has(dep)) {
        throw new FormError('SERVICE_MISSING_DEPENDENCY', `service "${s.definition.name}" (plugin "${s.plugin}") depends on "${dep}", which no loaded plugin provides`, {
          hint: `install or enable the plugin that provides "${dep}"`,
        })
      }
    }
  }
  const ordered: PlannedService[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, trail: string[]) => {
    const mark = state.get(name)
    if (mark === 'done') return
    if (mark === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(name)), name]
      throw new FormError('SERVICE_CYCLE', `services depend on each other in a cycle: ${cycle.join(' -> ')}`, {
        hint: 'break the cycle in the services\' dependsOn lists',
      })
    }
    state.set(name, 'visiting')
    const s = byName.get(name)!
    for (const dep of s.definition.dependsOn ?? []) visit(dep, [...trail, name])
    state.set(name, 'done')
    ordered.push(s)
  }
  for (const name of byName.keys()) visit(name, [])
  return ordered
}
