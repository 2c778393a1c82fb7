import { FormError, isFormError } from './errors.js'

interface Stream {
  isTTY?: boolean
  write(chunk: string): unknown
}

/** Colour is on only for a TTY, and never when NO_COLOR is set (https://no-color.org). FORCE_COLOR forces it. */
export function colorEnabled(stream: Stream = process.stdout, env = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true
  return Boolean(stream.isTTY) && env.TERM !== 'dumb'
}

const codes = { bold: [1, 22], dim: [2, 22], red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39] } as const
export type Style = keyof typeof codes

export function paint(enabled: boolean) {
  const fn = (style: Style, text: string) => (enabled ? `\u001b[${codes[style][0]}m${text}\u001b[${codes[style][1]}m` : text)
  return fn
}

export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n'
}

/** Plain aligned columns; good enough for terminals and greppable in pipes. */
export function table(rows: string[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows
  if (all.length === 0) return ''
  const widths = all[0].map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n'
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  return h < 48 ? `${h}h${String(m % 60).padStart(2, '0')}m` : `${Math.floor(h / 24)}d${h % 24}h`
}

/** Prints an error the way every command does: one line, a hint, a stack only with --verbose. Returns the exit code. */
export function reportError(error: unknown, opts: { json: boolean; verbose: boolean; stdout: Stream; stderr: Stream }): number {
  const fe: FormError = isFormError(error)
    ? error
    : new FormError('INTERNAL', error instanceof Error ? error.message : String(error), {
        hint: 'this is a bug in form; run again with --verbose and report the output',
      })
  if (opts.json) {
    opts.stdout.write(toJson({ error: fe.toJSON() }))
  } else {
    const c = paint(colorEnabled(opts.stderr))
    opts.stderr.write(`${c('red', 'error')}${c('dim', `[${fe.code}]`)}: ${fe.message}\n`)
    if (fe.hint) opts.stderr.write(`  ${c('cyan', 'hint')}: ${fe.hint}\n`)
  }
  if (opts.verbose) {
    const stack = error instanceof Error ? error.stack : undefined
    if (stack) opts.stderr.write(stack + '\n')
    let cause = error instanceof Error ? error.cause : undefined
    while (cause) {
      opts.stderr.write(`caused by: ${cause instanceof Error ? cause.stack ?? cause.message : String(cause)}\n`)
      cause = cause instanceof Error ? cause.cause : undefined
    }
  }
  return fe.exitCode
}
