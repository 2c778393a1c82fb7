import type { Step } from './types.js'

/**
 * ENV values are data. A value is kept as a template (the parser's splitWords in template mode):
 * `$NAME` and `${NAME}` name variables, `\$` and `\\` are a literal `$` and `\`, and everything
 * else is literal text, `$(...)` and backticks included: nothing in a value is ever executed, at
 * build time or at login. Single-quoted text reaches the template with its `$` and `\` escaped, so
 * it stays literal.
 */

export type EnvPart = { text: string } | { ref: string }

const REF = /^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})/

export function envParts(template: string): EnvPart[] {
  const parts: EnvPart[] = []
  let text = ''
  for (let i = 0; i < template.length; ) {
    const ch = template[i]
    if (ch === '\\' && (template[i + 1] === '$' || template[i + 1] === '\\')) {
      text += template[i + 1]
      i += 2
      continue
    }
    const m = ch === '$' ? REF.exec(template.slice(i)) : null
    if (m) {
      if (text) parts.push({ text })
      text = ''
      parts.push({ ref: m[1] ?? m[2] })
      i += m[0].length
      continue
    }
    text += ch
    i++
  }
  if (text || !parts.length) parts.push({ text })
  return parts
}

/** The value with its variables taken from `vars` (unknown ones are empty, as in a shell). */
export function expandEnv(template: string, vars: Record<string, string | undefined>): string {
  return envParts(template)
    .map((p) => ('ref' in p ? (vars[p.ref] ?? '') : p.text))
    .join('')
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/**
 * A value as POSIX shell text that, when the file is sourced, gives the literal parts as they are
 * (single-quoted) and each variable's value from the environment the file lands in ("${NAME}",
 * which expands a variable and never runs anything).
 */
export function shellValue(template: string): string {
  return envParts(template)
    .map((p) => ('ref' in p ? `"\${${p.ref}}"` : sq(p.text)))
    .join('')
}

/**
 * The lines an ENV step appends to its scope's file: `export KEY=...` for the shell-sourced system
 * and user files; for a service's systemd EnvironmentFile (which expands nothing), the value with
 * its variables resolved from `known` (the system and that service's earlier ENV).
 */
export function envFileLines(step: Extract<Step, { kind: 'env' }>, known: Record<string, string> = {}): string {
  if (step.scope.kind === 'service') {
    const vars = { ...known }
    return Object.entries(step.vars)
      .map(([k, v]) => {
        vars[k] = expandEnv(v, vars)
        return `${k}="${vars[k].replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"\n`
      })
      .join('')
  }
  return Object.entries(step.vars)
    .map(([k, v]) => `export ${k}=${shellValue(v)}\n`)
    .join('')
}

/** What the ENV steps before `index` give a service's EnvironmentFile to resolve from. */
export function knownServiceEnv(steps: Step[], index: number, service: string): Record<string, string> {
  const vars: Record<string, string> = {}
  for (const s of steps.slice(0, index)) {
    if (s.kind !== 'env' || (s.scope.kind === 'service' ? s.scope.name !== service : s.scope.kind !== 'system')) continue
    for (const [k, v] of Object.entries(s.vars)) vars[k] = expandEnv(v, vars)
  }
  return vars
}
