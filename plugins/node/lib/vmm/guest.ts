import { createHash } from 'node:crypto'
import type { Resources, StopReport } from '../../../instances/index.js'

/** How this node names, addresses and admits the VM of an instance (the instance domain itself: plugins/instances). */

/** What a hypervisor's shutdown outcome tells the owner; undefined when there was no VM to stop. */
export function stopReport(outcome: 'powered-off' | 'quit' | 'killed' | 'not-running', ms: number, timeoutMs: number): StopReport | undefined {
  if (outcome === 'not-running') return undefined
  if (outcome === 'powered-off') return { how: 'powered-off', ms }
  const why = `the guest did not power off within ${Math.round(timeoutMs / 1000)} s of the ACPI power button ([node] shutdown_timeout_s)`
  return { how: 'forced', ms, reason: outcome === 'quit' ? `${why}: QEMU was told to quit` : `${why}: the VM process was killed` }
}

/**
 * A short, stable name for an instance on a node: in its directory, VM process, tap and MAC.
 * 12 hex digits keep the tap name (`fv` + 12) inside Linux's 15-character limit.
 */
export function shortName(owner: string, id: string): string {
  return createHash('sha256').update(`${owner}/${id}`).digest('hex').slice(0, 12)
}

/** A locally administered unicast MAC derived from the instance, stable across reboots. */
export function macFor(owner: string, id: string): string {
  const h = createHash('sha256').update(`mac:${owner}/${id}`).digest()
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':')
}

/** A hostname from the instance's name: RFC 1123 label characters, at most 63. */
export function hostnameFor(name: string, id: string): string {
  const clean = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '')
  return clean || `i-${id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 60)}`
}

/**
 * The guest's kernel command line: the image's own, then the keys the guest configures its network
 * from (the image contract: form.ip, form.gw, form.hostname, form.dns), `panic=-1` so a panicking
 * guest ends its VM (with -no-reboot) instead of hanging, and under TCG a fixed TSC frequency,
 * without which the kernel's TSC calibration hangs at random.
 */
export function guestCmdline(base: string, o: { ip: string; prefix: number; gateway: string; hostname: string; dns: string; accel: 'kvm' | 'tcg' }): string {
  const ours = /^(form\.(ip|gw|hostname|dns)|panic|tsc_early_khz)=/
  const kept = base.split(/\s+/).filter((w) => w && !ours.test(w))
  return [...kept, `form.ip=${o.ip}/${o.prefix}`, `form.gw=${o.gateway}`, `form.hostname=${o.hostname}`, `form.dns=${o.dns}`, 'panic=-1', ...(o.accel === 'tcg' ? ['tsc_early_khz=2000000'] : [])].join(' ')
}

/**
 * Why `want` does not fit beside what is `held`, or undefined when it fits. Never over-commits: the
 * sum must stay within the capacity the operator offers.
 */
export function refusal(capacity: Resources, held: Resources[], want: Resources): string | undefined {
  const used = held.reduce((a, r) => ({ vcpus: a.vcpus + r.vcpus, memoryMb: a.memoryMb + r.memoryMb, diskGb: a.diskGb + r.diskGb }), { vcpus: 0, memoryMb: 0, diskGb: 0 })
  const short: string[] = []
  if (used.vcpus + want.vcpus > capacity.vcpus) short.push(`${want.vcpus} vCPU requested, ${capacity.vcpus - used.vcpus} of ${capacity.vcpus} free`)
  if (used.memoryMb + want.memoryMb > capacity.memoryMb) short.push(`${want.memoryMb} MiB memory requested, ${capacity.memoryMb - used.memoryMb} of ${capacity.memoryMb} free`)
  if (used.diskGb + want.diskGb > capacity.diskGb) short.push(`${want.diskGb} GiB disk requested, ${capacity.diskGb - used.diskGb} of ${capacity.diskGb} free`)
  if (!short.length) return undefined
  return `does not fit on this node: ${short.join('; ')} (the node offers what its operator config's [node.resources] sets, else the host minus [node.reserve]: its operator may raise that, or delete instances that hold room)`
}
