import { appendFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(scope: string): Logger
}

export interface LoggerOptions {
  level?: LogLevel
  /** append every line to this file too */
  file?: string
  /** also write to stderr (foreground node) */
  stderr?: boolean
  scope?: string
}

function format(level: LogLevel, scope: string | undefined, msg: string, fields?: Record<string, unknown>): string {
  const extra = fields && Object.keys(fields).length ? ' ' + JSON.stringify(fields) : ''
  return `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope ? `[${scope}] ` : ''}${msg}${extra}\n`
}

/** Line-oriented logger. Writes synchronously so that the last lines before a crash are kept. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = rank[options.level ?? 'info']
  if (options.file) mkdirSync(dirname(options.file), { recursive: true })
  const write = (level: LogLevel, scope: string | undefined, msg: string, fields?: Record<string, unknown>) => {
    if (rank[level] < min) return
    const line = format(level, scope, msg, fields)
    if (options.file) appendFileSync(options.file, line)
    if (options.stderr) process.stderr.write(line)
  }
  const make = (scope: string | undefined): Logger => ({
    debug: (m, f) => write('debug', scope, m, f),
    info: (m, f) => write('info', scope, m, f),
    warn: (m, f) => write('warn', scope, m, f),
    error: (m, f) => write('error', scope, m, f),
    child: (s) => make(scope ? `${scope}/${s}` : s),
  })
  return make(options.scope)
}
