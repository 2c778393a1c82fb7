import { execFile } from 'node:child_process'
import { mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { FormError } from '../../../core/errors.js'
import { fileGrowth } from '../../../core/files.js'
import type { Logger } from '../../../core/log.js'
import type { ServiceHealth } from '../../../core/plugin.js'
import { allocateHost, parseCidr, formatCidr, nodeAddress, subnetAddressesInUse, type P2PHandle } from '../../net/index.js'
import type { StateHandle, StateRecord } from '../../state/index.js'
import { bootableKernel, type Hypervisor, type Vm, type VmSpec } from '../lib/hypervisor/index.js'
import { readRange, sleep } from '../lib/hypervisor/process.js'
import { MAX_MANIFEST_BYTES, parseManifest, type ImageManifest } from '../lib/vmm/image.js'
import { HealthMonitor, Limiter, MAX_CONCURRENT_PROBES, RESTART_BACKOFF_MS, restartDelay, type HealthCheck, type HealthTracker } from '../lib/vmm/health.js'
import type { InstanceNetwork } from '../lib/vmm/network.js'
import { guestCmdline, hostnameFor, macFor, refusal, shortName, stopReport } from '../lib/vmm/guest.js'
import {
  DEFAULT_FAILOVER_MS,
  desiredEntries,
  desiredKey,
  hasQuorum,
  hostsOf,
  DEFAULT_INSTANCE_RESOURCES as FALLBACK,
  observedKey,
  parseDesired,
  parseInstanceKey,
  type DesiredInstance,
  type HealthReport,
  type StopReport,
  type ObservedInstance,
  type ObservedState,
  type Resources,
} from '../../instances/index.js'

const run = promisify(execFile)

/** What the controller keeps about an instance on disk, beside its disk copy and console log. */
interface LocalInstance {
  owner: string
  id: string
  short: string
  hostname: string
  image: string
  buildId: string
  ip: string
  mac: string
  tap: string
  vcpus: number
  memoryMb: number
  diskGb: number
  createdAt: number
  /** console log size when the current boot began: readiness is looked for after it */
  bootOffset?: number
}

interface Instance {
  key: string
  owner: string
  id: string
  short: string
  local?: LocalInstance
  vm?: Vm
  /** vCPUs and memory the running VM holds */
  running?: { vcpus: number; memoryMb: number }
  phase?: ObservedState
  /** bumped whenever the VM is replaced or stopped: watchers of an older boot stay quiet */
  gen: number
  stopping: boolean
  /** the desired operation last acted on; a new one retries a failed instance at once */
  desiredHash?: string
  /** the node that hosts it, as last computed (it changes when a node goes away or comes back) */
  host?: string
  failures: number
  retryAt?: number
  /** what the current creation and boot took (reported with `running`) */
  timings: NonNullable<ObservedInstance['timings']>
  /** how the VM last stopped */
  lastStop?: StopReport
  /** when this process started the current VM (an adopted one has none) */
  bootStartedAt?: number
  /** what the `running` record carries besides the state (kept for the health updates that rewrite it) */
  runningExtra?: Partial<ObservedInstance>
  /** the image's health checks, once its manifest was read */
  checks?: HealthCheck[]
  /** probes the current boot while it runs */
  monitor?: HealthMonitor
  /** what the observed record says of its health; restarts and the last failure outlive a boot */
  health?: HealthReport
  /** health restarts that count for the backoff (reset once it stayed healthy long enough) */
  backoff: number
  restartTimer?: NodeJS.Timeout
  queue: Promise<void>
  writes: Promise<void>
  lastWritten?: string
}

export interface ControllerOptions {
  state: StateHandle
  /** where the instance watch and the host rescans report trouble (the vmm service's health) */
  health: ServiceHealth
  p2p: Pick<P2PHandle, 'fetch'>
  /** undefined when no hypervisor can run here; then every instance fails with `unavailable` */
  hypervisor?: Hypervisor
  unavailable?: string
  network: InstanceNetwork
  capacity: Resources
  /** `[net] bridge_subnet`, or '' for the node's formnet subnet */
  bridgeSubnet: string
  /** the subnet this node holds on formnet (the formnet service claims it before the vmm starts) */
  formnetSubnet: () => string
  dirs: { instances: string; kernels: string; run: string }
  shutdownTimeoutMs: number
  bootTimeoutMs: number
  /** how often the hosts are computed again (a node that went away changes no record) */
  rescanIntervalMs?: number
  /**
   * For this long after start, every known node counts as alive: the heartbeats this node holds are
   * as old as its downtime until replication brings fresh ones, and it must not take over replicas
   * of nodes that are fine.
   */
  startupGraceMs?: number
  log: Logger
}

// at the end of a line; older images print it right after a login prompt that lacks a newline
const READY = /(^|\s)FORM-READY\r?$/m
/** What the guest says of its SSH host keys before FORM-READY (plugins/pack/lib/builder/guest-agent.ts). */
const HOSTKEY = /^FORM-HOSTKEY ((?:ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) [A-Za-z0-9+/]{20,1200}={0,2})\r?$/gm
/** A guest may name this many host keys (one per algorithm); the rest is ignored. */
const MAX_HOSTKEYS = 4

/**
 * Makes the instances assigned to this node what their desired records say, and writes what it
 * observes. One queue per instance serializes its steps; booting VMs are watched outside the
 * queue, so a stop or delete is never stuck behind a slow boot.
 */
export class InstanceController {
  private readonly instances = new Map<string, Instance>()
  private readonly abort = new AbortController()
  private readonly me: string
  private subnet?: Promise<{ gateway: string; prefix: number; cidr: string }>
  private allocating: Promise<unknown> = Promise.resolve()
  private retryTimer?: NodeJS.Timeout
  private rescanTimer?: NodeJS.Timeout
  private rescanning = false
  private stopped = false
  private readonly startedAt = Date.now()
  /** every replica's probes share this bound */
  private readonly probes = new Limiter(MAX_CONCURRENT_PROBES)

  constructor(private readonly o: ControllerOptions) {
    this.me = o.state.address
  }

  get backendLabel(): string {
    return this.o.hypervisor?.info.label ?? 'none'
  }

  async start(): Promise<void> {
    await mkdir(this.o.dirs.instances, { recursive: true })
    // what the previous run left on disk: VMs to adopt, or to bring back if they died meanwhile
    for (const entry of await readdir(this.o.dirs.instances).catch(() => [] as string[])) {
      const local = await this.readLocal(entry)
      if (!local) continue
      const inst = this.entry(local.owner, local.id)
      inst.local = local
      await this.adopt(inst)
    }
    for (const r of await this.o.state.all('instances')) {
      const k = parseInstanceKey(r.key)
      if (k?.kind === 'desired' && this.concerns(r.value)) this.entry(k.owner, k.id)
    }
    for (const inst of this.instances.values()) this.schedule(inst)
    // a node going away changes no record, only time does: look again at the hosts regularly
    this.rescanTimer = setInterval(() => void this.rescan(), this.o.rescanIntervalMs ?? 2000)
    this.rescanTimer.unref()
    this.o.health.loop('watch of instances', async () => {
      for await (const change of this.o.state.watch('instances', '', this.abort.signal)) this.onChange(change)
    })
    this.retryTimer = setInterval(() => {
      for (const inst of this.instances.values()) if (inst.retryAt !== undefined && inst.retryAt <= Date.now()) this.schedule(inst)
    }, 1000)
    this.retryTimer.unref()
  }

  private onChange(change: StateRecord): void {
    const k = parseInstanceKey(change.key)
    if (k?.kind !== 'desired') return
    const known = this.instances.get(`${k.owner}/${k.id}`)
    if (known || (!change.deleted && this.concerns(change.value))) this.schedule(known ?? this.entry(k.owner, k.id))
  }

  /**
   * Whether a desired record could put its instance here: as its node, or, for a replica shipped
   * with fallbacks, on any member (fallbacks follow the network, see hostsOf).
   */
  private concerns(value: unknown): boolean {
    const v = value as { node?: unknown; candidates?: unknown } | undefined
    return v?.node === this.me || (Array.isArray(v?.candidates) && v.candidates.length > 0)
  }

  /** This node's clock for liveness: during the startup grace every known node counts as alive. */
  private livenessNow(): number {
    const now = Date.now()
    return now - this.startedAt < (this.o.startupGraceMs ?? 30_000) ? -Infinity : now
  }

  /** The node that hosts every instance now, as this node sees the network (see hostsOf). */
  async hosts(): Promise<Map<string, string>> {
    const [records, nodes] = await Promise.all([this.o.state.all('instances'), this.o.state.all('nodes')])
    return hostsOf(desiredEntries(records), this.o.state.liveness(), this.livenessNow(), { nodes, self: this.me })
  }

  /** Why this node gives up an instance it no longer hosts. */
  private letGo(desired: DesiredInstance, host: string | undefined): string {
    const beats = this.o.state.liveness()
    const windowMs = desired.failoverMs ?? DEFAULT_FAILOVER_MS
    const now = this.livenessNow()
    if (hasQuorum(this.me, beats, now, windowMs)) return `reassigned to node ${host}`
    const seen = [...beats].filter(([n, at]) => n !== this.me && now - at <= windowMs).length + 1
    return `fenced: this node sees ${seen} of the ${new Set([...beats.keys(), this.me]).size} members it knows, so the other side runs it (on node ${host})`
  }

  /** Takes up the instances that moved here and lets go of those that moved away. */
  private async rescan(): Promise<void> {
    if (this.rescanning || this.stopped) return
    this.rescanning = true
    try {
      for (const [key, host] of await this.hosts()) {
        const inst = this.instances.get(key)
        if (inst ? inst.host !== undefined && inst.host !== host : host === this.me) {
          const [owner, id] = key.split('/')
          this.schedule(inst ?? this.entry(owner, id))
        }
      }
      this.o.health.recovered('host rescan')
    } catch (error) {
      this.o.health.degraded('host rescan', `could not look at the instance hosts: ${(error as Error).message}`)
    } finally {
      this.rescanning = false
    }
  }

  private entry(owner: string, id: string): Instance {
    const key = `${owner}/${id}`
    let inst = this.instances.get(key)
    if (!inst) {
      inst = { key, owner, id, short: shortName(owner, id), gen: 0, stopping: false, failures: 0, backoff: 0, timings: {}, queue: Promise.resolve(), writes: Promise.resolve() }
      this.instances.set(key, inst)
    }
    return inst
  }

  private schedule(inst: Instance): void {
    inst.queue = inst.queue
      .then(() => (this.stopped ? undefined : this.reconcile(inst)))
      .catch((error: Error) => this.o.log.error('reconciliation failed', { instance: inst.key, error: error.stack ?? error.message }))
  }

  /** Brings one instance one step closer to its desired record. */
  private async reconcile(inst: Instance): Promise<void> {
    const rec = await this.o.state.getRecord('instances', desiredKey(inst.owner, inst.id))
    const parsed = rec && !rec.deleted ? parseDesired(rec.value) : undefined
    const desired = parsed && 'desired' in parsed ? parsed.desired : undefined
    const fresh = rec?.hash !== inst.desiredHash
    inst.desiredHash = rec?.hash
    if (fresh) inst.failures = 0
    const host = desired ? (desired.candidates?.length ? (await this.hosts()).get(inst.key) : desired.node) : undefined
    if (host !== inst.host && inst.host !== undefined) inst.failures = 0
    inst.host = host

    if (!rec || rec.deleted || (desired && (host !== this.me || desired.state === 'deleted'))) {
      const reason = desired && host !== this.me ? this.letGo(desired, host) : undefined
      if (inst.local || inst.vm || (inst.phase && inst.phase !== 'deleted')) await this.destroy(inst, reason)
      if (!inst.local && !inst.vm) this.instances.delete(inst.key)
      return
    }
    if (!desired) {
      const problem = (parsed as { problem: string }).problem
      if (inst.vm) await this.stopVm(inst)
      await this.fail(inst, `the desired record is invalid: ${problem}`, false)
      return
    }
    if (inst.local && inst.local.image !== desired.image) {
      // shipped again with a new image: a fresh disk from it (the old disk's data goes)
      this.o.log.info('the image changed: recreating the instance', { instance: inst.key, from: inst.local.image, to: desired.image })
      await this.removeLocal(inst)
    }
    if (desired.state === 'stopped') {
      const shutdown = inst.vm ? await this.stopVm(inst) : undefined
      if (!inst.local && !(await this.materialize(inst, desired))) return
      inst.retryAt = undefined
      // a stop that found the VM already down keeps the report of the stop that brought it down
      await this.observe(inst, 'stopped', shutdown ? { shutdown } : inst.lastStop ? { shutdown: inst.lastStop } : {})
      return
    }
    // desired running
    if (inst.vm) return
    if (inst.phase === 'failed' && !fresh && (inst.retryAt === undefined || inst.retryAt > Date.now())) return
    if (!inst.local && !(await this.materialize(inst, desired))) return
    await this.boot(inst, desired)
  }

  /** What an instance holds that others cannot use: its disk while it exists, vCPUs and memory while its VM runs. */
  private held(except: Instance): Resources[] {
    return [...this.instances.values()]
      .filter((i) => i !== except)
      .map((i) => ({ vcpus: i.running?.vcpus ?? 0, memoryMb: i.running?.memoryMb ?? 0, diskGb: i.local?.diskGb ?? 0 }))
  }

  private wanted(desired: DesiredInstance, manifest?: ImageManifest): Resources {
    const r = manifest?.resources
    return { vcpus: desired.vcpus || r?.vcpus || FALLBACK.vcpus, memoryMb: desired.memoryMb || r?.memoryMb || FALLBACK.memoryMb, diskGb: desired.diskGb || r?.diskGb || FALLBACK.diskGb }
  }

  /** Creates the instance on this node: image, address, disk copy. False when it failed (recorded). */
  private async materialize(inst: Instance, desired: DesiredInstance): Promise<boolean> {
    if (!this.o.hypervisor) return this.fail(inst, `this node cannot run VMs: ${this.o.unavailable}`, false)
    const early = refusal(this.o.capacity, this.held(inst), { ...this.wanted(desired), vcpus: 0, memoryMb: 0 })
    if (early) return this.fail(inst, early, true)
    await this.observe(inst, 'pending')
    try {
      const subnet = await this.subnetReady()
      await this.observe(inst, 'creating')
      let t0 = performance.now()
      const { manifest, files } = await this.loadImage(desired.image)
      inst.timings = { imageMs: Math.round(performance.now() - t0) }
      t0 = performance.now()
      const want = this.wanted(desired, manifest)
      const refused = refusal(this.o.capacity, this.held(inst), { ...want, vcpus: 0, memoryMb: 0 })
      if (refused) return this.fail(inst, refused, true)
      const dir = join(this.o.dirs.instances, inst.short)
      await mkdir(dir, { recursive: true })
      const disk = join(dir, 'disk.raw')
      if (want.diskGb * 2 ** 30 < manifest.disk.size) {
        return this.fail(inst, `diskGb ${want.diskGb} is smaller than the image's disk (${Math.ceil(manifest.disk.size / 2 ** 30)} GiB)`, false)
      }
      // A private copy: the guest writes to it, the image blob stays as built. Sparse, and a
      // reflink where the filesystem can, so the copy costs what the data costs, not the size.
      await run('cp', ['--sparse=always', '--reflink=auto', files.disk, `${disk}.tmp`])
      await truncate(`${disk}.tmp`, want.diskGb * 2 ** 30)
      await rename(`${disk}.tmp`, disk)
      inst.timings.diskMs = Math.round(performance.now() - t0)
      const local: LocalInstance = await this.serialAllocation(async () => {
        const ip = allocateHost(parseCidr(subnet.cidr), await this.usedAddresses())
        const l: LocalInstance = {
          owner: inst.owner,
          id: inst.id,
          short: inst.short,
          hostname: hostnameFor(desired.name, inst.id),
          image: desired.image,
          buildId: desired.buildId,
          ip,
          mac: macFor(inst.owner, inst.id),
          tap: `fv${inst.short}`,
          ...want,
          createdAt: Date.now(),
        }
        await this.saveLocal(l)
        inst.local = l
        return l
      })
      this.o.log.info('instance created', { instance: inst.key, ip: local.ip })
      return true
    } catch (error) {
      await rm(join(this.o.dirs.instances, inst.short), { recursive: true, force: true })
      inst.local = undefined
      return this.fail(inst, `could not create the instance: ${(error as Error).message}`, true)
    }
  }

  private async boot(inst: Instance, desired: DesiredInstance): Promise<void> {
    const local = inst.local!
    const hv = this.o.hypervisor!
    // vCPUs and memory may be changed between boots; the disk is fixed at creation
    const want = { vcpus: desired.vcpus || local.vcpus, memoryMb: desired.memoryMb || local.memoryMb }
    const refused = refusal(this.o.capacity, this.held(inst), { ...want, diskGb: local.diskGb })
    if (refused) {
      await this.fail(inst, refused, true)
      return
    }
    try {
      const subnet = await this.subnetReady()
      const { manifest, files } = await this.loadImage(local.image)
      inst.checks = manifest.health ?? []
      inst.health = inst.checks.length ? { ...inst.health, state: 'starting', since: Date.now(), reason: undefined, restartAt: undefined, restarts: inst.health?.restarts ?? 0, checks: inst.checks.length } : undefined
      await this.o.network.ensureTap(subnet, local.tap, inst.key)
      const kernel = await bootableKernel(files.kernel, manifest.kernel.sha256, this.o.dirs.kernels)
      const spec = this.spec(local, { ...want, kernel: kernel.path, initrd: files.initrd, cmdline: guestCmdline(manifest.cmdline, { ip: local.ip, prefix: subnet.prefix, gateway: subnet.gateway, hostname: local.hostname, dns: subnet.gateway, accel: hv.info.accel }) })
      local.bootOffset = await stat(spec.consoleLog).then((s) => s.size, () => 0)
      await this.saveLocal(local)
      inst.running = want
      inst.lastStop = undefined
      await this.observe(inst, 'booting')
      inst.timings.bootMs = undefined
      inst.bootStartedAt = performance.now()
      const vm = await hv.boot(spec)
      this.o.log.info('VM started', { instance: inst.key, pid: vm.pid, backend: hv.info.label, pvh: kernel.pvh })
      this.watch(inst, vm)
    } catch (error) {
      inst.running = undefined
      await this.o.network.removeTap(local.tap).catch(() => {})
      await this.fail(inst, `could not boot: ${(error as Error).message}`, true)
    }
  }

  /** Follows a VM: running once the guest prints FORM-READY, failed if it exits or never gets there. */
  private watch(inst: Instance, vm: Vm): void {
    inst.vm = vm
    const gen = ++inst.gen
    const local = inst.local!
    const consoleLog = join(this.o.dirs.instances, inst.short, 'console.log')
    const current = () => inst.gen === gen && !inst.stopping
    void (async () => {
      const deadline = Date.now() + this.o.bootTimeoutMs
      let exited = false
      void vm.exited.then(() => (exited = true))
      // scan only what is new, keeping the last partial line for the next round
      let pos = local.bootOffset ?? 0
      let carry = ''
      const hostKeys = new Set<string>()
      while (current() && !exited) {
        const size = await stat(consoleLog).then((s) => s.size, () => 0)
        const text = carry + (await readRange(consoleLog, pos, size)).toString('utf8')
        pos = Math.max(pos, size)
        // whole lines only: a key cut by a read in the middle would be recorded cut
        for (const m of text.slice(0, text.lastIndexOf('\n') + 1).matchAll(HOSTKEY)) if (hostKeys.size < MAX_HOSTKEYS) hostKeys.add(m[1])
        if (READY.test(text)) {
          inst.failures = 0
          inst.retryAt = undefined
          if (inst.bootStartedAt !== undefined) inst.timings.bootMs = Math.round(performance.now() - inst.bootStartedAt)
          inst.bootStartedAt = undefined
          inst.runningExtra = { ...(Object.keys(inst.timings).length ? { timings: { ...inst.timings } } : {}), ...(hostKeys.size ? { hostKeys: [...hostKeys] } : {}) }
          await this.observe(inst, 'running', inst.runningExtra)
          if (current()) await this.startHealth(inst, gen)
          return
        }
        carry = text.slice(text.lastIndexOf('\n') + 1).slice(-4096)
        if (Date.now() > deadline) {
          await this.fail(inst, `the guest did not report FORM-READY on its console within ${Math.round(this.o.bootTimeoutMs / 1000)} s`, true)
          inst.queue = inst.queue.then(() => (inst.gen === gen ? this.stopVm(inst).then(() => {}) : undefined)).catch(() => {})
          return
        }
        await sleep(200)
      }
    })().catch((error: Error) => this.o.log.warn('boot watch failed', { instance: inst.key, error: error.message }))
    void vm.exited.then(async () => {
      if (inst.gen !== gen) return
      this.stopHealth(inst)
      inst.vm = undefined
      inst.running = undefined
      if (inst.stopping || this.stopped) return
      await this.o.network.removeTap(local.tap).catch(() => {})
      await this.o.hypervisor!.cleanup(this.spec(local)).catch(() => {})
      // the guest powered itself off, panicked (panic=-1, -no-reboot) or the process was killed
      this.o.log.warn('VM exited on its own', { instance: inst.key, pid: vm.pid })
      await this.fail(inst, `the VM process (pid ${vm.pid}) exited on its own`, true)
    })
  }

  /** Re-attaches to the VM a previous node process left running, if it still runs. */
  private async adopt(inst: Instance): Promise<void> {
    const hv = this.o.hypervisor
    if (!hv || !inst.local) return
    try {
      const vm = await hv.adopt(this.spec(inst.local))
      if (!vm) return
      this.o.log.info('adopted a running VM', { instance: inst.key, pid: vm.pid })
      inst.running = { vcpus: inst.local.vcpus, memoryMb: inst.local.memoryMb }
      this.watch(inst, vm)
    } catch (error) {
      this.o.log.warn('a VM of the previous run could not be adopted', { instance: inst.key, error: (error as Error).message })
    }
  }

  /** Stops the VM (power button, then forced after the shutdown timeout); how it went, if there was one. */
  private async stopVm(inst: Instance): Promise<StopReport | undefined> {
    const vm = inst.vm
    if (!vm) return undefined
    // a service going down with its guest is no health failure
    this.stopHealth(inst)
    inst.stopping = true
    let report: StopReport | undefined
    try {
      const t0 = performance.now()
      const how = await vm.shutdown(this.o.shutdownTimeoutMs)
      report = stopReport(how, Math.round(performance.now() - t0), this.o.shutdownTimeoutMs)
      inst.lastStop = report
      if (report?.how === 'forced') this.o.log.warn('VM stop forced', { instance: inst.key, pid: vm.pid, how, ms: report.ms, reason: report.reason })
      else this.o.log.info('VM stopped', { instance: inst.key, pid: vm.pid, how, ms: report?.ms })
    } finally {
      this.stopHealth(inst)
      inst.gen++
      inst.vm = undefined
      inst.running = undefined
      inst.stopping = false
    }
    if (inst.local) {
      await this.o.network.removeTap(inst.local.tap)
      await this.o.hypervisor?.cleanup(this.spec(inst.local))
    }
    return report
  }

  /** Stops the VM and removes everything it had on this node: tap, files, disk copy. */
  private async removeLocal(inst: Instance): Promise<void> {
    await this.stopVm(inst)
    if (inst.local) {
      await this.o.network.removeTap(inst.local.tap)
      await this.o.hypervisor?.cleanup(this.spec(inst.local))
    }
    await rm(join(this.o.dirs.instances, inst.short), { recursive: true, force: true })
    inst.local = undefined
    inst.retryAt = undefined
    // a new disk (a new image, or the instance gone): its health starts over
    inst.checks = undefined
    inst.health = undefined
    inst.backoff = 0
  }

  /** Starts probing the boot `gen` of an instance that reported FORM-READY, when its image has checks. */
  private async startHealth(inst: Instance, gen: number): Promise<void> {
    // an adopted VM was not booted by this process: its checks come from the image now
    inst.checks ??= await this.loadManifest(inst.local!.image).then(
      (m) => m.health ?? [],
      (error: Error) => {
        this.o.log.warn('could not read the health checks of the image', { instance: inst.key, error: error.message })
        return undefined
      },
    )
    if (!inst.checks?.length || inst.gen !== gen || !inst.local) return
    this.stopHealth(inst)
    inst.health ??= { state: 'starting', since: Date.now(), restarts: 0, checks: inst.checks.length }
    // the start period counts from FORM-READY: the service can only start once the guest is up
    const monitor = new HealthMonitor({ host: inst.local.ip, checks: inst.checks, limiter: this.probes, bootedAt: Date.now(), onChange: (t) => this.onHealth(inst, gen, t) })
    inst.monitor = monitor
    monitor.start()
  }

  private stopHealth(inst: Instance): void {
    inst.monitor?.stop()
    inst.monitor = undefined
    clearTimeout(inst.restartTimer)
    inst.restartTimer = undefined
  }

  /** A change of a running replica's health: recorded, and an unhealthy one is restarted after its backoff. */
  private onHealth(inst: Instance, gen: number, tracker: HealthTracker): void {
    if (inst.gen !== gen || inst.monitor?.tracker !== tracker || !inst.health || inst.stopping || this.stopped) return
    const h = inst.health
    const now = Date.now()
    const wasHealthyFor = h.state === 'healthy' ? now - h.since : 0
    const turned = tracker.state !== h.state
    Object.assign(h, { state: tracker.state, since: tracker.since, reason: tracker.reason })
    if (tracker.state === 'unhealthy') {
      h.lastFailure = { reason: tracker.reason!, at: now }
      if (turned) {
        if (wasHealthyFor >= RESTART_BACKOFF_MS.resetAfterHealthyMs) inst.backoff = 0
        const delay = restartDelay(inst.backoff)
        this.o.log.warn('instance unhealthy', { instance: inst.key, reason: tracker.reason, restartInMs: delay })
        h.restartAt = now + delay
        clearTimeout(inst.restartTimer)
        inst.restartTimer = setTimeout(() => this.restartUnhealthy(inst, gen), delay)
        inst.restartTimer.unref()
      }
    } else {
      if (turned) this.o.log.info(`instance ${tracker.state}`, { instance: inst.key })
      h.restartAt = undefined
      clearTimeout(inst.restartTimer)
      inst.restartTimer = undefined
    }
    void this.observe(inst, 'running', inst.runningExtra)
  }

  /** Restarts the VM of a replica that is still unhealthy: stop (power button, then forced), boot again. */
  private restartUnhealthy(inst: Instance, gen: number): void {
    inst.queue = inst.queue
      .then(async () => {
        if (inst.gen !== gen || !inst.vm || inst.health?.state !== 'unhealthy' || this.stopped) return
        inst.health.restarts++
        inst.backoff++
        this.o.log.warn('restarting an unhealthy instance', { instance: inst.key, reason: inst.health.reason, restarts: inst.health.restarts })
        await this.stopVm(inst)
        await this.reconcile(inst)
      })
      .catch((error: Error) => this.o.log.error('the restart of an unhealthy instance failed', { instance: inst.key, error: error.stack ?? error.message }))
  }

  private async destroy(inst: Instance, reason?: string): Promise<void> {
    await this.removeLocal(inst)
    await this.observe(inst, 'deleted', reason ? { reason } : {})
    this.o.log.info('instance deleted', { instance: inst.key })
  }

  /**
   * Records a failure; `retry` schedules another attempt with exponential backoff. Returns false.
   * The record says why, never what the console printed: the console can hold the owner's secrets
   * and state is replicated to every node. Its owner reads it from this node (POST /instances/console).
   */
  private async fail(inst: Instance, reason: string, retry: boolean): Promise<false> {
    inst.failures++
    inst.retryAt = retry ? Date.now() + Math.min(600_000, 15_000 * 2 ** Math.min(inst.failures - 1, 6)) : undefined
    this.o.log.warn('instance failed', { instance: inst.key, reason })
    await this.observe(inst, 'failed', { reason })
    return false
  }

  /** Writes the observed record (skipping writes that would change nothing but the time). */
  private observe(inst: Instance, state: ObservedState, extra: Partial<ObservedInstance> = {}): Promise<void> {
    inst.phase = state
    const live = state !== 'deleted' && inst.local
    const value: Omit<ObservedInstance, 'updatedAt'> = {
      state,
      ...extra,
      // the image says which deploy this report is about: a rolling ship waits for the new one
      ...(live ? { ip: inst.local!.ip, mac: inst.local!.mac, image: inst.local!.image } : {}),
      ...(inst.vm && (state === 'booting' || state === 'running') ? { pid: inst.vm.pid } : {}),
      ...(inst.health && (state === 'booting' || state === 'running') ? { health: { ...inst.health } } : {}),
      backend: this.backendLabel,
    }
    const same = JSON.stringify(value)
    inst.writes = inst.writes.then(async () => {
      if (inst.lastWritten === same) return
      await this.o.state.put('instances', observedKey(inst.owner, inst.id, this.me), { ...value, updatedAt: Date.now() })
      inst.lastWritten = same
    })
    return inst.writes.catch((error: Error) => this.o.log.warn('could not write the observed state', { instance: inst.key, error: error.message }))
  }

  private spec(local: LocalInstance, boot?: Partial<VmSpec>): VmSpec {
    const dir = join(this.o.dirs.instances, local.short)
    return {
      name: local.short,
      kernel: '',
      cmdline: '',
      vcpus: local.vcpus,
      memoryMb: local.memoryMb,
      ...boot,
      disk: join(dir, 'disk.raw'),
      tap: local.tap,
      mac: local.mac,
      consoleLog: join(dir, 'console.log'),
      processLog: join(dir, 'vmm.log'),
      runDir: this.o.dirs.run,
    }
  }

  /** The image's manifest and local paths of its blobs, fetched from providers when missing. */
  private async loadImage(image: string): Promise<{ manifest: ImageManifest; files: { kernel: string; initrd?: string; disk: string } }> {
    const manifest = await this.loadManifest(image)
    const blob = async (what: string, ref: { sha256: string; size: number }) => {
      const got = await this.o.p2p.fetch(ref.sha256, { maxBytes: ref.size }).catch((error: Error) => {
        throw new FormError('VMM_IMAGE_UNAVAILABLE', `the ${what} of image ${image} (${ref.sha256}) could not be fetched: ${error.message}`)
      })
      if (got.size !== ref.size) throw new FormError('VMM_BAD_IMAGE', `the ${what} blob is ${got.size} bytes; the manifest says ${ref.size}`)
      return got.path
    }
    return {
      manifest,
      files: { kernel: await blob('kernel', manifest.kernel), initrd: manifest.initrd ? await blob('initrd', manifest.initrd) : undefined, disk: await blob('disk', manifest.disk) },
    }
  }

  private async loadManifest(image: string): Promise<ImageManifest> {
    const m = await this.o.p2p.fetch(image, { maxBytes: MAX_MANIFEST_BYTES }).catch((error: Error) => {
      throw new FormError('VMM_IMAGE_UNAVAILABLE', `image ${image} is not on this node and could not be fetched: ${error.message}`)
    })
    return parseManifest(await readFile(m.path))
  }

  /** The subnet instances get addresses from: `[net] bridge_subnet`, else this node's formnet subnet. */
  subnetReady(): Promise<{ gateway: string; prefix: number; cidr: string }> {
    this.subnet ??= (async () => {
      const c = parseCidr(this.o.bridgeSubnet || this.o.formnetSubnet())
      return { gateway: nodeAddress(c), prefix: c.prefix, cidr: formatCidr(c) }
    })()
    return this.subnet
  }

  /** Addresses of this node's subnet already given out, plus those of instances not yet reported. */
  private async usedAddresses(): Promise<string[]> {
    const used = new Set(await subnetAddressesInUse(this.o.state, this.me))
    for (const i of this.instances.values()) if (i.local) used.add(i.local.ip)
    return [...used]
  }

  private serialAllocation<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.allocating.then(fn, fn)
    this.allocating = next.catch(() => {})
    return next
  }

  private async readLocal(short: string): Promise<LocalInstance | undefined> {
    try {
      const l = JSON.parse(await readFile(join(this.o.dirs.instances, short, 'instance.json'), 'utf8')) as LocalInstance
      return l.short === short ? l : undefined
    } catch {
      return undefined
    }
  }

  private async saveLocal(l: LocalInstance): Promise<void> {
    const file = join(this.o.dirs.instances, l.short, 'instance.json')
    await writeFile(`${file}.tmp`, JSON.stringify(l, null, 2) + '\n')
    await rename(`${file}.tmp`, file)
  }

  /** The console log of an instance hosted here, for its owner. */
  async console(owner: string, id: string, offset: number | undefined, tailBytes: number, wait?: { ms: number; signal: AbortSignal }): Promise<{ data: string; offset: number; size: number }> {
    const inst = this.instances.get(`${owner}/${id}`)
    if (!inst?.local) {
      throw new FormError('VMM_INSTANCE_NOT_HERE', `instance ${id} is not hosted on this node`, { httpStatus: 404, hint: 'ask the node that hosts it (`form manage list` shows it), with --node' })
    }
    const file = join(this.o.dirs.instances, inst.short, 'console.log')
    let size = await stat(file).then((s) => s.size, () => 0)
    // a follower asks to be answered when the guest has printed more, instead of asking again and again
    if (wait && offset !== undefined && offset >= size) {
      await fileGrowth(file, size, wait.ms, wait.signal)
      size = await stat(file).then((s) => s.size, () => 0)
    }
    const from = offset === undefined ? Math.max(0, size - tailBytes) : Math.min(offset, size)
    const data = await readRange(file, from, Math.min(size, from + 1024 * 1024))
    // base64: a chunk may end inside a multi-byte character; the client writes the bytes as they are
    return { data: data.toString('base64'), offset: from + data.length, size }
  }

  describe(): Record<string, unknown> {
    const list = [...this.instances.values()]
    const used = list.reduce((a, i) => ({ vcpus: a.vcpus + (i.running?.vcpus ?? 0), memoryMb: a.memoryMb + (i.running?.memoryMb ?? 0), diskGb: a.diskGb + (i.local?.diskGb ?? 0) }), { vcpus: 0, memoryMb: 0, diskGb: 0 })
    return {
      capacity: this.o.capacity,
      used,
      instances: list.map((i) => ({ owner: i.owner, id: i.id, state: i.phase, health: i.health?.state, ip: i.local?.ip, pid: i.vm?.pid, tap: i.local?.tap })),
    }
  }

  counts(): { instances: number; running: number } {
    const list = [...this.instances.values()]
    return { instances: list.filter((i) => i.local).length, running: list.filter((i) => i.phase === 'running').length }
  }

  /**
   * Node shutdown: the VMs stop (ACPI, then harder after the timeout), their taps and the bridge go,
   * and their records say they stopped because the node did. A node that is killed instead leaves
   * its VMs running, for the next run to adopt.
   */
  async stop(): Promise<void> {
    this.stopped = true
    this.abort.abort()
    clearInterval(this.retryTimer)
    clearInterval(this.rescanTimer)
    for (const inst of this.instances.values()) this.stopHealth(inst)
    await Promise.all(
      [...this.instances.values()].map(async (inst) => {
        await inst.queue.catch(() => {})
        if (!inst.vm) return
        const shutdown = await this.stopVm(inst).catch((error: Error) => void this.o.log.error('could not stop a VM', { instance: inst.key, error: error.message }))
        await this.observe(inst, 'stopped', { reason: 'the node stopped', ...(shutdown ? { shutdown } : {}) })
      }),
    )
    await this.o.network.teardown().catch((error: Error) => this.o.log.warn('could not remove the instance network', { error: error.message }))
  }
}
