import { rm } from 'node:fs/promises'
import { writeSecretFile } from '../../../../core/files.js'
import type { Logger } from '../../../../core/log.js'
import { ip, setAddress } from '../ip.js'
import { openDevice } from '../wireguard/device.js'
import { planPeers, type DesiredPeer } from './reconcile.js'

/** What `form manage formnet-up` keeps running on a developer's machine. */
export interface DeveloperInterfaceOptions {
  interface: string
  driver: 'auto' | 'kernel' | 'userspace'
  /** this machine's formnet address (a /32) and the whole formnet, routed through the interface */
  address: string
  cidr: string
  privateKey: string
  /** the nodes to peer with, from the node that admitted this developer */
  fetchPeers(): Promise<DesiredPeer[]>
  intervalMs: number
  /** the wireguard-go pid, so a leftover from a killed run is stopped */
  wireguardPidFile: string
  /** written after each successful sync: what `form net status` and `formnet-up --detach` read */
  statusFile: string
  log: Logger
  signal: AbortSignal
}

const MTU = 1420

/**
 * Brings the developer's interface up and keeps its peers equal to the node list until `signal`
 * aborts, then removes the interface. A node that cannot be reached leaves the peers as they are.
 */
export async function runDeveloperInterface(o: DeveloperInterfaceOptions): Promise<void> {
  const device = await openDevice({
    name: o.interface,
    driver: o.driver,
    pidFile: o.wireguardPidFile,
    log: o.log,
    onUp: async (d) => {
      await d.set({ privateKey: o.privateKey })
      await setAddress(d.name, `${o.address}/32`, MTU)
      await ip(['route', 'replace', o.cidr, 'dev', d.name])
    },
  })
  o.log.info('formnet interface up', { interface: o.interface, address: o.address })
  let failures = 0
  try {
    while (!o.signal.aborted) {
      try {
        const desired = await o.fetchPeers()
        const changes = planPeers(await device.get(), desired)
        if (changes.length) {
          await device.set({ peers: changes })
          o.log.info('formnet peers updated', { peers: desired.length, changed: changes.length })
        }
        // A wireguard-go restart drops the route with the interface; put it back if it went.
        await ip(['route', 'replace', o.cidr, 'dev', device.name])
        failures = 0
        await writeSecretFile(o.statusFile, JSON.stringify({ pid: process.pid, interface: o.interface, address: o.address, peers: desired.length, syncedAt: Date.now() }) + '\n', true)
      } catch (error) {
        if (failures++ % 10 === 0) o.log.warn('could not sync formnet peers; keeping the current ones', { error: (error as Error).message })
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, o.intervalMs)
        o.signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true })
      })
    }
  } finally {
    await device.close()
    await rm(o.statusFile, { force: true })
    o.log.info('formnet interface down', { interface: o.interface })
  }
}
