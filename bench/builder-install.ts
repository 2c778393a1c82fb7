// What one mid-size INSTALL costs in the build VM (QEMU; TCG where there is no KVM), on a fresh step
// cache with the Debian base cached: (a) the Formfile's `INSTALL <package>` as users write it, the
// step's time; (b) the same work split into RUN steps (apt-get update; download only; unpack and
// configure), to see where the time goes.
// Run: npm run build && npx tsx bench/builder-install.ts   (root, mmdebstrap, qemu, iptables, network
// for apt)   BENCH_PACKAGE=python3 by default; BENCH_SPLIT=0 skips (b)
import { readFileSync } from 'node:fs'
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from '../plugins/net/lib/p2p/blobs.js'
import { APT_INSTALL } from '../plugins/pack/lib/builder/agent.js'
import { prepareVmBase } from '../plugins/pack/lib/builder/base.js'
import { buildImage, type BuildEvent } from '../plugins/pack/lib/builder/build.js'
import { parseFormfile } from '../plugins/pack/lib/formfile/index.js'
import { packDirectory } from '../tests/helpers/builder.js'
import { CACHE } from '../tests/helpers/guest-image.js'
import { benchScope, recordResults } from './results.js'

const PACKAGE = process.env.BENCH_PACKAGE ?? 'python3'
const SPLIT = process.env.BENCH_SPLIT !== '0'
const { scope, close } = benchScope('builder-install')

const USER = `USER username:ada lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyBenchKeyBenchKeyBenchKeyBenchKey00 ada@bench"`
const whole = `NAME bench-install\n${USER}\nINSTALL ${PACKAGE}\n`
const split = `NAME bench-install-split
${USER}
RUN apt-get update -q
RUN ${APT_INSTALL} --download-only ${PACKAGE}
RUN ${APT_INSTALL} ${PACKAGE} && du -sh /usr/share/doc /usr/share/man /usr/share/locale 2>/dev/null; true
RUN update-initramfs -u
`

try {
  const baseCache = join(CACHE, 'builder')
  const probe = scope.testdir()
  await prepareVmBase({ suite: 'bookworm', cacheDir: baseCache }, probe)
  await rm(probe, { recursive: true, force: true })
  const build = async (text: string) => {
    const dir = scope.testdir()
    const ctx = join(dir, 'ctx')
    await mkdir(ctx, { recursive: true })
    await writeFile(join(ctx, '.keep'), '')
    const cacheDir = join(dir, 'cache')
    await mkdir(cacheDir, { recursive: true })
    await symlink(join(baseCache, 'base'), join(cacheDir, 'base'))
    let output = ''
    // QEMU's CPU time per step (all its threads): under TCG the work is the emulator's, and unlike
    // wall time it does not grow when other processes take the cores
    const cpu: number[] = []
    const running = new Map<number, number>()
    const qemuCpuS = () => {
      try {
        const pid = readFileSync(join(dir, 'w', 'qemu.pid'), 'utf8').trim()
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
        return (Number(f[11]) + Number(f[12])) / 100
      } catch {
        return NaN
      }
    }
    const onEvent = (e: BuildEvent) => {
      if (e.type !== 'step') return
      if (e.status === 'running') running.set(e.index, qemuCpuS())
      if (e.status === 'ran') cpu[e.index] = qemuCpuS() - (running.get(e.index) ?? NaN)
    }
    const t0 = performance.now()
    const r = await buildImage({
      formfile: parseFormfile(text).formfile!,
      owner: '0x' + 'a'.repeat(40),
      buildId: 'b'.repeat(64),
      context: await packDirectory(ctx, join(dir, 'ctx.tar.gz')),
      cacheDir,
      blobs: new BlobStore(join(dir, 'blobs')),
      suite: 'bookworm',
      workDir: join(dir, 'w'),
      onOutput: (c) => void (output += c),
      onEvent,
    })
    const ms = performance.now() - t0
    await rm(dir, { recursive: true, force: true })
    return { ms, r, output, cpu }
  }
  const a = await build(whole)
  const installIndex = a.r.steps.findIndex((s) => s.text.startsWith('INSTALL'))
  const installMs = a.r.steps[installIndex].ms
  const cpuS = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '?' : x.toFixed(1))
  console.log(`INSTALL ${PACKAGE}: ${installMs.toFixed(0)} ms, QEMU CPU ${cpuS(a.cpu[installIndex])} s (build ${a.ms.toFixed(0)} ms, ${a.r.accel}) ${JSON.stringify(a.r.timings)}`)
  const fetched = /Need to get ([^ ]+ [kMG]?B)/.exec(a.output)?.[1] ?? '?'
  const newly = /(\d+) newly installed/.exec(a.output)?.[1] ?? '?'
  const used = /After this operation, ([^ ]+ [kMG]?B) of additional disk space/.exec(a.output)?.[1] ?? '?'
  // package scripts' initramfs updates the build's shim skipped (plugins/pack/lib/builder/initramfs.ts), and initrds made anyway
  const initramfs = `initramfs: ${(a.output.match(/update-initramfs \(form build\): [^\n]*skipped/g) ?? []).length} update(s) asked by package scripts skipped, ${(a.output.match(/update-initramfs: Generating/g) ?? []).length} initrd(s) generated`
  console.log(initramfs)
  const rows = [`| \`INSTALL ${PACKAGE}\` (the step as written) | ${(installMs / 1000).toFixed(1)} | ${cpuS(a.cpu[installIndex])} |`]
  if (SPLIT) {
    const b = await build(split)
    const runs = b.r.steps.flatMap((s, i) => (s.text.startsWith('RUN') ? [{ s: (s.ms / 1000).toFixed(1), cpu: cpuS(b.cpu[i]) }] : []))
    const [update, download, install, initramfs] = runs
    rows.push(
      `| split: \`apt-get update\` | ${update.s} | ${update.cpu} |`,
      `| split: download only | ${download.s} | ${download.cpu} |`,
      `| split: unpack and configure | ${install.s} | ${install.cpu} |`,
      // not part of this INSTALL: what a package that triggers initramfs-tools (dmsetup, pulled in by docker.io) adds
      `| \`update-initramfs -u\` alone (what an INSTALL pulling in dmsetup, e.g. docker.io, adds) | ${initramfs.s} | ${initramfs.cpu} |`,
    )
    const du = b.output.split('\n').filter((l) => /\t\/usr\/share\//.test(l)).map((l) => l.replace('\t', ' ')).join(', ')
    if (du) rows.push(`| (docs, man pages, locales left in the image: ${du}) | | |`)
  }
  const body = [
    `One cold build per row on a fresh step cache (base cached), build VM under **${a.r.accel}** (2 vCPUs, 1 GiB). \`${PACKAGE}\` with its dependencies: ${newly} packages newly installed, ${fetched} downloaded, ${used} on disk. apt command: \`${APT_INSTALL}\`. In the INSTALL step, ${initramfs}.`,
    '',
    '| what | wall s | QEMU CPU s |',
    '|---|---|---|',
    ...rows,
    '',
    `Load average when the run ended: ${loadavg().map((l) => l.toFixed(1)).join(' / ')} on ${cpus().length} cores (shared with other QEMU guests: compare rows of one run).`,
  ].join('\n')
  console.log(body)
  recordResults(`One INSTALL in the build VM (bench/builder-install.ts, ${PACKAGE}${process.env.BENCH_LABEL ? `, ${process.env.BENCH_LABEL}` : ''})`, body)
} finally {
  await close()
}
