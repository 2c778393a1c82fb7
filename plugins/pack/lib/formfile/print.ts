import { formatHealthDuration } from '../../../node/index.js'
import { quoteTemplate, quoteWord } from './lexer.js'
import type { Formfile, Step } from './types.js'

function step(s: Step, f: Formfile): string {
  switch (s.kind) {
    case 'copy':
      return s.sources.length === 0 && s.destination === f.workdir ? 'COPY' : `COPY ${[...s.sources, s.destination].map(quoteWord).join(' ')}`
    case 'run':
      return s.argv ? `RUN ${JSON.stringify(s.argv)}` : `RUN ${s.command}`
    case 'install':
      return `INSTALL ${s.packages.join(' ')}`
    case 'workdir':
      return `WORKDIR ${quoteWord(s.path)}`
    case 'env': {
      const scope = s.scope.kind === 'system' ? '' : `--scope=${s.scope.kind}:${s.scope.name} `
      return `ENV ${scope}${Object.entries(s.vars)
        .map(([k, v]) => `${k}=${quoteTemplate(v)}`)
        .join(' ')}`
    }
    case 'user': {
      const u = f.users.find((x) => x.username === s.username)!
      const opts = [`username:${u.username}`]
      if (u.passwordHash) opts.push(`passwd:${u.passwordHash}`)
      if (u.sshAuthorizedKeys.length) opts.push(`ssh_authorized_keys:${quoteWord(u.sshAuthorizedKeys.join(','))}`)
      opts.push(`lock_passwd:${u.lockPasswd}`, `sudo:${u.sudo}`, `shell:${u.shell}`, `ssh_pwauth:${u.sshPwauth}`, `disable_root:${u.disableRoot}`, `chpasswd_expire:${u.chpasswdExpire}`)
      if (u.groups.length) opts.push(`groups:${u.groups.join(',')}`)
      return `USER ${opts.join(' \\\n     ')}`
    }
  }
}

/**
 * The normalized Formfile: every default spelled out, passwords as hashes, one instruction per
 * logical line. Parsing it gives back the same Formfile (positions aside).
 */
export function printFormfile(f: Formfile): string {
  const out: string[] = []
  if (!f.nameGenerated) out.push(`NAME ${f.name}`)
  if (f.description !== undefined) out.push(`DESCRIPTION ${quoteWord(f.description)}`)
  out.push(`VCPU ${f.resources.vcpus}`, `MEM ${f.resources.memoryMb}`, `DISK ${f.resources.diskGb}`)
  if (f.resources.gpu) out.push(`GPU ${f.resources.gpu.model}:${f.resources.gpu.count}`)
  out.push('')
  for (const s of f.steps) out.push(step(s, f))
  if (f.entrypoint) {
    out.push('')
    out.push(f.entrypoint.form === 'exec' ? `ENTRYPOINT ${JSON.stringify(f.entrypoint.argv)}` : `ENTRYPOINT ${f.entrypoint.command}`)
  }
  if (f.expose.length) out.push(`EXPOSE ${f.expose.map((p) => `${p.port}${p.endPort ? `-${p.endPort}` : ''}/${p.protocol}`).join(' ')}`)
  if (f.healthchecks?.length === 0) out.push('HEALTHCHECK none')
  for (const c of f.healthchecks ?? []) {
    const opts = `--interval=${formatHealthDuration(c.intervalMs)} --timeout=${formatHealthDuration(c.timeoutMs)} --retries=${c.retries} --start-period=${formatHealthDuration(c.startPeriodMs)}`
    out.push(`HEALTHCHECK ${opts} ${c.kind === 'http' ? `http ${quoteWord(c.path!)}` : 'tcp'} ${c.port}`)
  }
  return out.join('\n') + '\n'
}
