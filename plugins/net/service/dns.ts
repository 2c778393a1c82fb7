import { readFile } from 'node:fs/promises'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { NetConfig } from '../index.js'
import { DnsServer } from '../lib/dns/server.js'
import { resolversFrom } from '../lib/dns/server.js'
import { OwnerNames, Zone } from '../lib/dns/zone.js'
import { RESOLV_CONF_FILES } from '../lib/formnet/hostnet.js'
import { claimsOf } from '../lib/formnet/peers.js'
import { formatCidr, nodeAddress, parseCidr, subnetOf } from '../lib/formnet/ipam.js'

/** What services that depend on `dns` get: where instances find the node's DNS (the instances' firewall lets it through). */
export interface DnsHandle {
  enabled: boolean
  /** the port DNS is served on, at the node's own address */
  port: number
}

declare module '../../../core/plugin.js' {
  interface ServiceHandles {
    dns: DnsHandle
  }
}

/** pause after a zone rebuild, in multiples of what the rebuild took */
const REBUILD_PAUSE_FACTOR = 4

/**
 * DNS on the node (service `dns`): answers instances on the bridge and peers on formnet at the
 * node's own address (the first of its subnet, held by both the bridge and the formnet interface),
 * `.fog` names from state, everything else forwarded to the host's resolvers. The address may not
 * exist yet (the bridge comes with the first instance, formnet may be off): the service binds as
 * soon as it does.
 */
export async function startDns(ctx: ServiceContext<NetConfig, 'state'>): Promise<RunningService<DnsHandle>> {
  const config = ctx.config
  const state = ctx.use('state')
  const log = ctx.log
  const handle: DnsHandle = { enabled: config.dns === 'on', port: config.dns_port }
  if (config.dns === 'off') return { handle, info: () => ({ dns: 'off' }) }

  const abort = new AbortController()
  // The owners' names change one record at a time, each change applied as it comes; the zone's
  // instance names are rebuilt from state. Changes heard while the names are first read are
  // replayed after, in order, so the read cannot undo a newer change.
  let own: OwnerNames | undefined
  const heard: { key: string; value: unknown }[] = []
  ctx.health.loop('watch of dns', async () => {
    for await (const c of state.watch('dns', '', abort.signal)) {
      const change = { key: c.key, value: c.deleted ? undefined : c.value }
      if (own) own.set(change.key, change.value)
      else heard.push(change)
    }
  })
  own = OwnerNames.from(await state.all('dns'))
  for (const c of heard.splice(0)) own.set(c.key, c.value)
  const names = own

  let zone = new Zone(names)
  let dirty = true
  let building: Promise<void> | undefined
  const rebuild = async () => {
    dirty = false
    const [instances, peers] = await Promise.all([state.all('instances'), state.all('peers')])
    zone = Zone.build({ instances, peers }, names)
  }
  const refresh = () => {
    dirty = true
    building ??= (async () => {
      // changes come in bursts (a ship writes many records): one rebuild per burst
      await new Promise((r) => setTimeout(r, 100))
      while (dirty) {
        const started = performance.now()
        await rebuild().then(
          () => ctx.health.recovered('zone'),
          (error: Error) => ctx.health.degraded('zone', `could not read the DNS names from state: ${error.message}`),
        )
        // A rebuild reads every instance record from the store. Under a steady stream of changes
        // (a bulk write of 10,000 names, when they were rebuilt too) back-to-back rebuilds took a
        // tenth of the node's time: pausing 4x the rebuild's cost keeps it under a fifth.
        if (dirty) await new Promise((r) => setTimeout(r, Math.max(100, REBUILD_PAUSE_FACTOR * (performance.now() - started))))
      }
      building = undefined
    })()
  }
  refresh()
  for (const c of ['instances', 'peers']) {
    ctx.health.loop(`watch of ${c}`, async () => {
      for await (const _ of state.watch(c, '', abort.signal)) refresh()
    })
  }

  const address = async (): Promise<string | undefined> => {
    if (config.dns_listen.length) return undefined
    if (config.bridge_subnet) return nodeAddress(parseCidr(config.bridge_subnet))
    const key = subnetOf(state.address, claimsOf(await state.all('cidrs')))
    return key ? nodeAddress(parseCidr(key.replace('_', '/'))) : undefined
  }
  const allow = [config.formnet_cidr, '127.0.0.0/8', ...(config.bridge_subnet ? [formatCidr(parseCidr(config.bridge_subnet))] : []), ...config.dns_allow_cidrs]

  let server: DnsServer | undefined
  let lastError = ''
  const tryStart = async () => {
    if (server || abort.signal.aborted) return
    const listen = config.dns_listen.length ? config.dns_listen.map(hostPort) : await address().then((a) => (a ? [{ host: a, port: config.dns_port }] : []))
    if (!listen.length) return
    const own = listen.map((l) => l.host)
    let upstreams = config.dns_upstreams
    if (!upstreams.length) for (const f of RESOLV_CONF_FILES) upstreams = upstreams.length ? upstreams : resolversFrom(await readFile(f, 'utf8').catch(() => ''), own)
    const s = new DnsServer({
      listen,
      allow,
      upstreams,
      zone: () => zone,
      limits: {
        maxRequestBytes: config.dns_max_request_bytes,
        cacheEntries: config.dns_cache_entries,
        cacheMaxTtlS: config.dns_cache_max_ttl_s,
        ratePerS: config.dns_rate_per_s,
        rateBurst: config.dns_rate_burst,
        maxPending: config.dns_max_pending,
        upstreamTimeoutMs: config.dns_upstream_timeout_ms,
        tcpConnections: config.dns_tcp_connections,
        tcpIdleMs: config.dns_tcp_idle_ms,
      },
      log,
    })
    try {
      await s.start()
      server = s
      log.info('DNS serving', { listen: listen.map((l) => `${l.host}:${l.port}`), upstreams, allow })
    } catch (error) {
      const message = (error as Error).message
      // the address appears with the bridge or formnet: say why once, and keep trying
      if (message !== lastError) log.info('DNS not serving yet', { listen: listen.map((l) => `${l.host}:${l.port}`), reason: message })
      lastError = message
    }
  }
  await tryStart()
  const timer = setInterval(() => void tryStart(), 2000)
  timer.unref()

  return {
    handle,
    info: () => ({
      listen: server ? server.addresses().map((a) => `${a.address}:${a.port}`).join(',') : 'waiting for its address',
      ...(server ? { queries: server.counters.queries, cached: server.cacheSize, counters: server.counters } : {}),
    }),
    stop: async () => {
      abort.abort()
      clearInterval(timer)
      await server?.stop()
    },
  }
}

function hostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':')
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) }
}
