import { join } from 'node:path'
import { FormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { NodeConfig } from '../index.js'
import { openHypervisor, type Hypervisor } from '../lib/hypervisor/index.js'
import { InstanceNetwork } from '../lib/vmm/network.js'
import { InstanceController } from './controller.js'

/**
 * The hypervisor manager (service `vmm`): picks the backend, then runs the instance controller.
 * A machine that cannot run VMs still starts the node; its instances fail with the reason.
 */
export async function startVmm(ctx: ServiceContext<NodeConfig, 'state' | 'p2p' | 'formnet' | 'dns'>): Promise<RunningService> {
  const config = ctx.config
  const state = ctx.use('state')
  const p2p = ctx.use('p2p')
  const formnet = ctx.use('formnet')
  const dns = ctx.use('dns')
  const log = ctx.log
  const capacity = { vcpus: config.resources.vcpus, memoryMb: config.resources.memory_mb, diskGb: config.resources.disk_gb }
  // what this node offers instances, in its node record (the state service writes the record; the node plugin owns the numbers)
  await state.updateNodeRecord({ capacity })

  let hypervisor: Hypervisor | undefined
  let unavailable: string | undefined
  try {
    hypervisor = await openHypervisor({ hypervisor: config.hypervisor, qemu: config.qemu, cloudHypervisor: config.cloud_hypervisor })
    log.info('hypervisor', { backend: hypervisor.info.label, version: hypervisor.info.version, notes: hypervisor.info.notes })
  } catch (error) {
    unavailable = (error as Error).message
    log.warn('this node cannot run VMs', { reason: unavailable })
  }

  const bridge = formnet.bridge.name
  const controller = new InstanceController({
    state,
    health: ctx.health,
    p2p,
    hypervisor,
    unavailable,
    network: new InstanceNetwork({ bridge, nat: config.nat, formnetCidr: formnet.cidr, allowCidrs: config.instance_allow_cidrs, dnsPort: dns.port }, log),
    capacity,
    bridgeSubnet: formnet.bridge.subnet,
    formnetSubnet: () => formnet.subnet(),
    dirs: {
      instances: join(ctx.paths.dataDir, 'vmm', 'instances'),
      kernels: join(ctx.paths.cacheDir, 'vmm', 'kernels'),
      // control sockets: the runtime directory is short, and gone after a reboot, like the VMs
      run: join(ctx.paths.runtimeDir, 'vmm'),
    },
    shutdownTimeoutMs: config.shutdown_timeout_s * 1000,
    bootTimeoutMs: config.boot_timeout_s * 1000,
    log,
  })
  await controller.start()

  const backend = () => ({
    backend: hypervisor?.info.backend ?? 'none',
    accel: hypervisor?.info.accel,
    label: controller.backendLabel,
    version: hypervisor?.info.version,
    notes: hypervisor?.info.notes ?? [],
    unavailable,
    bridge,
    nat: config.nat,
  })

  ctx.api.get('/vmm', async () => ({ ...backend(), ...controller.describe() }))
  // The serial console holds what the guest prints, secrets included: its owner alone reads it.
  ctx.api.post(
    '/instances/console',
    async (req) => {
      const body = req.json<{ owner?: unknown; id?: unknown; offset?: unknown; tail?: unknown; waitMs?: unknown }>() ?? {}
      if (typeof body.id !== 'string' || (body.offset !== undefined && !(Number.isSafeInteger(body.offset) && (body.offset as number) >= 0))) {
        throw new FormError('VMM_BAD_REQUEST', 'expected {"id": "<instance>", "offset"?: <byte offset>, "tail"?: <bytes>}', { httpStatus: 400 })
      }
      const owner = typeof body.owner === 'string' ? body.owner : req.caller!
      if (owner !== req.caller) {
        throw new FormError('VMM_NOT_OWNER', `only the owner of instance ${body.id} may read its console`, { httpStatus: 403, hint: 'sign the request with the wallet that owns the instance' })
      }
      const tail = Number.isSafeInteger(body.tail) && (body.tail as number) > 0 ? Math.min(body.tail as number, 1024 * 1024) : 16 * 1024
      // a wait holds a request and a watch: bounded like a build log's
      const waitMs = Number.isSafeInteger(body.waitMs) ? Math.min(Math.max(body.waitMs as number, 0), 25_000) : 0
      return controller.console(owner, body.id, body.offset as number | undefined, tail, waitMs ? { ms: waitMs, signal: req.signal } : undefined)
    },
    { auth: 'signed' },
  )

  return {
    handle: controller,
    info: () => {
      const b = backend()
      return { backend: b.label, bridge, ...controller.counts(), ...(unavailable ? { unavailable } : {}) }
    },
    stop: () => controller.stop(),
  }
}
