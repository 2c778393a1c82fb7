// From `form pack ship` to every replica reachable (SSH and HTTP answered over formnet), and where
// the time goes: scheduling (the CLI reading state and placing), image transfer (a node without the
// image fetching kernel, initrd and disk over /form/blob/1.0.0), the disk copy, the boot to
// FORM-READY, and the rest (records replicating, the controller reacting, sshd and the app
// answering). Two nodes (one per replica; the journey test's third node is there for its failover,
// which this bench does not do) and a developer in network namespaces, as in tests/e2e/journey.test.ts.
// Round 1 is cold (one chosen node must fetch the image); then the replicas are deleted and
// shipped again (every chosen node holds the image): the baseline of the ratio.
// Round 3 is a rollout: the app changed (a new GREETING), built again and shipped over the two
// running replicas (--strategy rolling, one at a time): the time from `form pack ship` to both
// replicas healthy on the new image, and the longest interval in which no replica was healthy (by
// its node's health report) or answered HTTP (polled from the developer's side), target none.
// The machine may be shared and loaded (2 cores, other VMs): node start-up, SSH and HTTP waits are
// generous, and the load average is recorded with the figures (progress goes to stderr).
// Run: npm run build && npx tsx bench/ship.ts   (root, qemu-system-x86, wireguard-go, mmdebstrap, ssh, curl)
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createClient } from '../core/client.js'
import { loadInstanceViews } from '../plugins/instances/index.js'
import { JourneyLab, type Replica } from '../tests/helpers/journey-lab.js'
import { benchScope, recordResults } from './results.js'

const { scope, close } = benchScope('ship')

interface Shipped {
  scheduledMs: number
  replicas: (Replica & { timings?: { imageMs?: number; diskMs?: number; bootMs?: number } })[]
}

const NODES = 2
/** a node's start, an instance's SSH or HTTP: minutes apart from idle on a loaded 2-core machine */
const SLOW_MS = 600_000
const started = performance.now()
const load = () => loadavg()[0]
const loads: number[] = []
const log = (what: string) => {
  loads.push(load())
  console.error(`[ship bench ${new Date().toISOString().slice(11, 19)} +${((performance.now() - started) / 1000).toFixed(0)} s, load ${load().toFixed(1)}] ${what}`)
}

const j = new JourneyLab(scope)
try {
  log(`starting ${NODES} nodes (node 1 builds; a cold Debian base is built first if the machine has none)`)
  await j.startNodes({ count: NODES, startTimeoutMs: SLOW_MS })
  log('nodes up; adding the developer')
  await j.addDeveloper()
  j.lab.ok(await j.lab.form(j.dev, ['pack', 'init', '--template', 'hello-web', '--dir', j.app, '--ssh-key', `${j.key}.pub`]))
  log('building hello-web')
  const built = JSON.parse(j.lab.ok(await j.devForm(['pack', 'build', '--json'], 1_200_000)).stdout)
  const buildId: string = built.buildId

  const round = async (name: string) => {
    log(`${name}: form pack ship --replicas 2`)
    const loadAtStart = load()
    const t0 = performance.now()
    const shipped: Shipped = JSON.parse(j.lab.ok(await j.devForm(['pack', 'ship', '--replicas', '2', '--json'], 1_500_000)).stdout)
    const runningMs = performance.now() - t0
    const reachableMs: number[] = []
    log(`${name}: ship returned after ${(runningMs / 1000).toFixed(1)} s; waiting for SSH and HTTP`)
    for (const r of await j.replicas(buildId)) {
      const ssh = await j.ssh(r, 'true', SLOW_MS)
      const http = await j.http(r, SLOW_MS)
      if (ssh.status !== 0 || http.status !== 0) throw new Error(`${r.id} is not reachable: ${ssh.stderr} ${http.stderr}`)
      reachableMs.push(performance.now() - t0)
    }
    return { shipped, runningMs, totalMs: Math.max(...reachableMs), load: [loadAtStart, load()] }
  }

  const cold = await round('round 1 (cold)')
  log('deleting the replicas')
  j.lab.ok(await j.devForm(['manage', 'delete', '--build-id', buildId, '--yes', '--wait'], SLOW_MS))
  const warm = await round('round 2 (warm)')

  // round 3: a new image rolled over the running replicas
  const formfile = join(j.app, 'Formfile')
  await writeFile(formfile, (await readFile(formfile, 'utf8')).replace('GREETING="hello from formation"', 'GREETING="hello from the rollout"'))
  log('round 3: building the new image')
  const rebuilt = JSON.parse(j.lab.ok(await j.devForm(['pack', 'build', '--json'], 1_200_000)).stdout)
  if (rebuilt.buildId !== buildId || rebuilt.status.image === built.status.image) throw new Error('the rebuild did not give a new image of the same build')
  const owner: string = JSON.parse(j.lab.ok(await j.devForm(['pack', 'status', '--json'])).stdout).owner
  const { listInstances } = await loadInstanceViews()
  const state = createClient({ socket: j.nodes[0].env.socket })
  const before = await j.replicas(buildId)
  const run = promisify(execFile)
  const samples: { at: number; healthy: number; healthyNew: number; http: number; load: number }[] = []
  // a replaced replica may come back on another address: poll each one where its node last reported it
  const ips = new Map(before.map((r) => [r.id, r.ip]))
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const [views, answers] = await Promise.all([
        listInstances(state, owner).catch(() => undefined),
        Promise.all([...ips.values()].map((ip) => run('ip', ['netns', 'exec', j.dev.ns, 'curl', '-sS', '--max-time', '2', `http://${ip}:8080/`]).then((x) => (x.stdout ? 1 : 0), () => 0))),
      ])
      if (views) {
        for (const v of views) if (v.observed?.ip && ips.has(v.id)) ips.set(v.id, v.observed.ip)
        const healthy = views.filter((v) => v.observed?.state === 'running' && v.observed.health?.state === 'healthy')
        samples.push({ at: performance.now(), healthy: healthy.length, healthyNew: healthy.filter((v) => v.observed!.image === rebuilt.status.image).length, http: answers.reduce((a, b) => a + b, 0), load: load() })
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  })()
  log('round 3: form pack ship --replicas 2 of the new image over the running replicas')
  const t3 = performance.now()
  const rolled = JSON.parse(j.lab.ok(await j.devForm(['pack', 'ship', '--replicas', '2', '--json'], 1_500_000)).stdout)
  const shipMs = performance.now() - t3
  log(`round 3: ship returned after ${(shipMs / 1000).toFixed(1)} s`)
  await new Promise((r) => setTimeout(r, 2000))
  sampling = false
  await sampler
  const allHealthyNewMs = (samples.find((x) => x.at >= t3 && x.healthyNew === 2)?.at ?? NaN) - t3
  /** The longest stretch between two samples where `ok` held, with none in between where it did. */
  const longestGap = (ok: (x: (typeof samples)[number]) => boolean) => {
    let last: number | undefined
    let worst = 0
    let down = false
    for (const x of samples) {
      if (ok(x)) {
        if (down && last !== undefined) worst = Math.max(worst, x.at - last)
        last = x.at
        down = false
      } else down = true
    }
    return { worst, unresolved: down }
  }
  const healthGap = longestGap((x) => x.healthy > 0)
  const httpGap = longestGap((x) => x.http > 0)
  const during = samples.filter((x) => x.at >= t3).map((x) => x.load)
  const sampleGaps = samples.slice(1).map((x, i) => x.at - samples[i].at)

  const s = (ms: number | undefined) => (ms === undefined ? '–' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`)
  const slowest = (r: Awaited<ReturnType<typeof round>>, k: 'imageMs' | 'diskMs' | 'bootMs') => Math.max(0, ...r.shipped.replicas.map((x) => x.timings?.[k] ?? 0))
  const row = (name: string, r: Awaited<ReturnType<typeof round>>) => {
    const image = slowest(r, 'imageMs')
    const disk = slowest(r, 'diskMs')
    const boot = slowest(r, 'bootMs')
    const rest = r.totalMs - r.shipped.scheduledMs - image - disk - boot
    return `| ${name} | ${s(r.totalMs)} | ${s(r.shipped.scheduledMs)} | ${s(image)} (${((image / r.totalMs) * 100).toFixed(0)} %) | ${s(disk)} | ${s(boot)} (${((boot / r.totalMs) * 100).toFixed(0)} %) | ${s(rest)} |`
  }
  const body = [
    `Two nodes (one per replica) and a developer in network namespaces, QEMU ${process.env.FORM_BENCH_ACCEL ?? 'TCG (no KVM)'}, the hello-web template (Debian bookworm, DISK 5),`,
    '`form pack ship --replicas 2`, timed from the command to SSH and HTTP answering on both replicas over formnet.',
    'Image, disk and boot are the slowest replica\'s (they overlap between replicas; the parts do not add up exactly).',
    '',
    '| round | ship → all reachable | scheduling | image transfer | disk copy | boot to FORM-READY | rest |',
    '|---|---|---|---|---|---|---|',
    row('cold: one node fetches the image', cold),
    row('warm: both nodes hold the image', warm),
    '',
    `Ratio cold / warm: **${(cold.totalMs / warm.totalMs).toFixed(2)}** (the image transfer is the difference).`,
    '',
    `Rollout (round 3): the GREETING changed, built again, \`form pack ship --replicas 2\` over the two running replicas (rolling, one at a time). Health (the nodes' reports, read from node 1) and HTTP (curl from the developer's namespace to each replica) sampled every ~250 ms plus the time of a read: ${samples.length} samples, ${s(Math.max(0, ...sampleGaps))} between two samples at most (a gap shorter than that cannot be seen).`,
    '',
    '| ship of a new image → both replicas healthy on it | the ship command returned | longest interval without a healthy replica | longest interval without an HTTP answer |',
    '|---|---|---|---|',
    `| ${s(allHealthyNewMs)} | ${s(shipMs)} (steps: ${rolled.steps.map((x: { replicas: string[]; ms?: number }) => `${x.replicas.join(', ')} ${s(x.ms)}`).join('; ')}) | ${healthGap.worst ? s(healthGap.worst) : 'none'}${healthGap.unresolved ? ' (still none at the end)' : ''} | ${httpGap.worst ? s(httpGap.worst) : 'none'}${httpGap.unresolved ? ' (still none at the end)' : ''} |`,
    '',
    `Load average (1 min) during the rollout: ${during.length ? `${Math.min(...during).toFixed(1)}–${Math.max(...during).toFixed(1)}, mean ${(during.reduce((a, b) => a + b, 0) / during.length).toFixed(1)}` : '–'}; at the start and end of round 1 ${cold.load.map((x) => x.toFixed(1)).join(' / ')}, round 2 ${warm.load.map((x) => x.toFixed(1)).join(' / ')}; over the whole run ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}. Absolute times grow with the load; the cold/warm ratio and the gaps are what compare.`,
    '',
    `Per replica (cold): ${cold.shipped.replicas.map((r) => `${r.id} image ${s(r.timings?.imageMs)}, disk ${s(r.timings?.diskMs)}, boot ${s(r.timings?.bootMs)}`).join('; ')}.`,
  ].join('\n')
  console.log(body)
  recordResults('Ship: form pack ship to every replica reachable (bench/ship.ts)', body)
} finally {
  await close()
}
