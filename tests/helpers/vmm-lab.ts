import { spawnSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient, type NodeClient } from '../../core/client.js'
import type { Signer } from '../../core/auth/sign.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { writeDesiredRecord } from '../../plugins/instances/lib/views.js'
import { parseManifest } from '../../plugins/node/index.js'
import type { DesiredInstance, ObservedInstance } from '../../plugins/instances/index.js'
import { form, makeEnv, startNode, until, type FormEnv, type NodeProcess, type Result } from './form.js'
import { shareCachedBase } from './builder.js'
import { putGuestImage, type GuestImage } from './guest-image.js'
import { NetnsLab } from './netns.js'

/**
 * A node that runs instances, inside its own network namespace (its bridge and taps exist only
 * there), with a developer wallet that owns them. Everything goes away in the test's teardown,
 * VMs included: the lab kills every process left in its namespaces.
 */

interface Scope {
  testdir(): string
  teardown(fn: () => unknown): void
}

export interface VmmNodeOptions {
  /** [net] bridge_subnet; empty: the subnet the node claims in state */
  bridgeSubnet?: string
  nat?: boolean
  resources?: { vcpus: number; memory_mb: number; disk_gb: number }
  hypervisor?: 'auto' | 'qemu' | 'cloud-hypervisor'
  /**
   * Build the guest image with `form pack build` on the lab's node (Debian from the builder, whose
   * entrypoint prints `boots=<n> ip=<address>` on the console) instead of the busybox test guest.
   */
  builtImage?: boolean
  /** the public key the built image's user `ada` accepts (default: a placeholder no one holds) */
  sshPublicKey?: string
  /** more lines for the node's [net] section */
  net?: string[]
}

/** The lab's Formfile: no INSTALL (the node's namespace has no internet; the base is cached). */
const GUEST_FORMFILE = `NAME vmm-guest
USER username:ada lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIVmmLabKeyVmmLabKeyVmmLabKeyVmmLabKeyVmm0 ada@lab"
COPY boot-report.sh /usr/local/bin/boot-report
RUN chmod 755 /usr/local/bin/boot-report
ENTRYPOINT ["/usr/local/bin/boot-report"]
`

/** Counts boots on the disk and tells the console, like the busybox test guest. */
const BOOT_REPORT = `#!/bin/sh
n=$(( $(cat /var/lib/boots 2>/dev/null || echo 0) + 1 ))
echo "$n" > /var/lib/boots
sync
echo "form-vmm-guest: boots=$n ip=$(ip -4 -o addr show scope global | awk '{print $4}' | head -n 1)" > /dev/ttyS0
exec sleep infinity
`

export class VmmLab {
  readonly net: NetnsLab
  readonly ns: string
  readonly bridge: string
  env!: FormEnv
  node!: NodeProcess
  owner!: string
  signer!: Signer
  image!: GuestImage
  buildId = 'b'.repeat(12) + Date.now().toString(16)

  constructor(
    private readonly t: Scope,
    private readonly options: VmmNodeOptions = {},
  ) {
    this.net = new NetnsLab(t)
    this.ns = this.net.namespace('fvm')
    this.bridge = this.net.name('fbr')
  }

  async setUp(): Promise<void> {
    const env = await makeEnv(this.t, { FORM_PASSWORD: 'correct horse battery staple' })
    this.env = env
    this.ok(await this.form(['kit', 'init', '--yes', '--no-join-formnet']))
    const passwordFile = join(env.dir, 'password')
    await writeFile(passwordFile, 'correct horse battery staple\n')
    this.signer = await loadSigner({ configDir: env.configDir, passwordFile })
    this.owner = this.signer.address
    const res = this.options.resources ?? { vcpus: 2, memory_mb: 2048, disk_gb: 10 }
    const config = join(env.dir, 'operator.toml')
    await writeFile(
      config,
      [
        '[node]',
        `hypervisor = "${this.options.hypervisor ?? 'auto'}"`,
        `nat = ${this.options.nat ?? false}`,
        'shutdown_timeout_s = 10',
        'boot_timeout_s = 300',
        '[node.resources]',
        `vcpus = ${res.vcpus}`,
        `memory_mb = ${res.memory_mb}`,
        `disk_gb = ${res.disk_gb}`,
        '[net]',
        `bridge_name = "${this.bridge}"`,
        `bridge_subnet = "${this.options.bridgeSubnet ?? ''}"`,
        ...(this.options.net ?? []),
      ].join('\n') + '\n',
    )
    env.env.FORM_OPERATOR_CONFIG = config
    if (!this.options.builtImage) {
      this.image = await putGuestImage(String(env.env.FORM_DATA_DIR), { owner: this.owner, buildId: this.buildId })
      await this.start()
      return
    }
    await shareCachedBase(env)
    await this.start()
    const project = join(env.dir, 'guest')
    await mkdir(project, { recursive: true })
    const formfile = this.options.sshPublicKey ? GUEST_FORMFILE.replace(/ssh-ed25519 \S+ ada@lab/, this.options.sshPublicKey.trim()) : GUEST_FORMFILE
    await writeFile(join(project, 'Formfile'), formfile)
    await writeFile(join(project, 'boot-report.sh'), BOOT_REPORT)
    const built = JSON.parse(this.ok(await form(this.env, ['pack', 'build', '--json'], { netns: this.ns, timeoutMs: 600_000, cwd: project })).stdout)
    this.buildId = built.buildId
    const manifest = parseManifest(await readFile(join(String(env.env.FORM_DATA_DIR), 'blobs', 'sha256', built.status.image)))
    this.image = { image: built.status.image, manifest }
  }

  async start(): Promise<void> {
    this.node = await startNode(this.env, [], 60_000, this.ns)
    const node = this.node
    this.t.teardown(() => node.stop('SIGKILL'))
  }

  get client(): NodeClient {
    return createClient({ socket: this.env.socket })
  }

  async nodeAddress(): Promise<string> {
    return (await this.client.get<{ address: string }>('/v1/state/info')).address
  }

  /** Creates an instance the way `form pack ship` will: a desired record signed by the owner. */
  async createInstance(id: string, fields: Partial<DesiredInstance> = {}): Promise<void> {
    const desired: DesiredInstance = { buildId: this.buildId, image: this.image.image, node: await this.nodeAddress(), state: 'running', name: id, vcpus: 1, memoryMb: 256, diskGb: 1, ...fields }
    await writeDesiredRecord(this.client, this.signer, id, desired)
  }

  async observed(id: string): Promise<ObservedInstance | undefined> {
    const node = await this.nodeAddress()
    const rec = await this.client.get<{ value: ObservedInstance }>(`/v1/state/records/instances/${this.owner}/${id}/observed/${node}`).catch(() => undefined)
    return rec?.value
  }

  /**
   * Waits until the instance's observed state is `state` and `also` holds (failing fast when it
   * fails instead).
   */
  async until(id: string, state: ObservedInstance['state'], also: (o: ObservedInstance) => boolean = () => true, timeoutMs = 240_000): Promise<ObservedInstance> {
    return until(
      `instance ${id} to be ${state}`,
      async () => {
        const o = await this.observed(id)
        if (o?.state === 'failed' && state !== 'failed') throw Object.assign(new Error(`instance ${id} failed: ${o.reason}\n${(await this.form(['manage', 'logs', id, '--bytes', '3000']).catch(() => undefined))?.stdout ?? ''}`), { fatal: true })
        return o?.state === state && also(o) ? o : undefined
      },
      timeoutMs,
    ).catch(async (error) => {
      throw new Error(`${(error as Error).message}; last observed: ${JSON.stringify(await this.observed(id))}\nnode output:\n${this.node.output().slice(-3000)}`)
    })
  }

  form(args: string[]): Promise<Result> {
    return form(this.env, args, { netns: this.ns, timeoutMs: 300_000 })
  }

  ok(r: Result): Result {
    if (r.code !== 0) throw new Error(`form exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    return r
  }

  /** One ping from the node's side of the bridge. */
  ping(address: string): boolean {
    return spawnSync('ip', ['netns', 'exec', this.ns, 'ping', '-c', '1', '-W', '2', address]).status === 0
  }

  link(name: string): boolean {
    return spawnSync('ip', ['-n', this.ns, 'link', 'show', 'dev', name]).status === 0
  }

  iptables(table: string): string {
    return spawnSync('ip', ['netns', 'exec', this.ns, 'iptables', '-w', '-t', table, '-S'], { encoding: 'utf8' }).stdout
  }
}
