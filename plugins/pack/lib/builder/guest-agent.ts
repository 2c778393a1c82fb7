import { BOOT_ACTIONS_SCRIPT, BOOT_ACTIONS_UNIT } from './systemctl.js'

/**
 * The guest side of the image contract with the hypervisor manager (plugins/node): the node boots
 * the image with `form.ip=<ip>/<prefix> form.gw=<ip> form.hostname=<name> form.dns=<ip>` on the
 * kernel command line, and counts the instance as running once `FORM-READY` appears on ttyS0.
 * Every image carries these files, whatever its Formfile says.
 */

const SCRIPT = `#!/bin/sh
# Grows the root filesystem to the whole disk and configures the network from the kernel command
# line (written by the Formation node). Nothing here may stop the boot: every step logs and goes on.
# FORM_GUEST_CMDLINE, FORM_GUEST_ROOT and FORM_GUEST_ROOTDEV only exist so the script can be tested
# outside a guest. With FORM_GUEST_ROOT set, the running system's root is never grown: only
# FORM_GUEST_ROOTDEV, an image file, is (offline, as resize2fs does for an unmounted filesystem).
set -u
root="\${FORM_GUEST_ROOT:-}"
log() { echo "form-guest: $*"; }
ip= gw= host= dns= rootarg=
for arg in $(cat "\${FORM_GUEST_CMDLINE:-/proc/cmdline}"); do
  case "$arg" in
    root=*) rootarg="\${arg#root=}" ;;
    form.ip=*) ip="\${arg#form.ip=}" ;;
    form.gw=*) gw="\${arg#form.gw=}" ;;
    form.hostname=*) host="\${arg#form.hostname=}" ;;
    form.dns=*) dns="\${arg#form.dns=}" ;;
  esac
done

# The image's ext4 filesystem is only as large as its files; the node gives the instance a disk of
# the Formfile's DISK (ext4 directly on /dev/vda, no partition table). resize2fs grows a mounted
# ext4 filesystem online.
fs_bytes() {
  dumpe2fs -h "$1" 2>/dev/null | awk -F: '
    /^Filesystem features:/ { ext4 = ($2 ~ /(^| )extent( |$)/) }
    /^Block count:/ { count = $2 + 0 }
    /^Block size:/ { size = $2 + 0 }
    END { if (ext4 && count && size) printf "%.0f\\n", count * size }'
}
grow_root() {
  if [ -n "$root" ]; then
    dev="\${FORM_GUEST_ROOTDEV:-}"
    [ -n "$dev" ] || return 0
    [ -f "$dev" ] || { log "$dev is not an image file: root filesystem not grown"; return 0; }
    dev_bytes=$(stat -c %s "$dev")
  else
    # the device mounted at / and its type, from the kernel (the last mount on / wins)
    set -- $(awk '$2 == "/" { d = $1; t = $3 } END { print d, t }' /proc/self/mounts)
    dev="\${1:-}" type="\${2:-}"
    if [ "$type" != ext4 ]; then log "the root filesystem is \${type:-unknown}, not ext4: not grown"; return 0; fi
    # /dev/root: the kernel mounted root= itself
    [ -b "$dev" ] || dev="$rootarg"
    case "$dev" in UUID=*|LABEL=*|PARTUUID=*) dev=$(findfs "$dev" 2>/dev/null) ;; esac
    if [ ! -b "$dev" ]; then log "the root device \${dev:-?} is not a block device: not grown"; return 0; fi
    dev_bytes=$(blockdev --getsize64 "$dev")
  fi
  before=$(fs_bytes "$dev")
  if [ -z "$before" ] || [ -z "$dev_bytes" ]; then log "no ext4 filesystem on $dev: not grown"; return 0; fi
  if [ $((dev_bytes - before)) -lt 1048576 ]; then log "the root filesystem fills $dev ($((before / 1048576)) MiB)"; return 0; fi
  if out=$(resize2fs "$dev" 2>&1); then
    after=$(fs_bytes "$dev")
    log "grew the root filesystem on $dev from $((before / 1048576)) MiB to $((\${after:-0} / 1048576)) MiB (disk $((dev_bytes / 1048576)) MiB)"
  else
    log "resize2fs $dev failed, the root filesystem stays at $((before / 1048576)) MiB: $(echo "$out" | tail -n 3 | tr '\\n' ' ')"
  fi
}
# a subshell: a failure (even an unset variable) ends only the growing, never the rest
( grow_root ) || log "growing the root filesystem failed"

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
  # Debian's way to make the name resolve without DNS (sudo looks it up)
  hosts="$root/etc/hosts"
  grep -v '^127\.0\.1\.1[[:space:]]' "$hosts" 2>/dev/null > "$hosts.form" || true
  echo "127.0.1.1 $host" >> "$hosts.form"
  mv "$hosts.form" "$hosts"
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
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

const READY_UNIT = `[Unit]
Description=Tell the Formation node that this instance has booted
After=multi-user.target ssh.service form-guest.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/form-ready

[Install]
WantedBy=multi-user.target
`

/**
 * The node stops an instance by pressing the ACPI power button (QMP system_powerdown). Debian
 * leaves that button to systemd-logind, which cannot run without D-Bus, and images have no D-Bus
 * (nor acpid): the button went unheard and every stop ended in a hard kill and a replayed ext4
 * journal. This reads the button's evdev device itself and asks systemd for a clean poweroff.
 * Perl because perl-base is essential in every Debian image and reads binary input events;
 * FORM_POWER_SYSFS, FORM_POWER_DEV and FORM_POWER_COMMAND only exist to test it outside a guest.
 */
const POWER_BUTTON_SCRIPT = `#!/usr/bin/perl
use strict;
use warnings;
$| = 1;
my $sys = $ENV{FORM_POWER_SYSFS} // '/sys/class/input';
my $dev = $ENV{FORM_POWER_DEV} // '/dev/input';
my @poweroff = defined $ENV{FORM_POWER_COMMAND} ? ($ENV{FORM_POWER_COMMAND}) : ('systemctl', 'poweroff');
sub log_line { print "form-power-button: @_\n" }
# the input devices the kernel names "Power Button" (the ACPI fixed button, and a PNP0C0C one)
sub buttons {
  my @found;
  for my $name (glob("$sys/event*/device/name")) {
    open(my $f, '<', $name) or next;
    my $n = <$f> // '';
    chomp $n;
    push @found, "$dev/$1" if $n eq 'Power Button' && $name =~ m{/(event[0-9]+)/device/name$};
  }
  return @found;
}
my @paths = buttons();
if (!@paths && !defined $ENV{FORM_POWER_SYSFS}) {
  # udev loads them on its own; this only covers a guest that booted without it
  system('modprobe', '-q', $_) for qw(button evdev);
  system('udevadm', 'settle', '--timeout=10');
  @paths = buttons();
}
if (!@paths) { log_line('no ACPI power button in this guest: the node will have to force stops'); exit 0 }
my ($watch, %open) = ('');
for my $p (@paths) {
  my $f;
  unless (open($f, '<:raw', $p)) { log_line("cannot open $p: $!"); next }
  vec($watch, fileno($f), 1) = 1;
  $open{fileno($f)} = $f;
}
exit 1 unless %open;
log_line("watching @paths");
while (%open) {
  my $ready = select(my $out = $watch, undef, undef, undef);
  next if $ready <= 0;
  for my $fd (keys %open) {
    next unless vec($out, $fd, 1);
    my $got = sysread($open{$fd}, my $buf, 24 * 64);
    if (!$got) { vec($watch, $fd, 1) = 0; delete $open{$fd}; next }
    # struct input_event on x86_64: 16 bytes of time, type (u16), code (u16), value (s32)
    for (my $o = 0; $o + 24 <= $got; $o += 24) {
      my ($type, $code, $value) = unpack('x16 S S l', substr($buf, $o, 24));
      next unless $type == 1 && $code == 116 && $value == 1; # EV_KEY, KEY_POWER, pressed
      log_line('the power button was pressed: powering off');
      exec(@poweroff) or die "form-power-button: cannot run @poweroff: $!\n";
    }
  }
}
`

const POWER_BUTTON_UNIT = `[Unit]
Description=Power off when the Formation node presses the ACPI power button
# early, so that a stop during a slow boot is heard too
DefaultDependencies=no
After=systemd-udev-trigger.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=/usr/local/sbin/form-power-button
Restart=on-failure
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

/**
 * Tells the node, on the console only it reads, the SSH host keys this replica made at its first
 * boot (public halves), then that it is ready. The console is the one path between guest and node
 * no one else can write to: the node puts the keys in the observed record, and \`form manage ssh\`
 * trusts them (strict host key checking on the first connection).
 */
const READY_SCRIPT = `#!/bin/sh
# each on a line of its own: the serial getty may have printed its login prompt (no newline) just before
for f in /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_rsa_key.pub; do
  [ -f "$f" ] && printf '\\r\\nFORM-HOSTKEY %s\\r\\n' "$(cut -d ' ' -f 1,2 "$f")" > /dev/ttyS0
done
printf '\\r\\nFORM-READY\\r\\n' > /dev/ttyS0
exit 0
`

/** The agent's files, relative to the root filesystem. */
export const GUEST_AGENT_FILES: Record<string, { content: string; mode: number }> = {
  'usr/local/sbin/form-guest': { content: SCRIPT, mode: 0o755 },
  'etc/systemd/system/form-guest.service': { content: GUEST_UNIT, mode: 0o644 },
  'etc/systemd/system/form-ready.service': { content: READY_UNIT, mode: 0o644 },
  'usr/local/sbin/form-power-button': { content: POWER_BUTTON_SCRIPT, mode: 0o755 },
  'etc/systemd/system/form-power-button.service': { content: POWER_BUTTON_UNIT, mode: 0o644 },
  'usr/local/sbin/form-ready': { content: READY_SCRIPT, mode: 0o755 },
  'usr/local/sbin/form-boot-actions': { content: BOOT_ACTIONS_SCRIPT, mode: 0o755 },
  'etc/systemd/system/form-boot-actions.service': { content: BOOT_ACTIONS_UNIT, mode: 0o644 },
}

/** The agent's units, enabled in every image. */
export const GUEST_AGENT_UNITS = ['form-guest.service', 'form-ready.service', 'form-power-button.service', 'form-boot-actions.service']
