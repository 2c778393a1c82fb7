import type { Logger } from '../log.js'
import type { ServiceHealth, ServiceState } from '../plugin.js'

/** What `form node status` shows of one service. */
export interface ServiceStatusView {
  state: ServiceState
  /** why it is degraded or failed */
  reason?: string
}

/**
 * The status of one service as the host and the service's own loops see it. A service is degraded
 * while any of its parts is: a loop that died stays reported until the service says it recovered,
 * so an operator sees a dead watch that a log line alone would hide.
 */
export class ServiceStatus implements ServiceHealth {
  private phase: 'starting' | 'running' | 'failed' | 'stopping' | 'stopped' = 'starting'
  private failure?: string
  /** part → why it does not work */
  private readonly broken = new Map<string, string>()

  constructor(private readonly log: Logger) {}

  degraded(part: string, reason: string): void {
    if (this.phase === 'stopping' || this.phase === 'stopped') return
    if (this.broken.get(part) === reason) return
    this.broken.set(part, reason)
    this.log.warn('service degraded', { part, reason })
  }

  recovered(part: string): void {
    if (!this.broken.delete(part)) return
    this.log.info('service recovered', { part })
  }

  loop(part: string, body: () => Promise<void>): void {
    // a loop that ends while its service stops has done its job; any other end leaves the part dead
    let ran: Promise<void>
    try {
      ran = body()
    } catch (error) {
      ran = Promise.reject(error)
    }
    void ran.then(
      () => this.degraded(part, `${part} ended`),
      (error: unknown) => this.degraded(part, `${part} failed: ${(error as Error)?.message ?? String(error)}`),
    )
  }

  running(): void {
    this.phase = 'running'
  }

  /** A service whose start failed and that the node runs without (a third-party plugin's). */
  failed(reason: string): void {
    this.phase = 'failed'
    this.failure = reason
  }

  stopping(): void {
    this.phase = 'stopping'
  }

  stopped(): void {
    this.phase = 'stopped'
    this.broken.clear()
  }

  view(): ServiceStatusView {
    if (this.phase === 'failed') return { state: 'failed', reason: this.failure }
    if (this.phase === 'stopping' || this.phase === 'stopped') return { state: 'stopped' }
    if (this.broken.size) return { state: 'degraded', reason: [...this.broken.values()].join('; ') }
    return { state: this.phase }
  }
}
