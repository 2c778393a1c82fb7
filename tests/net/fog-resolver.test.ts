import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLogger } from '../../core/log.js'
import { resolveFogThrough } from '../../plugins/net/lib/formnet/developer.js'

/**
 * `form manage formnet-up` points `.fog` at the node through systemd-resolved. systemd-resolved
 * cannot run here (no systemd as PID 1, no D-Bus), so `resolvectl` is a stand-in script on PATH that
 * records its arguments and answers as resolvectl does; the command line and the log are what is tested.
 */

async function withResolvectl(t: { testdir(): string; teardown(fn: () => void): void }, body: string | undefined) {
  const dir = t.testdir()
  const calls = join(dir, 'calls')
  if (body !== undefined) await writeFile(join(dir, 'resolvectl'), `#!/bin/sh\necho "$*" >> ${calls}\n${body}\n`, { mode: 0o755 })
  const path = process.env.PATH
  // without the stand-in, PATH holds no resolvectl at all (this machine has none either)
  process.env.PATH = body === undefined ? dir : `${dir}:${path}`
  t.teardown(() => void (process.env.PATH = path))
  const logFile = join(dir, 'log')
  return {
    log: createLogger({ file: logFile }),
    calls: async () => (await readFile(calls, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean),
    logged: () => readFile(logFile, 'utf8'),
  }
}

t.test('with systemd-resolved: per-link DNS at the node and the routing domain ~fog, and the log says so', async (t) => {
  const r = await withResolvectl(t, 'exit 0')
  await resolveFogThrough('formdev0', '198.18.7.1', r.log)
  t.same(await r.calls(), ['dns formdev0 198.18.7.1', 'domain formdev0 ~fog'])
  t.match(await r.logged(), /\.fog names resolve through the node \(resolvectl: per-link DNS and domain ~fog\) \{"interface":"formdev0","server":"198\.18\.7\.1"\}/)
})

t.test('resolvectl present but systemd-resolved not running: says why and what to do by hand', async (t) => {
  const r = await withResolvectl(t, 'echo "Failed to set DNS configuration: Unit dbus-org.freedesktop.resolve1.service not found." >&2; exit 1')
  await resolveFogThrough('formdev0', '198.18.7.1', r.log)
  t.same(await r.calls(), ['dns formdev0 198.18.7.1'], 'no domain is set once the DNS server could not be')
  const logged = await r.logged()
  t.match(logged, /no resolvectl here \(or systemd-resolved is not running\); ask the node directly/)
  t.match(logged, /"example":"dig @198\.18\.7\.1 <instance>\.fog"/)
  t.match(logged, /resolve1\.service not found/, 'with resolvectl\'s own reason')
})

t.test('no resolvectl at all', async (t) => {
  const r = await withResolvectl(t, undefined)
  await resolveFogThrough('formdev0', '198.18.7.1', r.log)
  t.match(await r.logged(), /no resolvectl here .*"why":".*ENOENT/)
})
