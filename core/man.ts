import type { Cli } from 'clipanion'

/** roff needs backslashes doubled and lines starting with . or ' escaped. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n')
    .trim()
}

/** Clipanion marks code with backticks and wraps paragraphs; man pages want plain paragraphs. */
function paragraphs(text: string): string {
  return text
    .trim()
    .split(/\n\s*\n/)
    .map((p) => roff(p.replace(/\s*\n\s*/g, ' ')).replace(/`([^`]+)`/g, '\\fB$1\\fR'))
    .join('\n.PP\n')
}

const GLOBAL_OPTIONS: [string, string][] = [
  ['--json', 'Print machine-readable JSON.'],
  ['--verbose', 'Show stack traces and debug output.'],
  ['--config-dir DIR', 'Configuration directory (env FORM_CONFIG_DIR).'],
  ['--data-dir DIR', 'Data directory (env FORM_DATA_DIR).'],
  ['--runtime-dir DIR', 'Runtime directory holding the node socket and pid file (env FORM_RUNTIME_DIR).'],
  ['--config FILE', 'Operator config file, TOML (env FORM_OPERATOR_CONFIG).'],
]
const GLOBAL = new Set(GLOBAL_OPTIONS.map(([flag]) => flag.split(' ')[0]))

export interface ManPage {
  /** e.g. form-node-start.1 */
  file: string
  content: string
}

/**
 * One man page per command, rendered from the same Clipanion definitions that produce `--help`, so
 * the two can never disagree.
 */
export function renderManPages(cli: Cli<any>, version: string, date = new Date().toISOString().slice(0, 10)): ManPage[] {
  const pages: ManPage[] = []
  for (const def of cli.definitions()) {
    const path = def.path.split(' ')
    if (path.length < 2 || path.some((p) => p.startsWith('-'))) continue // help/version builtins
    const name = path.join('-')
    const options = def.options.filter((o) => !GLOBAL.has(o.definition.split(/[ ,]/)[0]))
    const lines = [
      `.TH "${name.toUpperCase()}" "1" "${date}" "form ${version}" "Formation manual"`,
      '.SH NAME',
      `${roff(name)} \\- ${roff((def.description ?? '').trim())}`,
      '.SH SYNOPSIS',
      `.B ${roff(def.usage.replace(/ \[--(json|verbose)\]/g, ''))}`,
    ]
    if (def.details) lines.push('.SH DESCRIPTION', paragraphs(def.details))
    if (options.length) {
      lines.push('.SH OPTIONS')
      for (const o of options) lines.push('.TP', `.B ${roff(o.definition)}`, roff(o.description ?? ''))
    }
    lines.push('.SH COMMON OPTIONS')
    for (const [flag, text] of GLOBAL_OPTIONS) lines.push('.TP', `.B ${roff(flag)}`, roff(text))
    if (def.examples?.length) {
      lines.push('.SH EXAMPLES')
      for (const [text, cmd] of def.examples) lines.push('.TP', roff(text.trim()), '.nf', `.B ${roff(cmd.replace(/^\$0/, 'form'))}`, '.fi')
    }
    lines.push('.SH SEE ALSO', `.BR form (1)`)
    pages.push({ file: `${name}.1`, content: lines.join('\n') + '\n' })
  }
  const index = [
    `.TH "FORM" "1" "${date}" "form ${version}" "Formation manual"`,
    '.SH NAME',
    'form \\- the Formation toolchain: build VM images, ship them to a fog network, run a node',
    '.SH SYNOPSIS',
    '.B form',
    '\\fICOMMAND\\fR [\\fIOPTIONS\\fR]',
    '.SH COMMANDS',
    ...pages.flatMap((p) => ['.TP', `.BR ${p.file.replace(/\.1$/, '')} (1)`]),
    '.SH COMMON OPTIONS',
    ...GLOBAL_OPTIONS.flatMap(([flag, text]) => ['.TP', `.B ${roff(flag)}`, roff(text)]),
  ]
  pages.push({ file: 'form.1', content: index.join('\n') + '\n' })
  return pages
}
