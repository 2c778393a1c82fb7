import t from 'tap'
import { join } from 'node:path'
import { builtinPlugins } from '../../app/builtins.js'
import { loadOperatorConfig, resolveSections } from '../../core/config.js'
import { ROOT } from '../helpers/form.js'

t.test('templates/operator.toml is a valid operator config that spells out the defaults', async (t) => {
  const { file, raw } = await loadOperatorConfig(join(ROOT, 'templates', 'operator.toml'), true)
  const sections = resolveSections(file, raw, builtinPlugins)
  const defaults = resolveSections(undefined, {}, builtinPlugins)
  t.same(sections, defaults)
})
