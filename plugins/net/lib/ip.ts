import { FormError } from '../../../core/errors.js'

/**
 * iproute2, the one way to set addresses, links and routes: Node has no netlink. Arguments are
 * passed as argv, never through a shell.
 */
export async function ip(args: string[], options: { allowFailure?: boolean } = {}): Promise<string> {
  const { execa } = await import('execa')
  const r = await execa('ip', args, { reject: false, all: true })
  if (r.exitCode !== 0 && !options.allowFailure) {
    throw new FormError('NET_IP_FAILED', `ip ${args.join(' ')} failed: ${(r.all ?? '').trim() || `exit ${r.exitCode}`}`, {
      hint: 'formnet needs root (CAP_NET_ADMIN) and iproute2',
    })
  }
  return r.stdout
}

/** The IPv4 addresses (CIDR form) on an interface, or [] when it does not exist. */
export async function addressesOf(ifname: string): Promise<string[]> {
  const out = await ip(['-j', '-4', 'addr', 'show', 'dev', ifname], { allowFailure: true })
  try {
    const links = JSON.parse(out || '[]') as { addr_info?: { local: string; prefixlen: number }[] }[]
    return links.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`))
  } catch {
    return []
  }
}

/** Gives an interface exactly this address (others removed) and brings it up. */
export async function setAddress(ifname: string, cidr: string, mtu?: number): Promise<void> {
  const current = await addressesOf(ifname)
  for (const a of current) if (a !== cidr) await ip(['addr', 'del', a, 'dev', ifname])
  if (!current.includes(cidr)) await ip(['addr', 'add', cidr, 'dev', ifname])
  if (mtu) await ip(['link', 'set', 'dev', ifname, 'mtu', String(mtu)])
  await ip(['link', 'set', 'dev', ifname, 'up'])
}

/** The destinations routed through an interface, in CIDR form (`ip` writes a host route as a bare address). */
export async function routesOf(ifname: string): Promise<string[]> {
  const out = await ip(['-j', '-4', 'route', 'show', 'dev', ifname], { allowFailure: true })
  try {
    return (JSON.parse(out || '[]') as { dst: string }[]).map((r) => (r.dst.includes('/') || r.dst === 'default' ? r.dst : `${r.dst}/32`))
  } catch {
    return []
  }
}

/** Makes the routes through an interface exactly `desired` (CIDRs): adds what is missing, removes the rest. */
export async function syncRoutes(ifname: string, desired: string[]): Promise<{ added: string[]; removed: string[] }> {
  const current = new Set(await routesOf(ifname))
  const want = new Set(desired)
  const added = [...want].filter((r) => !current.has(r))
  const removed = [...current].filter((r) => !want.has(r))
  for (const r of added) await ip(['route', 'replace', r, 'dev', ifname])
  for (const r of removed) await ip(['route', 'del', r, 'dev', ifname], { allowFailure: true })
  return { added, removed }
}

/** The kind of a link ('wireguard', 'tun', 'bridge', ...), or undefined when there is no such link. */
export async function linkKind(name: string): Promise<string | undefined> {
  try {
    const [link] = JSON.parse((await ip(['-d', '-j', 'link', 'show', 'dev', name], { allowFailure: true })) || '[]') as { linkinfo?: { info_kind?: string } }[]
    return link ? (link.linkinfo?.info_kind ?? 'unknown') : undefined
  } catch {
    return undefined
  }
}
