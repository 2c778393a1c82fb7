import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { builtinPlugins } from '../../app/builtins.js'
import { operatorManPage, operatorTemplate } from '../../app/operator-template.js'
import { loadOperatorConfig, resolveSections } from '../../core/config.js'
import { defineSettings, renderOperatorTemplate, s } from '../../core/settings.js'
import { ROOT } from '../helpers/form.js'

const TEMPLATE = join(ROOT, 'templates', 'operator.toml')

t.test('templates/operator.toml is a valid operator config that spells out the defaults', async (t) => {
  const { file, raw } = await loadOperatorConfig(TEMPLATE, true)
  const sections = resolveSections(file, raw, builtinPlugins)
  const defaults = resolveSections(undefined, {}, builtinPlugins)
  t.same(sections, defaults)
})

t.test('templates/operator.toml is what the declared settings render (npm run build rewrites it)', async (t) => {
  t.equal(readFileSync(TEMPLATE, 'utf8'), operatorTemplate(), 'the committed template matches the declarations; run `npm run build` after changing a setting')
})

t.test('every declared setting is in the template, with its default and description', async (t) => {
  const text = readFileSync(TEMPLATE, 'utf8')
  for (const plugin of builtinPlugins) {
    const settings = (plugin.configuration as { settings?: Record<string, { kind: string; description: string }> } | undefined)?.settings
    if (!settings) continue
    t.match(text, `\n[${plugin.name}]`, `[${plugin.name}] is there`)
    for (const [key, d] of Object.entries(settings)) {
      if (d.kind === 'table') t.match(text, `\n[${plugin.name}.${key}]`)
      else t.match(text, new RegExp(`^(# )?${key} = `, 'm'), `${plugin.name}.${key} is there`)
    }
  }
})

t.test('the drift check can fail: a changed default or description renders another template', async (t) => {
  const one = { name: 'x', configuration: defineSettings({ port: s.int(3010, 'the port', { max: 65535 }) }) }
  const moved = { name: 'x', configuration: defineSettings({ port: s.int(3011, 'the port', { max: 65535 }) }) }
  const reworded = { name: 'x', configuration: defineSettings({ port: s.int(3010, 'the port it listens on', { max: 65535 }) }) }
  const base = renderOperatorTemplate([one], '# h')
  t.equal(base, '# h\n\n[x]\nport = 3010                        # the port\n')
  t.not(renderOperatorTemplate([moved], '# h'), base)
  t.not(renderOperatorTemplate([reworded], '# h'), base)
})

t.test('form-operator(5) lists every setting with its type and default', async (t) => {
  const page = operatorManPage('9.9.9', '2026-01-01').content
  t.match(page, '.TH "FORM-OPERATOR" "5" "2026-01-01" "form 9.9.9"')
  t.match(page, '.SH [net]')
  t.match(page, '.SH [node.resources]')
  t.match(page, '.B formnet_port\n(integer, 1 to 65535; default 51820)')
  t.match(page, '.B bridge_name\n(interface name; default "formbr0")')
})
