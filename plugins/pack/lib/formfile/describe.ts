import type { Step } from './types.js'

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
