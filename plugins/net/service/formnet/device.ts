import type { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import { setAddress } from '../../lib/ip.js'
import { openDevice, type DeviceOptions, type WireGuardDevice } from '../../lib/wireguard/device.js'
import { FORMNET_MTU } from './reconciler.js'

/** why a machine cannot run WireGuard: with formnet = "auto" the node then runs without formnet */
const UNAVAILABLE = ['FORMNET_UNAVAILABLE', 'FORMNET_NO_WIREGUARD', 'FORMNET_NO_TUN']

export interface FormnetDeviceOptions {
  config: { formnet: string; formnet_interface: string; formnet_driver: DeviceOptions['driver']; formnet_port: number }
  pidFile: string
  privateKey: string
  /** this node's formnet address, put on the interface as a /32 */
  address(): string
  /** after a restart of wireguard-go: the device is back without its peers */
  onRestart(): void
  log: Logger
  /** tests pass their own */
  open?: (options: DeviceOptions) => Promise<WireGuardDevice>
  setAddress?: typeof setAddress
}

/**
 * Opens the formnet WireGuard device and keeps its key, port and address set each time it comes up.
 * Returns no device, and the reason, when formnet is off, or is "auto" and this machine cannot run
 * WireGuard; with formnet = "on" that is an error.
 */
export async function openFormnetDevice(o: FormnetDeviceOptions): Promise<{ device?: WireGuardDevice; disabledReason?: string }> {
  const { config, log } = o
  if (config.formnet === 'off') return { disabledReason: 'formnet = "off" in the operator config' }
  const open = o.open ?? openDevice
  const assign = o.setAddress ?? setAddress
  let device: WireGuardDevice | undefined
  try {
    device = await open({
      name: config.formnet_interface,
      driver: config.formnet_driver,
      pidFile: o.pidFile,
      log,
      onUp: async (d) => {
        await d.set({ privateKey: o.privateKey, listenPort: config.formnet_port })
        await assign(d.name, `${o.address()}/32`, FORMNET_MTU)
        // after a restart of wireguard-go the peers are gone too
        if (device) o.onRestart()
      },
    })
    return { device }
  } catch (error) {
    const code = (error as FormError).code
    if (config.formnet === 'on' || !UNAVAILABLE.includes(code)) throw error
    const disabledReason = (error as Error).message
    log.warn('formnet is disabled on this node', { reason: disabledReason })
    return { disabledReason }
  }
}
