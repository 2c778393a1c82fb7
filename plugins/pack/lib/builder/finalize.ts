import { chmod, chown, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Formfile } from '../formfile/index.js'
import { runInRoot } from './chroot.js'
import { ENV_DIR, imageUser, shSingle } from './steps.js'
import { FormError } from '../../../../core/errors.js'

/**
 * What the image gets after the Formfile's steps: the environment loaders, the SSH policy of its
 * users, the entrypoint as a systemd service, and the build-time scaffolding removed. Cheap and
 * derived from the whole Formfile, so it is never cached.
 */

/** Makes `apt-get install` in the chroot leave services stopped (there is no init running). */
export async function prepareRoot(root: string): Promise<void> {
  const policy = join(root, 'usr/sbin/policy-rc.d')
  await writeFile(policy, '#!/bin/sh\n# written by the form builder for the duration of the build\nexit 101\n', { mode: 0o755 })
  await chmod(policy, 0o755)
  // name resolution for apt during the build; the guest writes its own at boot (form.dns)
  await rm(join(root, 'etc/resolv.conf'), { force: true })
  await writeFile(join(root, 'etc/resolv.conf'), await readFile('/etc/resolv.conf').catch(() => 'nameserver 127.0.0.1\n'))
}

/** The unit name of the entrypoint: the Formfile's NAME, so `ENV --scope=service:<NAME>` reaches it. */
export const entrypointUnit = (f: Formfile) => `${f.name}.service`

const LOADER = `# written by form: the Formfile's ENV (system scope, then the user's own scope)
if [ -z "\${FORM_ENV_LOADED:-}" ]; then
  FORM_ENV_LOADED=1
  export FORM_ENV_LOADED
  [ -r /${ENV_DIR}/system.sh ] && . /${ENV_DIR}/system.sh
  form_user=$(id -un 2>/dev/null || true)
  [ -n "$form_user" ] && [ -r "/${ENV_DIR}/user-$form_user.sh" ] && . "/${ENV_DIR}/user-$form_user.sh"
  unset form_user
fi
`

async function writeEnvLoaders(root: string, f: Formfile): Promise<void> {
  await mkdir(join(root, 'etc/profile.d'), { recursive: true })
  await writeFile(join(root, 'etc/profile.d/form-env.sh'), LOADER, { mode: 0o644 })
  // Non-login shells (`ssh host command`) read /etc/bash.bashrc, whose first line returns early
  // when not interactive; the loader goes before it.
  const bashrc = join(root, 'etc/bash.bashrc')
  const current = await readFile(bashrc, 'utf8').catch(() => '')
  const hook = '[ -r /etc/profile.d/form-env.sh ] && . /etc/profile.d/form-env.sh\n'
  if (!current.startsWith(hook)) await writeFile(bashrc, hook + current)
  for (const u of f.users) {
    const file = join(root, ENV_DIR, `user-${u.username}.sh`)
    const found = await imageUser(root, u.username)
    if (!found) continue
    await chown(file, found.uid, found.gid).catch(() => {})
    await chmod(file, 0o600).catch(() => {})
  }
}

function sshdConfig(f: Formfile): string {
  const lines = ['# written by form from the Formfile\'s USER options', 'PubkeyAuthentication yes']
  const rootAllowed = f.users.length > 0 && f.users.every((u) => !u.disableRoot)
  lines.push(`PermitRootLogin ${rootAllowed ? 'prohibit-password' : 'no'}`)
  const pw = f.users.filter((u) => u.sshPwauth && u.passwordHash && !u.lockPasswd)
  lines.push('PasswordAuthentication no')
  // Per-user exceptions come last: a Match block runs to the end of the file that holds it.
  for (const u of pw) lines.push(`Match User ${u.username}`, '  PasswordAuthentication yes')
  return lines.join('\n') + '\n'
}

function entrypointScript(f: Formfile): string {
  const ep = f.entrypoint!
  const command = ep.form === 'shell' ? `exec /bin/sh -c ${shSingle(ep.command ?? ep.argv.join(' '))}` : `exec ${ep.argv.map(shSingle).join(' ')}`
  return `#!/bin/sh
# written by form: the Formfile's ENTRYPOINT, with the system-scope ENV
[ -r /${ENV_DIR}/system.sh ] && . /${ENV_DIR}/system.sh
${command}
`
}

function entrypointUnitFile(f: Formfile): string {
  return `[Unit]
Description=${f.name}: the Formfile's ENTRYPOINT
After=network-online.target form-guest.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/form-entrypoint
WorkingDirectory=${f.workdir ?? '/'}
EnvironmentFile=-/${ENV_DIR}/service-${f.name}.env
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`
}

async function enable(root: string, unit: string): Promise<void> {
  const wants = join(root, 'etc/systemd/system/multi-user.target.wants')
  await mkdir(wants, { recursive: true })
  await rm(join(wants, unit), { force: true })
  await symlink(`/etc/systemd/system/${unit}`, join(wants, unit))
}

export async function finalizeRoot(root: string, f: Formfile, signal?: AbortSignal): Promise<void> {
  await writeEnvLoaders(root, f)
  if (f.users.length) {
    const file = join(root, 'etc/ssh/sshd_config.d/50-form.conf')
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, sshdConfig(f), { mode: 0o644 })
  }
  // service-scoped ENV for units other than the entrypoint (e.g. a package's nginx.service)
  for (const name of Object.keys(f.env.services)) {
    if (name === f.name) continue
    const dropIn = join(root, 'etc/systemd/system', `${name}.service.d`, 'form-env.conf')
    await mkdir(dirname(dropIn), { recursive: true })
    await writeFile(dropIn, `[Service]\nEnvironmentFile=-/${ENV_DIR}/service-${name}.env\n`)
  }
  if (f.entrypoint) {
    await mkdir(join(root, 'usr/local/sbin'), { recursive: true })
    await writeFile(join(root, 'usr/local/sbin/form-entrypoint'), entrypointScript(f), { mode: 0o755 })
    await chmod(join(root, 'usr/local/sbin/form-entrypoint'), 0o755)
    await writeFile(join(root, 'etc/systemd/system', entrypointUnit(f)), entrypointUnitFile(f), { mode: 0o644 })
    await enable(root, entrypointUnit(f))
  }
  await mkdir(join(root, 'etc/form'), { recursive: true })
  await writeFile(
    join(root, 'etc/form/image.json'),
    JSON.stringify({ name: f.name, expose: f.expose, users: f.users.map((u) => u.username), entrypoint: f.entrypoint ? entrypointUnit(f) : undefined }, null, 2) + '\n',
  )
  if (f.users.length) {
    // a broken sshd config would lock everyone out of every replica: refuse it now
    const r = await runInRoot(root, ['/bin/sh', '-c', '[ ! -x /usr/sbin/sshd ] || { mkdir -p /run/sshd && /usr/sbin/sshd -t; }'], { signal })
    if (r.exitCode !== 0) throw new FormError('BUILD_SSHD_CONFIG', `the image's sshd rejects its configuration: ${r.tail.trim().slice(-500)}`)
  }
  const clean = await runInRoot(root, ['/bin/sh', '-c', 'apt-get clean; rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*'], { signal })
  if (clean.exitCode !== 0) throw new FormError('BUILD_FINALIZE_FAILED', `cleaning the image failed: ${clean.tail.trim().slice(-500)}`)
  await rm(join(root, 'usr/sbin/policy-rc.d'), { force: true })
  await rm(join(root, 'etc/resolv.conf'), { force: true })
  await writeFile(join(root, 'etc/resolv.conf'), '# written at boot from form.dns\n')
}
