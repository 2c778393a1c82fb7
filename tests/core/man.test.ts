import t from 'tap'
import { builtinPlugins } from '../../app/builtins.js'
import { buildCli } from '../../core/main.js'
import { renderManPages } from '../../core/man.js'

t.test('every command gets a man page built from its --help definition', async (t) => {
  const cli = buildCli(builtinPlugins.map((plugin) => ({ plugin, builtin: true })))
  const pages = renderManPages(cli, '9.9.9', '2026-01-01')
  const byFile = new Map(pages.map((p) => [p.file, p.content]))
  const commands = cli.definitions().filter((d) => d.path.split(' ').length > 1 && !d.path.split(' ').some((p) => p.startsWith('-')))
  t.equal(pages.length, commands.length + 1, 'one page per command plus form(1)')
  const start = byFile.get('form-node-start.1')!
  t.match(start, '.TH "FORM-NODE-START" "1" "2026-01-01" "form 9.9.9"')
  t.match(start, '\\-\\-detach,\\-d', 'its own options, roff-escaped')
  t.match(start, '.B form node start \\-\\-detach', 'its examples with $0 replaced')
  t.match(start, '\\fB\\-\\-data\\-dir\\fR', 'inline code from the details in bold')
  for (const cmd of commands) t.match(byFile.get('form.1')!, `.BR ${cmd.path.replace(/ /g, '-')} (1)`)
})
