import { describeCheck, formatHealthDuration } from '../../../node/index.js'
import { healthChecks } from './parser.js'
import type { Formfile, Step } from './types.js'

/** One line per build step, for dry-run listings and build progress (ENV values are never shown). */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'copy':
      return `COPY ${s.sources.length ? s.sources.join(' ') : '(whole context)'} -> ${s.destination}`
    case 'run':
      return `RUN ${s.command}`
    case 'install':
      return `INSTALL ${s.packages.join(' ')}`
    case 'workdir':
      return `WORKDIR ${s.path}`
    case 'user':
      return `USER ${s.username}`
    case 'env':
      return `ENV (${s.scope.kind === 'system' ? 'system' : `${s.scope.kind}:${s.scope.name}`}) ${Object.keys(s.vars).join(', ')}`
  }
}

/** What the hosting node will probe on every replica, one line per check, for dry-run listings. */
export function describeHealth(f: Pick<Formfile, 'healthchecks' | 'expose'>): string[] {
  const checks = healthChecks(f)
  if (!checks.length) return [f.healthchecks ? '(none: HEALTHCHECK none)' : '(none: nothing EXPOSEd over TCP)']
  const d = formatHealthDuration
  return checks.map((c) => `${describeCheck(c)} every ${d(c.intervalMs)} (timeout ${d(c.timeoutMs)}, unhealthy after ${c.retries} failures, start period ${d(c.startPeriodMs)})${f.healthchecks ? '' : ' (default for EXPOSE)'}`)
}
