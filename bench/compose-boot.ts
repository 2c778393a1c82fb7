// The seed's promise that a Formfile INSTALLing docker and starting a compose project at boot works:
// templates/formfiles/docker-compose built on a fresh step cache (base cached) and booted under
// QEMU, the way tests/pack/seed-nginx.test.ts does the nginx examples, until the compose service
// answers on port 8080. Not a test in the suite: under TCG the build alone takes longer than the
// suite can spend (docker.io, containerd and docker-compose's Python unpacked in an emulated CPU).
// Run: npm run build && npx tsx bench/compose-boot.ts   (root, mmdebstrap, qemu, iptables, debugfs,
// curl, a Debian mirror for apt; no registry: the container image is built in the instance)
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from '../plugins/net/lib/p2p/blobs.js'
import { prepareVmBase } from '../plugins/pack/lib/builder/base.js'
import { buildImage, type BuildEvent } from '../plugins/pack/lib/builder/build.js'
import { INITRAMFS_SHIM_PATH } from '../plugins/pack/lib/builder/initramfs.js'
import { parseFormfile } from '../plugins/pack/lib/formfile/index.js'
import { bootImage, httpGet, packDirectory } from '../tests/helpers/builder.js'
import { CACHE } from '../tests/helpers/guest-image.js'
import { benchScope, recordResults } from './results.js'

// the template `form pack init --template docker-compose` writes
const TEMPLATE = join(import.meta.dirname, '..', 'templates', 'formfiles', 'docker-compose')
const EXPECTED = readFileSync(join(TEMPLATE, 'compose', 'web', 'www', 'index.html'), 'utf8')
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyBenchKeyBenchKeyBenchKeyBenchKey00 dev@bench'
// Not part of the template: what the instance's network looks like once docker runs (issue 20: the
// node's instance firewall sees the instance's traffic; docker's own rules live in the guest)
const REPORT_UNIT = `[Unit]
Description=bench: the guest's network after docker-compose started
After=compose-web.service
Before=form-ready.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo BENCH-NET-BEGIN; ip -4 -o addr; ip -4 route; iptables -S FORWARD; iptables -t nat -S POSTROUTING; docker ps -a --format "{{.Names}} {{.Image}} {{.Status}}"; docker images; journalctl -u compose-web --no-pager | tail -n 25; journalctl -u docker --no-pager | grep -iE "error|fail|warn" | tail -n 15; uname -r; ls /lib/modules; lsmod | grep -E "veth|overlay|bridge|nf_nat"; echo BENCH-NET-END'
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
`

const { scope, close } = benchScope('compose-boot')
let failed = false
try {
  const baseCache = join(CACHE, 'builder')
  const probe = scope.testdir()
  await prepareVmBase({ suite: 'bookworm', cacheDir: baseCache }, probe)
  await rm(probe, { recursive: true, force: true })

  const dir = scope.testdir()
  const ctx = join(dir, 'ctx')
  await cp(TEMPLATE, ctx, { recursive: true })
  await writeFile(join(ctx, 'net-report.service'), REPORT_UNIT)
  const text =
    (await readFile(join(ctx, 'Formfile'), 'utf8')).replace('__SSH_PUBLIC_KEY__', KEY) +
    'COPY ./net-report.service /etc/systemd/system/net-report.service\nRUN systemctl enable net-report.service\n'
  const parsed = parseFormfile(text, { file: 'Formfile' })
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error')
  if (errors.length) throw new Error(`the template's Formfile is not valid: ${JSON.stringify(errors)}`)
  // BENCH_CACHE: a step cache of an earlier run (its layers are replayed; the report says which steps ran)
  const cacheDir = process.env.BENCH_CACHE ?? join(dir, 'cache')
  await mkdir(cacheDir, { recursive: true })
  if (!process.env.BENCH_CACHE) await symlink(join(baseCache, 'base'), join(cacheDir, 'base'))
  const blobs = new BlobStore(join(dir, 'blobs'))
  let output = ''
  const started = new Map<number, number>()
  const t0 = performance.now()
  const r = await buildImage({
    formfile: parsed.formfile!,
    owner: '0x' + 'a'.repeat(40),
    buildId: 'c'.repeat(64),
    context: await packDirectory(ctx, join(dir, 'ctx.tar.gz')),
    cacheDir,
    blobs,
    suite: 'bookworm',
    workDir: join(dir, 'w'),
    onOutput: (c) => {
      output += c
      process.stdout.write(c)
    },
    onEvent: (e: BuildEvent) => {
      if (e.type === 'step' && e.status === 'running') started.set(e.index, performance.now())
      if (e.type === 'step' && e.status === 'ran') console.log(`== step ${e.index + 1}/${e.total} ${e.text}: ${((e.ms ?? 0) / 1000).toFixed(1)} s`)
    },
  })
  const buildS = (performance.now() - t0) / 1000
  const stepS = (prefix: string) => {
    const step = r.steps.find((s) => s.text.startsWith(prefix))!
    return step.cached ? 'replayed from BENCH_CACHE' : (step.ms / 1000).toFixed(1)
  }
  const skipped = output.match(/update-initramfs \(form build\): [^\n]*skipped/g) ?? []
  const generated = output.match(/update-initramfs: Generating [^\n]*/g) ?? []
  const disk = blobs.path(r.manifest.disk.sha256)
  const debugfs = (request: string) => spawnSync('debugfs', ['-R', request, disk], { encoding: 'utf8' }).stdout
  const shimLeft = /Type: regular/.test(debugfs(`stat /${INITRAMFS_SHIM_PATH}`))
  const diskMiB = Number(spawnSync('stat', ['-c', '%s', disk], { encoding: 'utf8' }).stdout) / 2 ** 20

  const b0 = performance.now()
  const vm = await bootImage({ blobs, manifest: r.manifest, dir, name: 'compose-web-1', forward: [8080], diskGb: 4, memoryMb: 1024, timeoutMs: 1_500_000 }, (fn) => scope.teardown(fn))
  const readyS = (performance.now() - b0) / 1000
  const answer = await httpGet(Number(Object.keys(vm.ports)[0]), 90)
  const answerS = (performance.now() - b0) / 1000
  const consoleText = vm.console()
  const net = /BENCH-NET-BEGIN([\s\S]*?)BENCH-NET-END/.exec(consoleText)?.[1] ?? '(not printed)'
  await vm.stop()
  failed = answer !== EXPECTED || shimLeft
  console.log(`\nanswer: ${JSON.stringify(answer)}\nnet:${net}`)
  const body = [
    `templates/formfiles/docker-compose (plus a unit printing the guest's network), one cold build on a fresh step cache (base cached), build VM under **${r.accel}** (2 vCPUs, 1 GiB); then booted like tests/pack/seed-nginx.test.ts (QEMU TCG, 1 vCPU, 1 GiB, user network, port 8080 forwarded).`,
    '',
    '| what | s |',
    '|---|---|',
    `| \`INSTALL docker.io\` | ${stepS('INSTALL docker.io')} |`,
    `| \`INSTALL docker-compose busybox-static\` | ${stepS('INSTALL docker-compose')} |`,
    `| whole build (${Object.entries(r.timings ?? {}).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(', ')}) | ${buildS.toFixed(1)} |`,
    `| boot to FORM-READY (docker, then \`docker-compose up --build\` of a FROM-scratch image, are before it) | ${readyS.toFixed(1)} |`,
    `| boot to the compose service's HTTP answer | ${answerS.toFixed(1)} |`,
    '',
    `Answer on port 8080: ${answer === EXPECTED ? `\`${answer.trim()}\` (as expected)` : `**${JSON.stringify(answer.slice(0, 200))}, expected ${JSON.stringify(EXPECTED)}**`}. Image disk ${diskMiB.toFixed(0)} MiB. initramfs updates asked by package scripts and skipped by the build's shim: ${skipped.length}; initrds generated during the build: ${generated.length}; the shim ${shimLeft ? '**is still in the image**' : 'is not in the image'}.`,
    '',
    "The guest's network once compose runs (printed on the console by the bench's unit):",
    '',
    '```',
    net.trim().replace(/\r/g, ''),
    '```',
    '',
    `Load average when the run ended: ${loadavg().map((l) => l.toFixed(1)).join(' / ')} on ${cpus().length} cores.`,
  ].join('\n')
  console.log(body)
  recordResults('docker-compose at boot (bench/compose-boot.ts)', body)
} finally {
  await close()
}
if (failed) process.exitCode = 1
