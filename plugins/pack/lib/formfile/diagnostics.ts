export type Severity = 'error' | 'warning'

export interface Diagnostic {
  severity: Severity
  /** stable, kebab-case: scripts and tests match on it */
  code: string
  message: string
  file: string
  /** 1-based */
  line: number
  /** 1-based, in characters */
  column: number
  /** how many characters the problem spans (for the caret line) */
  length: number
  /** the offending source text */
  text: string
  hint?: string
  /** another place the problem involves, e.g. the first of two NAME lines */
  related?: { line: number; column: number; message: string }
}

/** Thrown by the parser only for its own diagnostics (never anything else) when a caller wants an exception. */
export class FormfileError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map((d) => `${d.file}:${d.line}:${d.column}: ${d.message}`).join('\n'))
  }
}

/** Compiler-style text: location, message, the source line, a caret under the problem, and the hint. */
export function formatDiagnostics(diagnostics: Diagnostic[], source: string, color: (style: 'red' | 'yellow' | 'cyan' | 'bold' | 'dim', s: string) => string = (_s, t) => t): string {
  const lines = source.split(/\r?\n/)
  return diagnostics
    .map((d) => {
      const src = lines[d.line - 1] ?? ''
      const gutter = String(d.line).length
      const sev = d.severity === 'error' ? color('red', 'error') : color('yellow', 'warning')
      const out = [
        `${color('bold', `${d.file}:${d.line}:${d.column}`)}: ${sev}[${d.code}]: ${d.message}`,
        `${' '.repeat(gutter)} |`,
        `${d.line} | ${src}`,
        `${' '.repeat(gutter)} | ${' '.repeat(Math.max(0, d.column - 1))}${color(d.severity === 'error' ? 'red' : 'yellow', '^'.repeat(Math.max(1, Math.min(d.length, src.length - d.column + 1))))}`,
      ]
      if (d.related) out.push(`${' '.repeat(gutter)} = note: ${d.file}:${d.related.line}:${d.related.column}: ${d.related.message}`)
      if (d.hint) out.push(`${' '.repeat(gutter)} = ${color('cyan', 'hint')}: ${d.hint}`)
      return out.join('\n')
    })
    .join('\n\n')
}
