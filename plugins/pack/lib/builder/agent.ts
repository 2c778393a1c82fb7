import type { Formfile, Step } from '../formfile/index.js'
import { entrypointRunsNginx, envFileLines, knownServiceEnv } from '../formfile/index.js'
import { BUILD_INIT } from './base.js'
import { GUEST_AGENT_FILES, GUEST_AGENT_UNITS } from './guest-agent.js'
import { DPKG_PATH_CONF, DPKG_PATH_CONF_TEXT, INITRAMFS_SHIM_DIR, INITRAMFS_SHIM_MARKER, INITRAMFS_SHIM_PATH } from './initramfs.js'
import { BOOT_ACTION_LINE, BOOT_ACTIONS, SHIM_MARKER, SYSTEMCTL_SHIM_PATH } from './systemctl.js'

/**
 * What runs inside a build VM. The agent is PID 1 of the VM (started by the base's build entry
 * from the input disk); it applies one script at a time when the builder asks for it over the
 * control port (ttyS1), and every script is generated here from the Formfile, with each value
 * single-quoted. Everything a script does resolves inside the VM: the host never opens a path
 * of the image or of the context.
 *
 * Disks: vda the build's root (a qcow2 overlay), vdb the input (this agent, the plan, the
 * scripts), vdc the context archive as uploaded, vdd the kernel (at 0) and the initrd (at
 * BOOT_INITRD_OFFSET).
 */

export const BOOT_INITRD_OFFSET = 128 * 2 ** 20
export const BOOT_DISK_BYTES = 640 * 2 ** 20

/** A value for a POSIX shell, single-quoted: nothing in it is ever expanded. */
export function shSingle(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`
}
const q = shSingle

/** The env files of the image; see the loader below for who reads them. */
export const ENV_DIR = 'etc/form/env'

/** The environment a build command sees: nothing of the host leaks into the image. */
export const BUILD_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  DEBIAN_FRONTEND: 'noninteractive',
  TERM: 'dumb',
}
const CLEAN_ENV = `env -i ${Object.entries(BUILD_ENV).map(([k, v]) => `${k}=${q(v)}`).join(' ')}`

/** The agent itself (PID 1 of the build VM). */
export const AGENT = `#!/bin/sh
# The Formation build agent: PID 1 of a throwaway build VM, written by the builder.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
IN=/run/form/in
. "$IN/plan.sh"
off() { sync; echo o > /proc/sysrq-trigger; sleep 30; }
mount -o remount,rw / 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts 2>/dev/null
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs -o nosuid,nodev shm /dev/shm 2>/dev/null
mount -t tmpfs -o nosuid,nodev tmp /tmp 2>/dev/null
hostname form-build 2>/dev/null
exec 3<>/dev/ttyS1 || off
stty -F /dev/ttyS1 raw -echo 2>/dev/null
say() { printf '%s\\n' "$*" >&3; }
hear() { IFS= read -r HEARD <&3 || HEARD=quit; }
# the build's network: QEMU's user-mode stack, confined by the builder on the host
ip link set lo up 2>/dev/null
dev=$(ls /sys/class/net 2>/dev/null | grep -v '^lo$' | head -n 1)
if [ -n "$dev" ] && [ -n "\${NET_IP:-}" ]; then
  ip link set "$dev" up && ip addr add "$NET_IP" dev "$dev" && ip route add default via "$NET_GW"
fi
rm -f /etc/resolv.conf; echo "nameserver \${NET_DNS:-127.0.0.1}" > /etc/resolv.conf
# apt leaves services stopped: there is no init system running
printf '#!/bin/sh\\n# written by the form builder for the duration of the build\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
# and systemctl start/stop/restart/reload are recorded for the booted instance (see systemctl.ts)
cp "$IN/systemctl" /${SYSTEMCTL_SHIM_PATH} && chmod 755 /${SYSTEMCTL_SHIM_PATH}
# and a package script's request to rebuild the initramfs is skipped (minutes under TCG): apt runs
# dpkg with its own PATH (DPkg::Path), where the shim's directory goes first (see initramfs.ts)
mkdir -p /${INITRAMFS_SHIM_DIR} && cp "$IN/update-initramfs" /${INITRAMFS_SHIM_PATH} && chmod 755 /${INITRAMFS_SHIM_PATH}
printf '%s' ${q(DPKG_PATH_CONF_TEXT)} > /${DPKG_PATH_CONF}
# every process a step left behind ends, and what it wrote is on the disk, before the layer is taken
settle() { kill -9 -1 2>/dev/null; sleep 0.1; sync; }
# The image: the build's own filesystem, shrunk to its content. The agent leaves it for a tmpfs
# holding the few tools it needs, unmounts it, checks it, shrinks it (resize2fs -M), discards its
# free blocks (no deleted file's bytes stay behind) and names it; the builder copies the disk out.
TOOLS="sh mount umount e2fsck resize2fs dumpe2fs tune2fs sed sleep sync"
image() {
  k=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
  i=$(ls /boot/initrd.img-* 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$k" ] || [ -z "$i" ]; then say "image-failed the image has no /boot/vmlinuz-* and /boot/initrd.img-*"; return; fi
  ksize=$(stat -L -c %s "$k"); isize=$(stat -L -c %s "$i")
  if [ "$ksize" -gt ${BOOT_INITRD_OFFSET} ] || [ "$isize" -gt ${BOOT_DISK_BYTES - BOOT_INITRD_OFFSET} ]; then say "image-failed the kernel or initrd is too large"; return; fi
  dd if="$k" of=/dev/vdd bs=1M conv=notrunc status=none && dd if="$i" of=/dev/vdd bs=1M seek=${BOOT_INITRD_OFFSET / 2 ** 20} conv=notrunc status=none || { say "image-failed cannot write the kernel"; return; }
  t=/run/form/t
  mkdir -p $t && mount -t tmpfs -o size=128m tools $t || { say "image-failed no tmpfs"; return; }
  for b in $TOOLS; do
    p=$(command -v "$b") || { say "image-failed the image has no $b"; return; }
    for f in "$p" $(ldd "$p" 2>/dev/null | grep -o '/[^ ]*'); do mkdir -p "$t$(dirname "$f")"; cp -L "$f" "$t$f"; done
    mkdir -p $t/bin; [ -e "$t/bin/$b" ] || ln -s "$p" "$t/bin/$b"
  done
  mkdir -p $t/old $t/dev $t/proc
  cat > $t/shrink.sh <<'SHRINK'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount --move /old/dev /dev 2>/dev/null; mount --move /old/proc /proc 2>/dev/null
say() { printf '%s\n' "$*" >&3; }
umount -R /old 2>/dev/null || umount -l /old
sync; sleep 0.2
e2fsck -fy /dev/vda >/dev/null 2>&1
if ! out=$(resize2fs -M /dev/vda 2>&1); then say "image-failed $(printf %s "$out" | tail -n 2 | tr '\n' ' ')"; else
  e2fsck -fy -E discard /dev/vda >/dev/null 2>&1
  tune2fs -L formroot /dev/vda >/dev/null 2>&1
  count=$(dumpe2fs -h /dev/vda 2>/dev/null | sed -n 's/^Block count: *//p')
  size=$(dumpe2fs -h /dev/vda 2>/dev/null | sed -n 's/^Block size: *//p')
  sync
  say "image $((count * size)) $KSIZE $ISIZE"
fi
IFS= read -r x <&3
sync; echo o > /proc/sysrq-trigger; sleep 30
SHRINK
  cd $t && pivot_root . old && KSIZE=$ksize ISIZE=$isize exec /bin/sh /shrink.sh
  say "image-failed cannot leave the root filesystem"
}
say ready
while hear; do
  set -- $HEARD
  case "$1" in
    run) ( . "$IN/$2.sh" ) < /dev/null; rc=$?; settle; say "end $2 $rc" ;;
    image) image ;;
    *) break ;;
  esac
done
off
`

/** Reads the context archive (its exact length: the disk is rounded up to sectors). */
const CONTEXT = 'head -c "$CONTEXT_SIZE" /dev/vdc'

/** Runs a command in the image with the system-scope ENV so far (so `PATH=...:$PATH` works as in a shell). */
const WITH_ENV = `[ -r /${ENV_DIR}/system.sh ] && . /${ENV_DIR}/system.sh; exec "$@"`

/** The uid:gid that owns files copied to $dest: the user whose home holds it, else root. */
function ownerOf(f: Formfile): string {
  const checks = f.users.map(
    (u) => `h=$(getent passwd ${q(u.username)} | cut -d: -f6); if [ -n "$h" ] && [ "$h" != / ] && { [ "$dest" = "$h" ] || case "$dest" in "$h"/*) true ;; *) false ;; esac; }; then owner=$(id -u ${q(u.username)}):$(id -g ${q(u.username)}); fi`,
  )
  return ['owner=0:0', ...checks.reverse()].join('\n')
}

function copyScript(step: Extract<Step, { kind: 'copy' }>, f: Formfile): string {
  const destination = step.destination || f.workdir || '/'
  const out = ['set -e', `dest=${q(destination)}`, ownerOf(f), 'stage=/.form-copy-$$', 'rm -rf "$stage"; mkdir -m 700 "$stage"']
  for (const src of step.sources.length ? step.sources : ['']) {
    const from = src ? `"$stage"/${q(src)}` : '"$stage"'
    out.push(
      `${CONTEXT} | tar -xzf - -C "$stage" --no-same-owner${src ? ` -- ${q(src)}` : ''} 2>/dev/null || true`,
      `if [ ! -e ${from} ] || [ -L ${from} ]; then echo ${q(`COPY source "${src || '.'}" is not in the build context`)} >&2; rm -rf "$stage"; exit 1; fi`,
      `chown -R "$owner" ${from}`,
      `if [ -d ${from} ]; then mkdir -p "$dest" && cp -a ${from}/. "$dest"/`,
      src
        ? `else target=$dest; case "$target" in */) target="$target"${q(src.split('/').pop()!)} ;; esac; mkdir -p "$(dirname "$target")" && cp -a ${from} "$target"; fi`
        : 'fi',
    )
  }
  out.push('rm -rf "$stage"')
  return out.join('\n')
}

function userScript(step: Extract<Step, { kind: 'user' }>, f: Formfile): string {
  const u = f.users.find((x) => x.username === step.username)
  if (!u) return `echo ${q(`USER ${step.username} is not declared`)} >&2; exit 1`
  const n = q(u.username)
  const out = ['set -e']
  for (const g of u.groups) out.push(`getent group ${q(g)} >/dev/null || groupadd ${q(g)}`)
  out.push(`useradd --create-home --user-group --shell ${q(u.shell)}${u.groups.length ? ` --groups ${q(u.groups.join(','))}` : ''} ${n}`)
  if (u.passwordHash) out.push(`usermod --password ${q(u.passwordHash)} ${n}`)
  if (u.lockPasswd) out.push(`usermod --lock ${n}`)
  // An expired password makes PAM demand a new one even on key logins, which would break
  // non-interactive SSH; so it only applies to users who log in with their password.
  if (u.chpasswdExpire && u.passwordHash && !u.lockPasswd && u.sshAuthorizedKeys.length === 0) out.push(`chage --lastday 0 ${n}`)
  out.push(`home=$(getent passwd ${n} | cut -d: -f6)`)
  if (u.sudo) {
    out.push(
      'mkdir -p /etc/sudoers.d',
      `printf '%s\\n' ${q(`# written by form from the Formfile's USER ${u.username} sudo:true`)} ${q(`${u.username} ALL=(ALL) NOPASSWD:ALL`)} > /etc/sudoers.d/90-form-${u.username}`,
      `chmod 440 /etc/sudoers.d/90-form-${u.username}`,
    )
  }
  if (u.sshAuthorizedKeys.length) {
    out.push(
      'mkdir -p "$home/.ssh"',
      `printf '%s\\n' ${u.sshAuthorizedKeys.map(q).join(' ')} > "$home/.ssh/authorized_keys"`,
      'chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"',
      `chown ${n}: "$home/.ssh" "$home/.ssh/authorized_keys"`,
    )
  }
  return out.join('\n')
}

function envScript(step: Extract<Step, { kind: 'env' }>, known: Record<string, string>): string {
  const file =
    step.scope.kind === 'system' ? 'system.sh' : step.scope.kind === 'user' ? `user-${step.scope.name}.sh` : `service-${step.scope.name}.env`
  const mode = step.scope.kind === 'system' ? '644' : '600'
  return ['set -e', `if [ -L /${ENV_DIR} ] || { [ -e /${ENV_DIR} ] && [ ! -d /${ENV_DIR} ]; }; then rm -f /${ENV_DIR}; fi`, `mkdir -p /${ENV_DIR}`, `printf '%s' ${q(envFileLines(step, known))} >> /${ENV_DIR}/${file}`, `chmod ${mode} /${ENV_DIR}/${file}`].join('\n')
}

/** How INSTALL runs apt-get (the packages follow); bench/builder-install.ts times the same command. */
export const APT_INSTALL = 'apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold'

/** The script that applies step `index` inside the VM. `workdir`: the last WORKDIR before it. */
export function stepScript(index: number, f: Formfile, workdir: string): string {
  const step = f.steps[index]
  switch (step.kind) {
    case 'run': {
      const argv = step.argv ?? ['/bin/sh', '-c', step.command]
      return `mkdir -p ${q(workdir)} && cd ${q(workdir)} || exit 1\nexec ${CLEAN_ENV} /bin/sh -c ${q(WITH_ENV)} form-run ${argv.map(q).join(' ')}`
    }
    case 'install':
      return [
        'set -e',
        `export ${Object.entries(BUILD_ENV).map(([k, v]) => `${k}=${q(v)}`).join(' ')}`,
        'ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -q',
        `${APT_INSTALL} ${step.packages.map(q).join(' ')}`,
      ].join('\n')
    case 'workdir':
      return `mkdir -p ${q(step.path)}`
    case 'copy':
      return copyScript(step, f)
    case 'user':
      return userScript(step, f)
    case 'env':
      return envScript(step, step.scope.kind === 'service' ? knownServiceEnv(f.steps, index, step.scope.name) : {})
  }
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

function sshdConfig(f: Formfile): string {
  const lines = ["# written by form from the Formfile's USER options", 'PubkeyAuthentication yes']
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
  const command = ep.form === 'shell' ? `exec /bin/sh -c ${q(ep.command ?? ep.argv.join(' '))}` : `exec ${ep.argv.map(q).join(' ')}`
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

/**
 * What the image gets after the Formfile's steps, as one script: the environment loaders, the SSH
 * policy of its users, the entrypoint as a systemd service, the guest side of the image contract,
 * and the build scaffolding removed. Derived from the whole Formfile, it runs on a throwaway top
 * layer and is never cached.
 */
export function finalizeScript(f: Formfile): string {
  const put = (path: string, mode: string, content: string) => `put ${q(path)} ${mode} ${q(content)}`
  const enable = (unit: string) =>
    `mkdir -p /etc/systemd/system/multi-user.target.wants && rm -f /etc/systemd/system/multi-user.target.wants/${unit} && ln -s /etc/systemd/system/${unit} /etc/systemd/system/multi-user.target.wants/${unit}`
  const hook = '[ -r /etc/profile.d/form-env.sh ] && . /etc/profile.d/form-env.sh'
  const out = [
    'set -e',
    `put() { mkdir -p "$(dirname "$1")"; rm -f "$1"; printf '%s' "$3" > "$1"; chmod "$2" "$1"; }`,
    put('/etc/profile.d/form-env.sh', '644', LOADER),
    // Non-login shells (`ssh host command`) read /etc/bash.bashrc, whose first line returns early
    // when not interactive; the loader goes before it.
    `if [ "$(head -n 1 /etc/bash.bashrc 2>/dev/null)" != ${q(hook)} ]; then { printf '%s\\n' ${q(hook)}; cat /etc/bash.bashrc 2>/dev/null || true; } > /etc/bash.bashrc.form; mv /etc/bash.bashrc.form /etc/bash.bashrc; fi`,
  ]
  for (const u of f.users) out.push(`if id ${q(u.username)} >/dev/null 2>&1 && [ -f /${ENV_DIR}/user-${u.username}.sh ]; then chown ${q(u.username)}: /${ENV_DIR}/user-${u.username}.sh; chmod 600 /${ENV_DIR}/user-${u.username}.sh; fi`)
  if (f.users.length) out.push(put('/etc/ssh/sshd_config.d/50-form.conf', '644', sshdConfig(f)))
  // service-scoped ENV for units other than the entrypoint (e.g. a package's nginx.service)
  for (const name of Object.keys(f.env.services)) {
    if (name !== f.name) out.push(put(`/etc/systemd/system/${name}.service.d/form-env.conf`, '644', `[Service]\nEnvironmentFile=-/${ENV_DIR}/service-${name}.env\n`))
  }
  if (f.entrypoint) {
    out.push(put('/usr/local/sbin/form-entrypoint', '755', entrypointScript(f)))
    out.push(put(`/etc/systemd/system/${entrypointUnit(f)}`, '644', entrypointUnitFile(f)))
    out.push(enable(entrypointUnit(f)))
  }
  const imageJson = JSON.stringify({ name: f.name, expose: f.expose, users: f.users.map((u) => u.username), entrypoint: f.entrypoint ? entrypointUnit(f) : undefined }, null, 2) + '\n'
  out.push(put('/etc/form/image.json', '644', imageJson))
  for (const [rel, file] of Object.entries(GUEST_AGENT_FILES)) out.push(put(`/${rel}`, file.mode.toString(8), file.content))
  out.push(...GUEST_AGENT_UNITS.map(enable))
  // what the build asked of systemctl: the instance does it after the units it names have started
  out.push(
    `if [ -s /${BOOT_ACTIONS} ]; then units=$(grep -E ${q(BOOT_ACTION_LINE)} /${BOOT_ACTIONS} | cut -d ' ' -f 2 | sort -u | tr '\\n' ' '); ` +
      `mkdir -p /etc/systemd/system/form-boot-actions.service.d; printf '[Unit]\\nAfter=%s\\n' "$units" > /etc/systemd/system/form-boot-actions.service.d/after.conf; fi`,
    `if grep -qF ${q(SHIM_MARKER)} /${SYSTEMCTL_SHIM_PATH} 2>/dev/null; then rm -f /${SYSTEMCTL_SHIM_PATH}; fi`,
    `if grep -qF ${q(INITRAMFS_SHIM_MARKER)} /${INITRAMFS_SHIM_PATH} 2>/dev/null; then rm -f /${INITRAMFS_SHIM_PATH}; rmdir /${INITRAMFS_SHIM_DIR} 2>/dev/null || true; fi`,
    `if grep -qF ${q(DPKG_PATH_CONF_TEXT.split('\n')[0])} /${DPKG_PATH_CONF} 2>/dev/null; then rm -f /${DPKG_PATH_CONF}; fi`,
  )
  // the Formfile's ENTRYPOINT is nginx: the base's own nginx.service would take port 80 before it
  if (entrypointRunsNginx(f.entrypoint)) out.push('rm -f /etc/systemd/system/multi-user.target.wants/nginx.service')
  if (f.users.length) {
    // a broken sshd config would lock everyone out of every replica: refuse it now
    out.push(`if [ -x /usr/sbin/sshd ]; then mkdir -p /run/sshd; if ! /usr/sbin/sshd -t; then echo "FORM-SSHD-CONFIG: the image's sshd rejects its configuration" >&2; exit 1; fi; fi`)
  }
  // replicas never share SSH host keys: every one makes its own at first boot
  out.push(
    'rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub',
    'apt-get clean; rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*',
    `rm -f /usr/sbin/policy-rc.d /${BUILD_INIT}`,
    "rm -f /etc/resolv.conf; printf '# written at boot from form.dns\\n' > /etc/resolv.conf",
  )
  return out.join('\n') + '\n'
}

/** plan.sh: the values the agent needs, as shell assignments. */
export function planScript(o: { contextSize: number; net?: { ip: string; gw: string; dns: string } }): string {
  const lines = [`CONTEXT_SIZE=${o.contextSize}`]
  if (o.net) lines.push(`NET_IP=${q(o.net.ip)}`, `NET_GW=${q(o.net.gw)}`, `NET_DNS=${q(o.net.dns)}`)
  return lines.join('\n') + '\n'
}
