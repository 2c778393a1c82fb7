import * as t from 'typanion'
import { kinds, s } from '../../../core/settings.js'

// Apart from index.ts, which registers the commands: `node start`'s flags read these too.
const nonEmpty = t.cascade(t.isString(), t.hasMinLength(1))

export const nodeSettings = {
  data_dir: s.optionalString("the node's data directory: state, keys, images, logs (a flag or FORM_DATA_DIR wins)", { example: '/var/lib/form' }),
  hypervisor: s.oneOf(['auto', 'qemu', 'cloud-hypervisor'] as const, 'auto', 'the hypervisor: auto uses Cloud Hypervisor when it and KVM are usable, else QEMU'),
  api_listen: s.list(kinds.hostPort[0], kinds.hostPort[1], [], 'host:port for remote callers (developers\' form manage join), e.g. ["0.0.0.0:3004"]'),
  // instances reach the internet by default (the seed's promise); [node] nat = false turns it off
  nat: s.bool(true, 'instances reach the internet through this node (iptables masquerade); the bridge is [net] bridge_name. Always, NAT or not: instances reach this node only for DNS and ICMP, and no private range (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16) but formnet and their own subnet'),
  instance_allow_cidrs: s.list(kinds.cidr[0], kinds.cidr[1], [], 'ranges instances may reach anyway, e.g. ["192.168.1.0/24"] for a LAN service'),
  qemu: s.string('qemu-system-x86_64', 'QEMU binary (KVM when usable, else TCG emulation)', { check: nonEmpty }),
  cloud_hypervisor: s.string('cloud-hypervisor', 'used by hypervisor = "auto" when it and KVM are usable', { check: nonEmpty }),
  shutdown_timeout_s: s.int(15, 'ACPI power-off grace before a VM is stopped hard'),
  boot_timeout_s: s.int(600, 'a guest must print FORM-READY on its console within this'),
  // the defaults here serve only where the host is not measured (`form node start` measures it: offeredResources)
  resources: s.table(
    "what this node offers to instances; a key left out is measured on the host when the node starts: its CPUs, its memory and the free disk of the data directory's filesystem, each minus [node.reserve] (the node's log says what it offers; `form state list nodes` too)",
    {
      vcpus: s.int(2, 'vCPUs offered', { example: 2 }),
      memory_mb: s.int(4096, 'memory offered, MiB', { example: 4096 }),
      disk_gb: s.int(50, 'disk offered, GB', { example: 50 }),
    },
  ),
  // vCPUs are time-shared (a busy host slows, nothing fails), so none is kept back by default
  reserve: s.table('kept back from the measured resources for the host and the node', {
    vcpus: s.int(0, 'vCPUs are time-shared: a busy host slows down, nothing fails', { min: 0 }),
    memory_mb: s.int(1024, 'memory kept back, MiB', { min: 0 }),
    disk_gb: s.int(10, 'disk kept back, GB', { min: 0 }),
  }),
}
