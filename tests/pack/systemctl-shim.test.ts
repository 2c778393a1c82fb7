import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { finalizeScript } from '../../plugins/pack/lib/builder/agent.js'
import { BOOT_ACTIONS_SCRIPT, SYSTEMCTL_SHIM } from '../../plugins/pack/lib/builder/systemctl.js'
import { entrypointRunsNginx, parseFormfile } from '../../plugins/pack/lib/formfile/index.js'

/**
 * Build-time systemctl, run on the host: the shim a build VM puts first on PATH, with a fake "real"
 * systemctl that logs its arguments, and the replay the instance runs at boot, with a fake systemctl.
 * The whole path (a build, then a booted instance) is in tests/pack/seed-nginx.test.ts.
 */

async function shim(t: { testdir(): string }) {
  const dir = t.testdir()
  const script = join(dir, 'systemctl')
  await writeFile(script, SYSTEMCTL_SHIM, { mode: 0o755 })
  const real = join(dir, 'real-systemctl')
  await writeFile(real, `#!/bin/sh\necho "$*" >> ${join(dir, 'real.log')}\n[ "$1" != disable ] || [ "$2" != missing.service ] || exit 1\n`, { mode: 0o755 })
  const actions = join(dir, 'etc', 'form', 'boot-actions')
  const run = (...args: string[]) => spawnSync(script, args, { encoding: 'utf8', env: { ...process.env, FORM_SYSTEMCTL_REAL: real, FORM_BOOT_ACTIONS: actions } })
  const read = async (file: string) => (existsSync(file) ? (await readFile(file, 'utf8')).trim().split('\n') : [])
  return { run, actions: () => read(actions), real: () => read(join(dir, 'real.log')) }
}

t.test('start, stop, restart and reload are recorded for the booted instance, in order', async (t) => {
  const s = await shim(t)
  const restart = s.run('restart', 'nginx')
  t.equal(restart.status, 0, 'the seed\'s `systemctl restart nginx` succeeds in a build')
  t.match(restart.stderr, /'restart nginx' recorded: a build runs no services, the instance does it when it boots/, 'and says what it did')
  t.equal(s.run('stop', 'nginx.service', 'ssh').status, 0)
  t.equal(s.run('--no-block', 'reload', 'getty@ttyS0.service').status, 0, 'options are passed over, instance units are unit names')
  t.same(await s.actions(), ['restart nginx.service', 'stop nginx.service', 'stop ssh.service', 'reload getty@ttyS0.service'])
  t.same(await s.real(), [], 'the real systemctl is never asked to start anything')
})

t.test('enable and disable go to systemctl itself; --now also records the start or stop', async (t) => {
  const s = await shim(t)
  t.equal(s.run('disable', 'nginx').status, 0)
  t.equal(s.run('enable', '--now', 'docker').status, 0)
  t.same(await s.real(), ['disable nginx', 'enable docker'])
  t.same(await s.actions(), ['start docker.service'])
  const failed = s.run('disable', '--now', 'missing.service')
  t.equal(failed.status, 1, 'a failing disable fails the step')
  t.same(await s.actions(), ['start docker.service'], 'and records nothing')
})

t.test('what a build cannot answer or act on', async (t) => {
  const s = await shim(t)
  t.equal(s.run('daemon-reload').status, 0, 'daemon-reload has nothing to reload: success')
  const status = s.run('is-active', 'nginx')
  t.equal(status.status, 3, 'is-active answers "not active" (3)')
  t.match(status.stderr, /no service runs during a build/)
  const bad = s.run('restart', 'nginx;reboot')
  t.equal(bad.status, 1, 'a unit name with shell characters is refused')
  t.match(bad.stderr, /'nginx;reboot' is not a unit name/)
  t.equal(s.run('start').status, 1, 'start without a unit fails')
  t.same(await s.actions(), [], 'nothing was recorded')
  t.equal(s.run('list-units', '--all').status, 0, 'the rest goes to systemctl itself')
  t.same(await s.real(), ['list-units --all'])
})

t.test('the instance leaves each unit as the build left it (its last action) and skips what is not an action', async (t) => {
  const dir = t.testdir()
  const script = join(dir, 'form-boot-actions')
  await writeFile(script, BOOT_ACTIONS_SCRIPT, { mode: 0o755 })
  const log = join(dir, 'systemctl.log')
  const fake = join(dir, 'systemctl')
  await writeFile(fake, `#!/bin/sh\necho "$*" >> ${log}\n[ "$2" != broken.service ]\n`, { mode: 0o755 })
  const actions = join(dir, 'boot-actions')
  const lines = ['restart nginx.service', 'poweroff now', 'stop $(reboot)', 'start broken.service', 'restart app.service', 'stop nginx.service', 'reload app.service', '']
  await writeFile(actions, lines.join('\n'))
  const run = spawnSync(script, [], { encoding: 'utf8', env: { ...process.env, FORM_BOOT_ACTIONS: actions, FORM_SYSTEMCTL: fake } })
  t.equal(run.status, 0, 'a failed action never fails the boot')
  t.same((await readFile(log, 'utf8')).trim().split('\n'), ['start broken.service', 'stop nginx.service', 'reload app.service'], 'restart-then-stop leaves nginx stopped without starting it; the order of the last actions holds')
  t.match(run.stdout, /stop nginx\.service \(asked for at build time\)/)
  t.match(run.stdout, /skipped 'poweroff now': not an action on a unit/)
  t.match(run.stdout, /skipped 'stop \$\(reboot\)': not an action on a unit/)
  t.match(run.stdout, /start broken\.service failed/)
})

t.test('an ENTRYPOINT that is nginx turns the base nginx off; the shim never stays in an image', async (t) => {
  const parse = (text: string) => {
    const r = parseFormfile(`NAME web\nUSER username:ada lock_passwd:true\n${text}\n`)
    if (!r.formfile) throw new Error(JSON.stringify(r.diagnostics))
    return r.formfile
  }
  t.ok(entrypointRunsNginx(parse('ENTRYPOINT ["nginx", "-g", "daemon off;"]').entrypoint))
  t.ok(entrypointRunsNginx(parse('ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]').entrypoint))
  t.ok(entrypointRunsNginx(parse('ENTRYPOINT exec nginx -g "daemon off;"').entrypoint))
  t.notOk(entrypointRunsNginx(parse('ENTRYPOINT ["perl", "/srv/server.pl"]').entrypoint))
  t.notOk(entrypointRunsNginx(parse('EXPOSE 80').entrypoint))
  t.match(finalizeScript(parse('ENTRYPOINT ["nginx", "-g", "daemon off;"]')), /rm -f \/etc\/systemd\/system\/multi-user\.target\.wants\/nginx\.service/)
  t.notMatch(finalizeScript(parse('ENTRYPOINT ["perl", "/srv/server.pl"]')), /multi-user\.target\.wants\/nginx\.service/)
  t.match(finalizeScript(parse('EXPOSE 80')), /rm -f \/usr\/local\/sbin\/systemctl/, 'finalize removes the shim')
})

t.test('validate warns when the entrypoint would need port 80 that the base nginx holds', async (t) => {
  const warnings = (text: string) =>
    parseFormfile(`NAME web\nUSER username:ada lock_passwd:true\n${text}\n`, { file: 'Formfile' }).diagnostics.filter((d) => d.code === 'base-nginx-on-port-80')
  const [w] = warnings('ENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 80')
  t.match(w, { severity: 'warning', file: 'Formfile', line: 3, text: 'perl', hint: /systemctl stop nginx && systemctl disable nginx/ }, 'names the ENTRYPOINT line and the fix')
  t.equal(warnings('ENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 79-81/tcp').length, 1, 'a range covering 80 counts')
  t.equal(warnings('RUN sudo systemctl stop nginx && sudo systemctl disable nginx\nENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 80').length, 0, 'not once nginx is disabled')
  t.equal(warnings('RUN systemctl mask nginx.service\nENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 80').length, 0, 'or masked')
  t.equal(warnings('COPY proxy.conf /etc/nginx/sites-enabled/default\nENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 80 8080').length, 0, 'or configured (a proxy in front of the entrypoint)')
  t.equal(warnings('ENTRYPOINT ["nginx", "-g", "daemon off;"]\nEXPOSE 80').length, 0, 'nor when the entrypoint is nginx')
  t.equal(warnings('ENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 8080 80/udp').length, 0, 'nor for other ports')
  t.equal(warnings('RUN systemctl restart nginx\nENTRYPOINT ["perl", "/srv/server.pl"]\nEXPOSE 80').length, 1, 'a restart does not free the port')
})
