import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/**
 * The guest side of the image contract with the hypervisor manager (plugins/node): the node boots
 * the image with `form.ip=<ip>/<prefix> form.gw=<ip> form.hostname=<name> form.dns=<ip>` on the
 * kernel command line, and counts the instance as running once `FORM-READY` appears on ttyS0.
 * Every image carries these files, whatever its Formfile says.
 */

const SCRIPT = `#!/bin/sh
# Configures the network from the kernel command line (written by the Formation node).
# FORM_GUEST_CMDLINE and FORM_GUEST_ROOT only exist so the script can be tested outside a guest.
set -u
root="\${FORM_GUEST_ROOT:-}"
ip= gw= host= dns=
for arg in $(cat "\${FORM_GUEST_CMDLINE:-/proc/cmdline}"); do
  case "$arg" in
    form.ip=*) ip="\${arg#form.ip=}" ;;
    form.gw=*) gw="\${arg#form.gw=}" ;;
    form.hostname=*) host="\${arg#form.hostname=}" ;;
    form.dns=*) dns="\${arg#form.dns=}" ;;
  esac
done
ip link set lo up
dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
if [ -n "$dev" ] && [ -n "$ip" ]; then
  ip link set "$dev" up
  ip addr replace "$ip" dev "$dev"
  [ -n "$gw" ] && ip route replace default via "$gw" dev "$dev"
fi
if [ -n "$host" ]; then
  echo "$host" > "$root/etc/hostname"
  hostname "$host" 2>/dev/null || true
fi
[ -n "$dns" ] && echo "nameserver $dns" > "$root/etc/resolv.conf"
# every replica gets its own SSH host keys
if command -v ssh-keygen >/dev/null && ! ls "$root"/etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
  if [ -n "$root" ]; then ssh-keygen -A -f "$root"; else ssh-keygen -A; fi
fi
exit 0
`

const GUEST_UNIT = `[Unit]
Description=Formation guest network and identity (from the kernel command line)
DefaultDependencies=no
After=local-fs.target
Before=network.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/form-guest

[Install]
WantedBy=multi-user.target
`

const READY_UNIT = `[Unit]
Description=Tell the Formation node that this instance has booted
After=multi-user.target ssh.service form-guest.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo FORM-READY > /dev/ttyS0'

[Install]
WantedBy=multi-user.target
`

/** The agent's files, relative to the root filesystem. */
export const GUEST_AGENT_FILES: Record<string, { content: string; mode: number }> = {
  'usr/local/sbin/form-guest': { content: SCRIPT, mode: 0o755 },
  'etc/systemd/system/form-guest.service': { content: GUEST_UNIT, mode: 0o644 },
  'etc/systemd/system/form-ready.service': { content: READY_UNIT, mode: 0o644 },
}

/**
 * Writes the agent into a root filesystem and enables its units the way `systemctl enable` does
 * (a symlink in multi-user.target.wants), which needs no running systemd. Build-time SSH host keys
 * are removed so replicas never share them.
 */
export async function installGuestAgent(root: string): Promise<void> {
  for (const [rel, f] of Object.entries(GUEST_AGENT_FILES)) {
    const file = join(root, rel)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, f.content)
    await chmod(file, f.mode)
  }
  const wants = join(root, 'etc/systemd/system/multi-user.target.wants')
  await mkdir(wants, { recursive: true })
  for (const unit of ['form-guest.service', 'form-ready.service']) {
    await rm(join(wants, unit), { force: true })
    await symlink(`/etc/systemd/system/${unit}`, join(wants, unit))
  }
  for (const kind of ['rsa', 'ecdsa', 'ed25519', 'dsa']) {
    for (const suffix of ['', '.pub']) await rm(join(root, `etc/ssh/ssh_host_${kind}_key${suffix}`), { force: true })
  }
}
