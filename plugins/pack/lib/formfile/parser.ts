import { basename } from 'node:path'
import type { Diagnostic } from './diagnostics.js'
import { logicalLines, splitWords, type LogicalLine, type Word } from './lexer.js'
import { hashPassword } from './passwd.js'
import { DEFAULT_RESOURCES, PROFILES } from './profiles.js'
import type { EnvScope, ExposedPort, Formfile, FormfileUser, HealthCheck, Step } from './types.js'
import { defaultHealthChecks, describeCheck, formatHealthDuration, HEALTH_DEFAULTS, HEALTH_LIMITS, HEALTH_PATH, MAX_HEALTH_CHECKS, MAX_HEALTH_PATH, parseHealthDuration } from '../../../node/index.js'

export interface ParseOptions {
  /** shown in diagnostics */
  file?: string
  /** the build context directory: the default NAME comes from its name */
  contextDir?: string
  /** resource limit profile (see profiles.ts) */
  profile?: string
}

export interface ParseResult {
  /** present when there are no errors */
  formfile?: Formfile
  diagnostics: Diagnostic[]
}

const ALIASES: Record<string, string> = {
  NAME: 'NAME',
  DESCRIPTION: 'DESCRIPTION',
  USER: 'USER',
  VCPU: 'VCPU',
  CPU: 'VCPU',
  CORES: 'VCPU',
  MEM: 'MEM',
  MEMORY: 'MEM',
  DISK: 'DISK',
  STORAGE: 'DISK',
  GPU: 'GPU',
  WORKDIR: 'WORKDIR',
  COPY: 'COPY',
  RUN: 'RUN',
  INSTALL: 'INSTALL',
  ENV: 'ENV',
  ENTRYPOINT: 'ENTRYPOINT',
  EXPOSE: 'EXPOSE',
  HEALTHCHECK: 'HEALTHCHECK',
}
const ONCE = new Set(['NAME', 'WORKDIR', 'VCPU', 'MEM', 'DISK', 'DESCRIPTION', 'GPU'])
const USER_OPTIONS = ['username', 'passwd', 'ssh_authorized_keys', 'lock_passwd', 'sudo', 'shell', 'ssh_pwauth', 'disable_root', 'chpasswd_expire', 'groups']
const USERNAME = /^[a-z_][a-z0-9_-]{0,31}$/
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/
const SERVICE = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$/
const PACKAGE = /^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$/
const GPU = /^([a-z0-9][a-z0-9-]{0,31})(?::(\d+))?$/

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
  return d[a.length][b.length]
}

export function suggest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const dd = distance(word.toUpperCase(), c.toUpperCase())
    if (dd < bestD) [best, bestD] = [c, dd]
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined
}

/** A readable NAME from a directory name: "My App!" -> "my-app". */
export function nameFromDirectory(dir: string): string {
  const slug = basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
    .slice(0, 63)
  return slug || 'formation-app'
}

/** HEALTHCHECK options: the field each sets, and whether it is a duration (else a count). */
const HEALTH_OPTIONS: Record<string, { field: keyof typeof HEALTH_LIMITS; duration: boolean }> = {
  interval: { field: 'intervalMs', duration: true },
  timeout: { field: 'timeoutMs', duration: true },
  retries: { field: 'retries', duration: false },
  'start-period': { field: 'startPeriodMs', duration: true },
}
const HEALTH_KINDS = ['tcp', 'http', 'none']

/**
 * Whether the ENTRYPOINT is nginx itself (`nginx ...`, `/usr/sbin/nginx ...`, `exec nginx ...`): the
 * base image's own nginx.service would take port 80 before it, so the builder turns that one off.
 */
export function entrypointRunsNginx(entrypoint: Formfile['entrypoint']): boolean {
  if (!entrypoint) return false
  const words = entrypoint.form === 'shell' ? (entrypoint.command ?? entrypoint.argv.join(' ')).trim().split(/\s+/) : entrypoint.argv
  const program = words[0] === 'exec' ? words[1] : words[0]
  return program?.split('/').pop() === 'nginx'
}

/** The checks a node probes for this Formfile: its HEALTHCHECK lines, else a TCP check per EXPOSEd TCP port. */
export function healthChecks(f: Pick<Formfile, 'healthchecks' | 'expose'>): HealthCheck[] {
  return f.healthchecks ?? defaultHealthChecks(f.expose)
}

const BOOLEANS: Record<string, boolean> = { true: true, yes: true, '1': true, false: false, no: false, '0': false }

class Parser {
  readonly diagnostics: Diagnostic[] = []
  private line!: LogicalLine
  private seen = new Map<string, { line: number; column: number }>()
  private users: FormfileUser[] = []
  private userLines = new Map<string, { line: number; column: number }>()
  private steps: Step[] = []
  private envScopes: { scope: EnvScope; word: Word; line: LogicalLine }[] = []
  private resources: Formfile['resources'] = { ...DEFAULT_RESOURCES }
  private name?: string
  private description?: string
  private workdir?: string
  private entrypoint?: Formfile['entrypoint']
  private entrypointAt?: { line: number; column: number }
  private expose: ExposedPort[] = []
  private health: { check: HealthCheck; word: Word; line: LogicalLine }[] = []
  private healthNone?: { word: Word; line: LogicalLine }
  private readonly profile: (typeof PROFILES)[string]

  constructor(
    private readonly source: string,
    private readonly options: ParseOptions,
  ) {
    this.profile = PROFILES[options.profile ?? 'default'] ?? PROFILES.default
  }

  private report(severity: Diagnostic['severity'], code: string, message: string, start: number, end: number, hint?: string, related?: Diagnostic['related'], line = this.line): void {
    const pos = line.positions[Math.min(start, line.positions.length - 1)] ?? line.start
    // the span ends at the end of the physical line where it starts
    let length = 0
    for (let i = start; i < Math.max(end, start + 1) && i < line.positions.length && line.positions[i].line === pos.line; i++) length++
    this.diagnostics.push({ severity, code, message, file: this.options.file ?? 'Formfile', line: pos.line, column: pos.column, length: Math.max(1, length), text: line.text.slice(start, Math.max(end, start + 1)), hint, related })
  }

  private error(code: string, message: string, at: { start: number; end: number }, hint?: string, related?: Diagnostic['related']): void {
    this.report('error', code, message, at.start, at.end, hint, related)
  }

  private posOf(offset: number): { line: number; column: number } {
    return this.line.positions[offset] ?? this.line.start
  }

  parse(): ParseResult {
    for (const line of logicalLines(this.source)) {
      this.line = line
      this.instruction()
    }
    this.finish()
    const errors = this.diagnostics.filter((d) => d.severity === 'error')
    this.diagnostics.sort((a, b) => a.line - b.line || a.column - b.column)
    if (errors.length) return { diagnostics: this.diagnostics }
    const env: Formfile['env'] = { system: {}, users: {}, services: {} }
    for (const step of this.steps) {
      if (step.kind !== 'env') continue
      const target = step.scope.kind === 'system' ? env.system : step.scope.kind === 'user' ? (env.users[step.scope.name] ??= {}) : (env.services[step.scope.name] ??= {})
      Object.assign(target, step.vars)
    }
    const contextName = nameFromDirectory(this.options.contextDir ?? process.cwd())
    return {
      diagnostics: this.diagnostics,
      formfile: {
        name: this.name ?? contextName,
        nameGenerated: this.name === undefined,
        description: this.description,
        resources: this.resources,
        users: this.users,
        workdir: this.workdir,
        steps: this.steps,
        env,
        entrypoint: this.entrypoint,
        expose: this.expose,
        ...(this.healthNone ? { healthchecks: [] } : this.health.length ? { healthchecks: this.health.map((h) => h.check) } : {}),
      },
    }
  }

  private instruction(): void {
    const text = this.line.text
    if (this.line.danglingContinuation) {
      const d = this.line.danglingContinuation
      this.diagnostics.push({ severity: 'error', code: 'dangling-continuation', message: 'the file ends after a line continuation (\\)', file: this.options.file ?? 'Formfile', line: d.line, column: d.column, length: 1, text: '\\', hint: 'remove the trailing backslash or add the rest of the instruction' })
      return
    }
    const m = /^\s*(\S+)/.exec(text)
    if (!m) return
    const keyword = m[1]
    const kwStart = m.index + m[0].length - keyword.length
    const kwSpan = { start: kwStart, end: kwStart + keyword.length }
    const name = ALIASES[keyword.toUpperCase()]
    if (!name) {
      const guess = suggest(keyword, Object.keys(ALIASES))
      this.error('unknown-instruction', `unknown instruction "${keyword}"`, kwSpan, guess ? `did you mean ${guess}?` : `instructions are ${Object.keys(ALIASES).join(', ')}`)
      return
    }
    const first = this.seen.get(name)
    if (first && ONCE.has(name)) {
      this.error('duplicate-instruction', `${name} may appear only once`, kwSpan, `remove one of the two ${name} lines`, { ...first, message: `the first ${name} is here` })
      return
    }
    this.seen.set(name, first ?? this.posOf(kwStart))
    const argsStart = kwSpan.end
    const rest = text.slice(argsStart)
    const restSpan = { start: argsStart + (rest.length - rest.trimStart().length), end: text.trimEnd().length }
    if (rest.trim() === '' && name !== 'COPY') {
      this.error('missing-argument', `${name} needs an argument`, kwSpan, USAGE[name])
      return
    }
    const handler = this.handlers[name]
    handler.call(this, restSpan)
  }

  private words(span: { start: number }, template = false): Word[] | undefined {
    const { words, unterminated } = splitWords(this.line.text, span.start, template)
    if (unterminated !== undefined) {
      this.error('unterminated-quote', 'this quote is never closed', { start: unterminated, end: unterminated + 1 }, 'close the quote on the same logical line (use \\ to continue a line)')
      return undefined
    }
    return words
  }

  private single(name: string, span: { start: number; end: number }): Word | undefined {
    const words = this.words(span)
    if (!words) return undefined
    if (words.length > 1) {
      this.error('too-many-arguments', `${name} takes one argument`, { start: words[1].start, end: words.at(-1)!.end }, USAGE[name])
      return undefined
    }
    return words[0]
  }

  private integer(name: string, key: 'vcpus' | 'memoryMb' | 'diskGb', span: { start: number; end: number }, unit: string): void {
    const w = this.single(name, span)
    if (!w) return
    if (!/^\d+$/.test(w.value)) {
      this.error('invalid-number', `${name} must be a whole number of ${unit} (got "${w.value}")`, w, USAGE[name])
      return
    }
    const n = Number(w.value)
    const [min, max] = this.profile[key]
    if (n < min || n > max) {
      this.error('out-of-range', `${name} ${n} is outside ${min}-${max} ${unit}`, w, `the ${this.options.profile ?? 'default'} profile allows ${min}-${max} ${unit}${this.options.profile && this.options.profile !== 'default' ? '' : ''}`)
      return
    }
    this.resources[key] = n
  }

  private readonly handlers: Record<string, (span: { start: number; end: number }) => void> = {
    NAME: (span) => {
      const w = this.single('NAME', span)
      if (!w) return
      if (!NAME.test(w.value)) {
        this.error('invalid-name', `NAME "${w.value}" is not a valid name`, w, 'use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit')
        return
      }
      this.name = w.value
    },
    DESCRIPTION: (span) => {
      const words = this.words(span)
      if (words) this.description = words.length === 1 ? words[0].value : this.line.text.slice(span.start, span.end)
    },
    VCPU: (span) => this.integer('VCPU', 'vcpus', span, 'vCPUs'),
    MEM: (span) => this.integer('MEM', 'memoryMb', span, 'MB'),
    DISK: (span) => this.integer('DISK', 'diskGb', span, 'GB'),
    GPU: (span) => {
      const w = this.single('GPU', span)
      if (!w) return
      const m = GPU.exec(w.value)
      const count = m?.[2] === undefined ? 1 : Number(m[2])
      if (!m || count < 1 || count > 16) {
        this.error('invalid-gpu', `GPU "${w.value}" is not <model>[:<count>]`, w, 'e.g. GPU rtx4090 or GPU a100:2 (count 1-16)')
        return
      }
      this.resources.gpu = { model: m[1], count }
    },
    WORKDIR: (span) => {
      const w = this.single('WORKDIR', span)
      if (!w) return
      if (!w.value.startsWith('/')) {
        this.error('invalid-path', `WORKDIR must be an absolute path (got "${w.value}")`, w, `e.g. WORKDIR /${w.value.replace(/^\.?\/*/, '')}`)
        return
      }
      this.workdir = normalizeAbsolute(w.value)
      this.steps.push({ kind: 'workdir', path: this.workdir, line: this.posOf(w.start).line })
    },
    COPY: (span) => {
      const line = this.posOf(span.start > this.line.text.length - 1 ? 0 : span.start).line
      const args = this.jsonOrWords('COPY', span)
      if (!args) return
      let sources: Word[] = []
      let dest: Word | undefined
      if (args.length === 1) dest = args[0]
      else if (args.length > 1) {
        sources = args.slice(0, -1)
        dest = args.at(-1)
      }
      if (dest === undefined) {
        this.steps.push({ kind: 'copy', sources: [], destination: '', line })
        return
      }
      if (!dest.value.startsWith('/')) {
        this.error('invalid-path', `the COPY destination must be an absolute path (got "${dest.value}")`, dest, 'e.g. COPY ./app /app')
        return
      }
      if (sources.length > 1 && !dest.value.endsWith('/')) {
        this.error('copy-destination-not-directory', 'with several sources the COPY destination must be a directory ending in /', dest, `write ${dest.value}/`)
        return
      }
      const normalized: string[] = []
      for (const s of sources) {
        const problem = contextPathProblem(s.value)
        if (problem) {
          this.error('path-escapes-context', problem, s, 'COPY sources are paths inside the build context (the Formfile\'s directory)')
          return
        }
        normalized.push(normalizeRelative(s.value))
      }
      const destination = dest.value.endsWith('/') ? normalizeAbsolute(dest.value) + (dest.value === '/' ? '' : '/') : normalizeAbsolute(dest.value)
      this.steps.push({ kind: 'copy', sources: normalized, destination, line })
    },
    RUN: (span) => {
      const line = this.posOf(span.start).line
      const text = this.line.text.slice(span.start, span.end)
      if (text.startsWith('[')) {
        const argv = this.jsonArray('RUN', span)
        if (argv) this.steps.push({ kind: 'run', command: argv.map((a) => a.value).join(' '), argv: argv.map((a) => a.value), line })
        return
      }
      this.steps.push({ kind: 'run', command: text, line })
    },
    INSTALL: (span) => {
      const words = this.words(span)
      if (!words) return
      for (const w of words) {
        if (!PACKAGE.test(w.value)) {
          this.error('invalid-package', `"${w.value}" is not a Debian package name`, w, 'package names are lowercase letters, digits, + - . (optionally =version)')
          return
        }
      }
      this.steps.push({ kind: 'install', packages: words.map((w) => w.value), line: this.posOf(span.start).line })
    },
    ENV: (span) => {
      const words = this.words(span, true)
      if (!words) return
      let scope: EnvScope = { kind: 'system' }
      let scopeWord: Word | undefined
      let i = 0
      if (words[0]?.value.startsWith('--')) {
        scopeWord = words[0]
        const m = /^--scope=(system|user:(.+)|service:(.+))$/.exec(words[0].value)
        if (!m) {
          this.error('invalid-env-scope', `"${words[0].value}" is not a scope`, words[0], 'use --scope=system, --scope=user:<name> or --scope=service:<name>')
          return
        }
        if (m[2] !== undefined && !USERNAME.test(m[2])) {
          this.error('invalid-env-scope', `"${m[2]}" is not a valid username`, words[0], 'the user scope names a USER of this Formfile')
          return
        }
        if (m[3] !== undefined && !SERVICE.test(m[3])) {
          this.error('invalid-env-scope', `"${m[3]}" is not a valid service name`, words[0], 'service names are letters, digits, @ . _ -')
          return
        }
        scope = m[2] !== undefined ? { kind: 'user', name: m[2] } : m[3] !== undefined ? { kind: 'service', name: m[3] } : { kind: 'system' }
        i = 1
      }
      const vars: Record<string, string> = {}
      if (i >= words.length) {
        this.error('missing-argument', 'ENV needs at least one KEY=value', scopeWord ?? { start: span.start, end: span.end }, USAGE.ENV)
        return
      }
      for (; i < words.length; i++) {
        const w = words[i]
        const eq = w.value.indexOf('=')
        const key = eq === -1 ? w.value : w.value.slice(0, eq)
        if (eq === -1 || !ENV_KEY.test(key)) {
          this.error('invalid-env', `"${w.value}" is not KEY=value`, w, 'keys are letters, digits and _, not starting with a digit; quote values with spaces: KEY="a b"')
          return
        }
        vars[key] = w.value.slice(eq + 1)
      }
      if (scope.kind === 'user') this.envScopes.push({ scope, word: scopeWord!, line: this.line })
      this.steps.push({ kind: 'env', scope, vars, line: this.posOf(span.start).line })
    },
    ENTRYPOINT: (span) => {
      const text = this.line.text.slice(span.start, span.end)
      const at = this.posOf(span.start)
      let value: Formfile['entrypoint']
      if (text.startsWith('[')) {
        const argv = this.jsonArray('ENTRYPOINT', span)
        if (!argv) return
        if (argv.length === 0) {
          this.error('missing-argument', 'ENTRYPOINT needs a command', span, USAGE.ENTRYPOINT)
          return
        }
        value = { form: 'exec', argv: argv.map((a) => a.value) }
      } else {
        const words = this.words(span)
        if (!words) return
        value = { form: 'shell', argv: words.map((w) => w.value), command: text }
      }
      if (this.entrypoint && this.entrypointAt) {
        this.report('warning', 'entrypoint-overridden', 'this ENTRYPOINT replaces an earlier one', span.start, span.end, 'keep only one ENTRYPOINT', { ...this.entrypointAt, message: 'the earlier ENTRYPOINT' })
      }
      this.entrypoint = value
      this.entrypointAt = at
    },
    EXPOSE: (span) => {
      const words = this.words(span)
      if (!words) return
      for (const w of words) {
        const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/i.exec(w.value)
        const port = m ? Number(m[1]) : NaN
        const end = m?.[2] !== undefined ? Number(m[2]) : undefined
        if (!m || port < 1 || port > 65535 || (end !== undefined && (end < port || end > 65535))) {
          this.error('invalid-port', `"${w.value}" is not a port (1-65535), a range (8000-8010) or either with /tcp or /udp`, w, 'e.g. EXPOSE 80 443/tcp 8000-8010/udp')
          return
        }
        this.expose.push(end === undefined || end === port ? { port, protocol: (m[3]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp' } : { port, endPort: end, protocol: (m[3]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp' })
      }
    },
    USER: (span) => this.user(span),
    HEALTHCHECK: (span) => this.healthcheck(span),
  }

  private healthcheck(span: { start: number; end: number }): void {
    const words = this.words(span)
    if (!words) return
    const opts = new Map<string, Word & { optValue: string }>()
    const args: Word[] = []
    for (const w of words) {
      if (w.quoted || !w.value.startsWith('--')) {
        args.push(w)
        continue
      }
      const m = /^--([^=]*)(?:=(.*))?$/.exec(w.value)!
      const option = HEALTH_OPTIONS[m[1]]
      if (!option) {
        const guess = suggest(m[1], Object.keys(HEALTH_OPTIONS))
        this.error('invalid-healthcheck-option', `unknown HEALTHCHECK option "--${m[1]}"`, w, guess ? `did you mean --${guess}?` : `options are ${Object.keys(HEALTH_OPTIONS).map((o) => `--${o}`).join(', ')}`)
        return
      }
      if (!m[2]) {
        this.error('invalid-healthcheck-option', `--${m[1]} needs a value`, w, option.duration ? `e.g. --${m[1]}=10s (ms, s, m or h)` : `e.g. --${m[1]}=3`)
        return
      }
      if (opts.has(m[1])) {
        this.error('invalid-healthcheck-option', `--${m[1]} is given twice`, w, 'keep one')
        return
      }
      opts.set(m[1], { ...w, optValue: m[2] })
    }
    const kind = args[0]
    if (!kind) {
      this.error('missing-argument', 'HEALTHCHECK needs a check: tcp, http or none', span, USAGE.HEALTHCHECK)
      return
    }
    const k = kind.value.toLowerCase()
    if (k === 'none') {
      const extra = args[1] ?? [...opts.values()][0]
      if (extra) {
        this.error('too-many-arguments', 'HEALTHCHECK none takes no port or option', extra, 'write HEALTHCHECK none alone to turn the checks off')
        return
      }
      this.healthNone ??= { word: kind, line: this.line }
      return
    }
    if (k !== 'tcp' && k !== 'http') {
      const guess = suggest(kind.value, HEALTH_KINDS)
      this.error('invalid-healthcheck', `"${kind.value}" is not a kind of check`, kind, guess ? `did you mean ${guess}? ${USAGE.HEALTHCHECK}` : USAGE.HEALTHCHECK)
      return
    }
    const want = k === 'http' ? 3 : 2
    if (args.length < want) {
      this.error('missing-argument', k === 'http' ? 'HEALTHCHECK http needs a path and a port' : 'HEALTHCHECK tcp needs a port', args.at(-1)!, k === 'http' ? 'e.g. HEALTHCHECK http /healthz 8080' : 'e.g. HEALTHCHECK tcp 5432')
      return
    }
    if (args.length > want) {
      this.error('too-many-arguments', `HEALTHCHECK ${k} takes ${k === 'http' ? 'a path and a port' : 'one port'}`, { start: args[want].start, end: args.at(-1)!.end }, 'one check a line: write another HEALTHCHECK for another port')
      return
    }
    const path = k === 'http' ? args[1] : undefined
    if (path && (!HEALTH_PATH.test(path.value) || path.value.length > MAX_HEALTH_PATH)) {
      this.error('invalid-health-path', `"${path.value}" is not a path to check`, path, `an absolute path of visible ASCII characters (no spaces), at most ${MAX_HEALTH_PATH}, e.g. /healthz or /status?full=1`)
      return
    }
    const portWord = args[want - 1]
    const port = /^\d+$/.test(portWord.value) ? Number(portWord.value) : NaN
    if (!(port >= 1 && port <= 65535)) {
      this.error('invalid-port', `"${portWord.value}" is not a port (1-65535)`, portWord, USAGE.HEALTHCHECK)
      return
    }
    const check: HealthCheck = { kind: k, port, ...(path ? { path: path.value } : {}), ...HEALTH_DEFAULTS }
    for (const [name, w] of opts) {
      const { field, duration } = HEALTH_OPTIONS[name]
      const n = duration ? parseHealthDuration(w.optValue) : /^\d+$/.test(w.optValue) ? Number(w.optValue) : undefined
      if (n === undefined) {
        this.error(duration ? 'invalid-duration' : 'invalid-number', `--${name} must be ${duration ? 'a duration' : 'a whole number'} (got "${w.optValue}")`, w, duration ? 'a number and a unit: ms, s, m or h, e.g. 500ms, 10s, 1m30s' : `e.g. --${name}=3`)
        return
      }
      const [min, max] = HEALTH_LIMITS[field]
      if (n < min || n > max) {
        const show = (v: number) => (duration ? formatHealthDuration(v) : String(v))
        this.error('out-of-range', `--${name}=${w.optValue} is outside ${show(min)}-${show(max)}`, w, `--${name} takes ${show(min)} to ${show(max)}`)
        return
      }
      check[field] = n
    }
    if (check.timeoutMs > check.intervalMs) {
      this.error('out-of-range', `--timeout=${formatHealthDuration(check.timeoutMs)} is longer than the interval (${formatHealthDuration(check.intervalMs)})`, opts.get('timeout') ?? opts.get('interval') ?? kind, 'a probe must end before the next one starts: shorten --timeout or lengthen --interval')
      return
    }
    const same = this.health.find((h) => h.check.kind === check.kind && h.check.port === check.port && h.check.path === check.path)
    if (same) {
      this.error('duplicate-healthcheck', `${describeCheck(check)} is checked twice`, { start: kind.start, end: args.at(-1)!.end }, 'remove one of the two lines', { ...same.line.positions[same.word.start], message: 'the first is here' })
      return
    }
    this.health.push({ check, word: kind, line: this.line })
  }

  private jsonArray(name: string, span: { start: number; end: number }): Word[] | undefined {
    const text = this.line.text.slice(span.start, span.end)
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      this.error('invalid-json', `${name} looks like a JSON array but is not valid JSON: ${(error as Error).message}`, span, `${USAGE[name]}; strings need double quotes`)
      return undefined
    }
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
      this.error('invalid-json', `${name} in JSON form must be an array of strings`, span, USAGE[name])
      return undefined
    }
    return parsed.map((value) => ({ value, start: span.start, end: span.end, quoted: true }))
  }

  private jsonOrWords(name: string, span: { start: number; end: number }): Word[] | undefined {
    return this.line.text.slice(span.start, span.end).startsWith('[') ? this.jsonArray(name, span) : this.words(span)
  }

  private user(span: { start: number; end: number }): void {
    const words = this.words(span)
    if (!words) return
    const opts = new Map<string, Word & { optValue: string }>()
    for (const w of words) {
      const colon = w.value.indexOf(':')
      const key = colon === -1 ? w.value : w.value.slice(0, colon)
      if (colon === -1 || !USER_OPTIONS.includes(key)) {
        const guess = suggest(key, USER_OPTIONS)
        this.error('invalid-user-option', colon === -1 ? `"${w.value}" is not option:value` : `unknown USER option "${key}"`, w, guess && colon !== -1 ? `did you mean ${guess}?` : `USER options are ${USER_OPTIONS.join(', ')}`)
        return
      }
      if (opts.has(key)) {
        this.error('duplicate-user-option', `USER option "${key}" is given twice`, w, 'keep one')
        return
      }
      opts.set(key, { ...w, optValue: w.value.slice(colon + 1) })
    }
    const username = opts.get('username')
    if (!username) {
      this.error('missing-username', 'USER needs username:<name>', span, USAGE.USER)
      return
    }
    if (!USERNAME.test(username.optValue)) {
      this.error('invalid-username', `"${username.optValue}" is not a valid username`, username, 'start with a lowercase letter or _, then lowercase letters, digits, _ or -, at most 32 characters')
      return
    }
    const bool = (key: string, dflt: boolean): boolean | undefined => {
      const o = opts.get(key)
      if (!o) return dflt
      const b = BOOLEANS[o.optValue.toLowerCase()]
      if (b === undefined) {
        this.error('invalid-boolean', `${key} must be true or false (got "${o.optValue}")`, o, 'use true/false, yes/no or 1/0')
        return undefined
      }
      return b
    }
    const lockPasswd = bool('lock_passwd', false)
    const sudo = bool('sudo', false)
    const sshPwauth = bool('ssh_pwauth', true)
    const disableRoot = bool('disable_root', true)
    const chpasswdExpire = bool('chpasswd_expire', true)
    if ([lockPasswd, sudo, sshPwauth, disableRoot, chpasswdExpire].includes(undefined)) return
    const shell = opts.get('shell')
    if (shell && !/^\/[^\s]*$/.test(shell.optValue)) {
      this.error('invalid-shell', `shell must be an absolute path (got "${shell.optValue}")`, shell, 'e.g. shell:/bin/bash')
      return
    }
    const passwd = opts.get('passwd')
    if (!passwd && !lockPasswd) {
      this.error('missing-passwd', `USER ${username.optValue} needs passwd:<password> (or lock_passwd:true)`, username, 'add passwd:... or set lock_passwd:true for SSH-key-only access')
      return
    }
    if (passwd && passwd.optValue === '') {
      this.error('missing-passwd', 'passwd is empty', passwd, 'give a password, or remove passwd and set lock_passwd:true')
      return
    }
    const list = (key: string) =>
      (opts.get(key)?.optValue ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    const groups = list('groups')
    const badGroup = groups.find((g) => !USERNAME.test(g))
    if (badGroup) {
      this.error('invalid-group', `"${badGroup}" is not a valid group name`, opts.get('groups')!, 'group names follow the username rules; separate them with commas')
      return
    }
    const prior = this.userLines.get(username.optValue)
    if (prior) {
      this.error('duplicate-user', `user "${username.optValue}" is declared twice`, username, 'merge the two USER lines', { ...prior, message: 'the first declaration' })
      return
    }
    this.userLines.set(username.optValue, this.posOf(username.start))
    this.users.push({
      username: username.optValue,
      passwordHash: passwd ? hashPassword(username.optValue, passwd.optValue) : undefined,
      lockPasswd: lockPasswd!,
      sudo: sudo!,
      shell: shell?.optValue ?? '/bin/bash',
      sshPwauth: sshPwauth!,
      disableRoot: disableRoot!,
      chpasswdExpire: chpasswdExpire!,
      groups,
      sshAuthorizedKeys: list('ssh_authorized_keys'),
    })
    this.steps.push({ kind: 'user', username: username.optValue, line: this.posOf(span.start).line })
  }

  /**
   * The base image runs nginx on port 80 (the seed's promise). A Formfile whose own ENTRYPOINT
   * serves port 80 gets a warning unless it turns that nginx off or configures it (a COPY into
   * /etc/nginx: then nginx is part of the design, e.g. a proxy in front of the entrypoint).
   */
  private warnNginxOnPort80(): void {
    if (!this.entrypoint || !this.entrypointAt || entrypointRunsNginx(this.entrypoint)) return
    if (!this.expose.some((p) => p.protocol === 'tcp' && p.port <= 80 && (p.endPort ?? p.port) >= 80)) return
    const handled = this.steps.some(
      (s) => (s.kind === 'run' && /systemctl\b[^;&|]*\b(disable|mask)\b[^;&|]*\bnginx\b/.test(s.command)) || (s.kind === 'copy' && /^\/etc\/nginx(\/|$)/.test(s.destination)),
    )
    if (handled) return
    this.diagnostics.push({
      severity: 'warning',
      code: 'base-nginx-on-port-80',
      message: "this ENTRYPOINT's server is exposed on port 80, where the base image's nginx already listens",
      file: this.options.file ?? 'Formfile',
      line: this.entrypointAt.line,
      column: this.entrypointAt.column,
      length: 1,
      text: this.entrypoint.argv[0] ?? '',
      hint: 'add RUN systemctl stop nginx && systemctl disable nginx before it (or configure that nginx with a COPY into /etc/nginx)',
    })
  }

  private finish(): void {
    // A USER line with its own error already has a diagnostic; only a file without any is reported here.
    if (!this.seen.has('USER')) {
      const last = logicalLines(this.source).at(-1)
      const line = last ?? { text: '', positions: [], start: { line: 1, column: 1 } }
      this.report('error', 'missing-user', 'the Formfile declares no USER', 0, 1, 'add at least one, e.g. USER username:dev lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAA..."', undefined, line)
    }
    for (const { scope, word, line } of this.envScopes) {
      if (scope.kind === 'user' && !this.userLines.has(scope.name)) {
        this.report('error', 'unknown-scope-user', `ENV scope user:${scope.name} names no USER of this Formfile`, word.start, word.end, this.users.length ? `declared users: ${this.users.map((u) => u.username).join(', ')}` : 'declare the user with USER username:...', undefined, line)
      }
    }
    this.warnNginxOnPort80()
    const first = this.health[0]
    if (this.healthNone && first) {
      const { word, line } = this.healthNone
      this.report('error', 'healthcheck-none-mixed', 'HEALTHCHECK none turns the checks off, but this Formfile also asks for one', word.start, word.end, 'keep either HEALTHCHECK none or the checks', { ...first.line.positions[first.word.start], message: `the ${describeCheck(first.check)} check` }, line)
    }
    if (this.health.length > MAX_HEALTH_CHECKS) {
      const { word, line } = this.health[MAX_HEALTH_CHECKS]
      this.report('error', 'too-many-healthchecks', `a Formfile may have at most ${MAX_HEALTH_CHECKS} health checks (this is number ${MAX_HEALTH_CHECKS + 1})`, word.start, word.end, 'check the ports that matter; each check is probed on every replica', undefined, line)
    }
    for (const { check, word, line } of this.health) {
      if (this.expose.some((e) => e.protocol === 'tcp' && check.port >= e.port && check.port <= (e.endPort ?? e.port))) continue
      this.report('warning', 'healthcheck-port-not-exposed', `${describeCheck(check)}: port ${check.port} is not EXPOSEd`, word.start, word.end, `add EXPOSE ${check.port} if the service listens there`, undefined, line)
    }
    const copyAll = this.steps.find((s) => s.kind === 'copy' && s.destination === '')
    if (copyAll && copyAll.kind === 'copy') {
      if (this.workdir) copyAll.destination = this.workdir
      else this.diagnostics.push({ severity: 'error', code: 'copy-without-destination', message: 'COPY without arguments copies the build context into WORKDIR, but there is no WORKDIR', file: this.options.file ?? 'Formfile', line: copyAll.line, column: 1, length: 4, text: 'COPY', hint: 'add WORKDIR /app, or write COPY . /app' })
    }
  }
}

/** Why a COPY source is not a path inside the build context, or undefined when it is. */
function contextPathProblem(p: string): string | undefined {
  if (p.startsWith('/')) return `"${p}" is absolute; COPY sources are relative to the build context`
  const parts = p.split('/')
  let depth = 0
  for (const part of parts) {
    if (part === '..') depth--
    else if (part !== '.' && part !== '') depth++
    if (depth < 0) return `"${p}" leaves the build context`
  }
  return undefined
}

function normalizeRelative(p: string): string {
  const out: string[] = []
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') out.pop()
    else out.push(part)
  }
  return out.join('/') || '.'
}

function normalizeAbsolute(p: string): string {
  return '/' + normalizeRelative(p.slice(1)).replace(/^\.$/, '')
}

const USAGE: Record<string, string> = {
  NAME: 'usage: NAME <name>',
  DESCRIPTION: 'usage: DESCRIPTION <text>',
  USER: 'usage: USER username:<name> passwd:<password> [sudo:true] [ssh_authorized_keys:"<key>,<key>"] ...',
  VCPU: 'usage: VCPU <count>, e.g. VCPU 2',
  MEM: 'usage: MEM <megabytes>, e.g. MEM 2048',
  DISK: 'usage: DISK <gigabytes>, e.g. DISK 10',
  GPU: 'usage: GPU <model>[:<count>]',
  WORKDIR: 'usage: WORKDIR <absolute path>',
  COPY: 'usage: COPY <src>... <dst> or COPY ["<src>", "<dst>"]',
  RUN: 'usage: RUN <shell command>',
  INSTALL: 'usage: INSTALL <package>...',
  ENV: 'usage: ENV [--scope=system|user:<name>|service:<name>] KEY=value ...',
  ENTRYPOINT: 'usage: ENTRYPOINT ["cmd", "arg"] or ENTRYPOINT cmd arg',
  EXPOSE: 'usage: EXPOSE <port>[/tcp|/udp] ...',
  HEALTHCHECK: 'usage: HEALTHCHECK [--interval=10s] [--timeout=3s] [--retries=3] [--start-period=30s] tcp <port> | http <path> <port> | none',
}

export function parseFormfile(source: string, options: ParseOptions = {}): ParseResult {
  return new Parser(source, options).parse()
}
