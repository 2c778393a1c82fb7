// Image builder timings on the VM builder (the same code the node's `builder` service runs: every
// step inside a throwaway QEMU VM), per round on a fresh step cache, the Debian base already cached
// (its cold mmdebstrap run is a one-off per machine):
// (a) cold build: every step runs in the build VM;
// (b) unchanged rebuild: the image of the identical build is reused (no VM boots);
// (c) unchanged rebuild without that shortcut: every step's layer reused, the VM boots only to finish the image;
// (d) rebuild after changing the file of the last COPY: the steps before it come from their layers, it and the rest run.
// Run: npm run build && npx tsx bench/builder.ts   (root, mmdebstrap, qemu-system-x86, qemu-utils, iptables, network for apt)
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from '../plugins/net/lib/p2p/blobs.js'
import { prepareVmBase } from '../plugins/pack/lib/builder/base.js'
import { buildImage, type BuildResult } from '../plugins/pack/lib/builder/build.js'
import { parseFormfile } from '../plugins/pack/lib/formfile/index.js'
import { packDirectory } from '../tests/helpers/builder.js'
import { CACHE } from '../tests/helpers/guest-image.js'
import { benchScope, median, recordResults } from './results.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1)
/** The chroot builder's cold build, the last figure in bench/RESULTS.md before the VM builder (2026-11-24). */
const CHROOT_COLD_MS = 47946
const { scope, close } = benchScope('builder')

const FORMFILE = `NAME bench-build
USER username:ada lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyBenchKeyBenchKeyBenchKeyBenchKey00 ada@bench"
INSTALL hello
WORKDIR /srv/app
COPY app /srv/app/
RUN echo built > /srv/app/built.txt
ENV GREETING=hello
COPY config.txt /etc/bench/config.txt
ENTRYPOINT ["/usr/bin/hello"]
`

try {
  const baseCache = join(CACHE, 'builder')
  const probe = scope.testdir()
  await prepareVmBase({ suite: 'bookworm', cacheDir: baseCache }, probe)
  await rm(probe, { recursive: true, force: true })
  const formfile = parseFormfile(FORMFILE).formfile!
  const m = { cold: [] as number[], reused: [] as number[], replayed: [] as number[], lastCopy: [] as number[] }
  let ran = { cold: 0, lastCopy: 0 }
  let accel = '?'
  const parts: Record<string, number[]> = {}
  for (let round = 0; round < ROUNDS; round++) {
    const dir = scope.testdir()
    const ctx = join(dir, 'ctx')
    await mkdir(join(ctx, 'app'), { recursive: true })
    for (let i = 0; i < 20; i++) await writeFile(join(ctx, 'app', `module${i}.py`), `# module ${i}\n${'x = 1\n'.repeat(200)}`)
    await writeFile(join(ctx, 'config.txt'), 'version=1\n')
    const cacheDir = join(dir, 'cache')
    await mkdir(cacheDir, { recursive: true })
    await symlink(join(baseCache, 'base'), join(cacheDir, 'base'))
    const blobs = new BlobStore(join(dir, 'blobs'))
    let n = 0
    const build = async () => {
      const context = await packDirectory(ctx, join(dir, `ctx${n}.tar.gz`))
      const t0 = performance.now()
      const r: BuildResult = await buildImage({ formfile, owner: '0x' + 'a'.repeat(40), buildId: 'b'.repeat(64), context, cacheDir, blobs, suite: 'bookworm', workDir: join(dir, `w${n++}`) })
      return { ms: performance.now() - t0, ran: r.steps.filter((s) => !s.cached).length, reused: r.reused, r }
    }
    const cold = await build()
    accel = cold.r.accel ?? accel
    for (const [k, v] of Object.entries(cold.r.timings ?? {})) (parts[k] ??= []).push(v)
    const reused = await build()
    if (!reused.reused) throw new Error('the unchanged rebuild did not reuse the image')
    for (const f of await readdir(join(cacheDir, 'images'))) await rm(join(cacheDir, 'images', f))
    const replayed = await build()
    await writeFile(join(ctx, 'config.txt'), 'version=2\n')
    const lastCopy = await build()
    m.cold.push(cold.ms)
    m.reused.push(reused.ms)
    m.replayed.push(replayed.ms)
    m.lastCopy.push(lastCopy.ms)
    ran = { cold: cold.ran, lastCopy: lastCopy.ran }
    console.log(`round ${round}: cold ${cold.ms.toFixed(0)} ms ${JSON.stringify(cold.r.timings)}, reused ${reused.ms.toFixed(0)} ms, replayed ${replayed.ms.toFixed(0)} ms (ran ${replayed.ran}), last COPY changed ${lastCopy.ms.toFixed(0)} ms (ran ${lastCopy.ran}) ${JSON.stringify(lastCopy.r.timings)}`)
    await rm(dir, { recursive: true, force: true })
  }
  const c = median(m.cold)
  const row = (what: string, values: number[]) => `| ${what} | ${median(values).toFixed(0)} | ${(median(values) / c).toFixed(4)} |`
  const share = (k: string) => `${k} ${(median(parts[k] ?? [0]) / 1000).toFixed(1)} s (${Math.round((median(parts[k] ?? [0]) / c) * 100)} %)`
  const body = [
    `Median of ${ROUNDS} round(s), each on a fresh step cache; the Debian bookworm base (minbase + systemd, sshd, sudo, kernel) already cached as the build VM's base disk. Every step runs inside a throwaway QEMU VM (accelerator: **${accel}**; 2 vCPUs, 1 GiB), one qcow2 layer per step. The Formfile has ${formfile.steps.length} steps (USER, INSTALL hello with apt-get update, WORKDIR, COPY of 20 files, RUN, ENV, COPY of one file last) and an ENTRYPOINT; DISK 5 GB.`,
    '',
    '| build | median ms | ratio to the cold build |',
    '|---|---|---|',
    row(`cold: every step runs (${ran.cold} of ${formfile.steps.length})`, m.cold),
    row('unchanged: the identical earlier image is reused (key check + blob check, no VM)', m.reused),
    row('unchanged, image entry removed: every step from its layer, the VM boots to finish the image', m.replayed),
    row(`last COPY's file changed: ${ran.lastCopy} step(s) run, the rest from their layers`, m.lastCopy),
    '',
    `Load average when the run ended: ${loadavg().map((l) => l.toFixed(1)).join(' / ')} (1 / 5 / 15 min) on ${(await import('node:os')).cpus().length} cores: TCG timings scale with what else the machine runs.`,
    `Targets: unchanged ≤ 1 % of cold (${((median(m.reused) / c) * 100).toFixed(2)} %), late COPY ≤ 40 % of cold (${((median(m.lastCopy) / c) * 100).toFixed(1)} %).`,
    `Against the chroot builder's last cold figure (47.9 s, 2026-11-24): the VM builder's cold build is ${(c / 1000).toFixed(1)} s, ${(c / CHROOT_COLD_MS).toFixed(2)}× as long. Where the cold build's time goes: ${['boot', 'steps', 'finalize', 'shrink', 'publish'].map(share).join(', ')}. boot = QEMU start to the agent's first word (kernel and initramfs under ${accel}); steps = the steps in the VM (apt-get update and install dominate); finalize = the image's configuration script; shrink = unmount, e2fsck, resize2fs -M and discard inside the VM; publish = qemu-img convert of the layer chain to a sparse raw disk and hashing the disk, kernel and initrd into the blob store.`,
  ].join('\n')
  console.log(body)
  recordResults('Image builder: cold, unchanged and late-COPY rebuilds (bench/builder.ts)', body)
} finally {
  await close()
}
