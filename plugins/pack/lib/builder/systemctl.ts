/**
 * `systemctl` at build time. A build VM runs no init system (the build agent is PID 1), so the
 * seed's `RUN sudo systemctl restart nginx` would fail ("System has not been booted with systemd").
 * During a build, /usr/local/sbin/systemctl (first on PATH and on sudo's secure_path) records what
 * would start, stop or reload a service in BOOT_ACTIONS, and the instance does it once its own
 * services are up (form-boot-actions.service, before FORM-READY). Enabling and disabling only change
 * files, so they go to the real systemctl and hold from the first boot. The builder removes the shim
 * from every image.
 */

export const SYSTEMCTL_SHIM_PATH = 'usr/local/sbin/systemctl'
export const BOOT_ACTIONS = 'etc/form/boot-actions'

/** The verbs recorded for the booted instance; the replay accepts only these. */
const ACTIONS = ['start', 'stop', 'restart', 'reload', 'try-restart', 'reload-or-restart', 'try-reload-or-restart']
const ACTION_CASE = ACTIONS.join('|')
/** A unit name as systemd spells it (instances with @, slices with -); anything else is refused, never run. */
const BAD_UNIT_CASE = `''|-*|*[!A-Za-z0-9@._:-]*`

/** Marks the shim, so the builder removes it and never a `systemctl` of the Formfile's own. */
export const SHIM_MARKER = '# form-systemctl: written by the form builder for the duration of a build'

export const SYSTEMCTL_SHIM = `#!/bin/sh
${SHIM_MARKER}
# A build VM runs no init system: what would start, stop or reload a service is recorded and done by
# the instance when it boots; enable/disable/mask change files and go to systemctl itself.
real=\${FORM_SYSTEMCTL_REAL:-/usr/bin/systemctl}
log=\${FORM_BOOT_ACTIONS:-/${BOOT_ACTIONS}}
verb= now= opts= units=
for a in "$@"; do
  case "$a" in
    --now) now=1 ;;
    -*) opts="$opts $a" ;;
    *) if [ -z "$verb" ]; then verb=$a; else units="$units $a"; fi ;;
  esac
done
unit_of() { case "$1" in *.*) printf '%s' "$1" ;; *) printf '%s.service' "$1" ;; esac; }
record() {
  action=$1; shift
  [ $# -gt 0 ] || { echo "systemctl (form build): $action needs a unit name" >&2; exit 1; }
  for u in "$@"; do
    case "$u" in ${BAD_UNIT_CASE}) echo "systemctl (form build): '$u' is not a unit name" >&2; exit 1 ;; esac
  done
  mkdir -p "$(dirname "$log")"
  for u in "$@"; do printf '%s %s\\n' "$action" "$(unit_of "$u")" >> "$log"; done
  echo "systemctl (form build): '$action $*' recorded: a build runs no services, the instance does it when it boots" >&2
}
case "$verb" in
  ${ACTION_CASE}) record "$verb" $units ;;
  enable|disable|reenable|mask|unmask|preset)
    "$real" $opts "$verb" $units || exit $?
    if [ -n "$now" ]; then
      case "$verb" in enable|reenable|unmask) record start $units ;; disable|mask) record stop $units ;; esac
    fi ;;
  daemon-reload|daemon-reexec|reset-failed) exit 0 ;;
  is-active|is-failed|status)
    echo "systemctl (form build): no service runs during a build; '$verb' means something only in the booted instance" >&2
    exit 3 ;;
  *) exec "$real" "$@" ;;
esac
`

/** What a recorded line must look like to be replayed (for grep -E): an action and a unit name. */
export const BOOT_ACTION_LINE = `^(${ACTION_CASE}) [A-Za-z0-9@._:][A-Za-z0-9@._:-]*$`

/**
 * Runs in the instance. Each unit ends as the build left it: its last recorded action is done, the
 * units in the order of those last actions (`restart nginx` then `stop nginx` leaves nginx stopped,
 * without starting it first). A line that is not an action on a unit is logged on the console and
 * skipped; a failed action is logged and never holds the boot (FORM-READY waits for this).
 */
export const BOOT_ACTIONS_SCRIPT = `#!/bin/sh
file=\${FORM_BOOT_ACTIONS:-/${BOOT_ACTIONS}}
systemctl=\${FORM_SYSTEMCTL:-systemctl}
line='${BOOT_ACTION_LINE}'
grep -vE "$line" "$file" | while IFS= read -r bad; do
  [ -z "$bad" ] || echo "form-boot-actions: skipped '$bad': not an action on a unit"
done
grep -E "$line" "$file" | awk '{ last[$2] = NR " " $0 } END { for (u in last) print last[u] }' | sort -n | while read -r n action unit; do
  if "$systemctl" "$action" "$unit"; then echo "form-boot-actions: $action $unit (asked for at build time)"; else echo "form-boot-actions: $action $unit failed"; fi
done
exit 0
`

export const BOOT_ACTIONS_UNIT = `[Unit]
Description=Do what the build asked of systemctl (start, stop, restart, reload)
ConditionFileNotEmpty=/${BOOT_ACTIONS}
Before=form-ready.service
# After= the units it acts on: a drop-in the builder writes from the recorded actions

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/form-boot-actions
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`
