import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { buildImage, type BuildEvent } from '../../plugins/pack/lib/builder/build.js'
import { parseFormfile } from '../../plugins/pack/lib/formfile/index.js'
import { builderSkip, packDirectory } from '../helpers/builder.js'
import { CACHE } from '../helpers/guest-image.js'

const skip = builderSkip()

const cacheDir = join(CACHE, 'builder')
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildTestKeyBuildTestKeyBuildTestKey0 ada@laptop'

const FORMFILE = `NAME hello-build
DISK 5
USER username:ada passwd:correct-horse ssh_authorized_keys:"${KEY}" sudo:true groups:adm
INSTALL hello
WORKDIR /srv/app
COPY app /srv/app/
COPY motd.txt /home/ada/motd.txt
ENV GREETING="hi there" APP_PATH=/srv/app:$PATH
ENV --scope=user:ada EDITOR=vi
ENV --scope=service:hello-build PORT=8080
RUN echo "built in $(pwd)" > built.txt && /usr/bin/hello -g "$GREETING" > greeting.txt
ENV QUOTED='$(touch /pwned-quoted)' SUBST="a $(touch /pwned-subst) \`touch /pwned-tick\`" REF=\${GREETING}-x PATH=/opt/bin:$PATH
RUN test ! -e /pwned-quoted && test ! -e /pwned-subst && test ! -e /pwned-tick && printf '%s|%s|%s|%s\\n' "$QUOTED" "$SUBST" "$REF" "$PATH" > env.txt
ENTRYPOINT ["/usr/bin/hello", "-g", "from the entrypoint"]
EXPOSE 8080
`

/** Runs a debugfs request against the image (read-only: no mount). */
function debugfs(disk: string, request: string): string {
  const r = spawnSync('debugfs', ['-R', request, disk], { encoding: 'utf8' })
  return r.stdout
}

async function context(dir: string, appText = 'print("hello")\n'): Promise<string> {
  // the builder gets the context as uploaded: a tar.gz only its build VM unpacks
  await mkdir(join(dir, 'app', 'static'), { recursive: true })
  await writeFile(join(dir, 'app', 'main.py'), appText)
  await writeFile(join(dir, 'app', 'run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 })
  await writeFile(join(dir, 'app', 'static', 'index.html'), '<h1>hi</h1>\n')
  await writeFile(join(dir, 'motd.txt'), 'welcome\n')
  return packDirectory(dir)
}

t.test('a Formfile becomes an image whose files, users, environment and service are all there', { skip }, async (t) => {
  const dir = t.testdir()
  const ctx = await context(join(dir, 'ctx'))
  const ctxDir = join(dir, 'ctx')
  const parsed = parseFormfile(FORMFILE, { file: 'Formfile' })
  t.same(parsed.diagnostics.filter((d) => d.severity === 'error'), [], 'the Formfile is valid')
  const formfile = parsed.formfile!
  const blobs = new BlobStore(join(dir, 'blobs'))
  const common = { formfile, owner: '0x' + 'a'.repeat(40), buildId: 'b'.repeat(64), context: ctx, cacheDir, blobs, suite: 'bookworm' }

  // The step cache is shared with other runs on this machine: a unique NAME-independent nonce would
  // hide what we test, so the first build runs on a private cache to be truly cold for the steps.
  const stepCache = join(dir, 'cache')
  await mkdir(stepCache, { recursive: true })
  const { symlink } = await import('node:fs/promises')
  await symlink(join(cacheDir, 'base'), join(stepCache, 'base'))
  const events: BuildEvent[] = []
  let output = ''
  const first = await buildImage({ ...common, cacheDir: stepCache, workDir: join(dir, 'w1'), onEvent: (e) => events.push(e), onOutput: (c) => (output += c) })
  t.notOk(first.reused)
  t.same(first.steps.map((s) => s.cached), formfile.steps.map(() => false), 'every step ran the first time')
  t.match(output, /Setting up hello/, 'INSTALL ran apt-get')

  const disk = blobs.path(first.manifest.disk.sha256)
  t.equal(first.manifest.resources.diskGb, 5)
  const { statSync } = await import('node:fs')
  t.equal(statSync(disk).size, first.manifest.disk.size)
  t.ok(first.manifest.disk.size < 2 * 2 ** 30, `the disk is sized from its content, not DISK 5 GB (${Math.round(first.manifest.disk.size / 2 ** 20)} MiB); the guest grows it`)
  t.ok(statSync(disk).blocks * 512 < first.manifest.disk.size, 'and sparse')
  t.same(first.manifest.expose, [{ port: 8080, protocol: 'tcp' }], 'EXPOSE is in the manifest')
  t.notMatch(JSON.stringify(first.manifest), /\$6\$|correct-horse|EDITOR=vi/, 'the manifest holds no password, hash or scoped ENV value')

  t.match(debugfs(disk, 'stat /usr/bin/hello'), /Type: regular/, 'INSTALL put the package in the image')
  t.equal(debugfs(disk, 'cat /srv/app/main.py'), 'print("hello")\n', 'COPY of a directory copies its contents')
  t.match(debugfs(disk, 'stat /srv/app/run.sh'), /Mode:\s+0755/, 'with their modes')
  t.equal(debugfs(disk, 'cat /srv/app/static/index.html'), '<h1>hi</h1>\n', 'recursively')
  t.match(debugfs(disk, 'cat /srv/app/built.txt'), /built in \/srv\/app/, 'RUN ran in the WORKDIR')
  t.match(debugfs(disk, 'cat /srv/app/greeting.txt'), /hi there/, 'RUN saw the system ENV')

  const passwd = debugfs(disk, 'cat /etc/passwd')
  const ada = passwd.split('\n').find((l) => l.startsWith('ada:'))
  t.match(ada, /^ada:x:(\d+):(\d+)::\/home\/ada:\/bin\/bash$/, 'USER created the account with its shell')
  const uid = Number(ada!.split(':')[2])
  const shadow = debugfs(disk, 'cat /etc/shadow').split('\n').find((l) => l.startsWith('ada:'))
  t.equal(shadow?.split(':')[1], formfile.users[0].passwordHash, 'with the hashed password')
  t.match(debugfs(disk, 'cat /etc/group'), /^adm:x:\d+:.*ada/m, 'in its groups')
  t.equal(debugfs(disk, 'cat /home/ada/.ssh/authorized_keys'), `${KEY}\n`, 'its SSH key is authorized')
  t.match(debugfs(disk, 'stat /home/ada/.ssh/authorized_keys'), new RegExp(`User:\\s+${uid}\\s`), 'owned by the user')
  t.match(debugfs(disk, 'stat /home/ada/.ssh/authorized_keys'), /Mode:\s+0600/)
  t.match(debugfs(disk, 'stat /home/ada/motd.txt'), new RegExp(`User:\\s+${uid}\\s`), 'files copied into a home belong to its user')
  t.match(debugfs(disk, 'stat /srv/app/main.py'), /User:\s+0\s/, 'other copied files belong to root')
  t.match(debugfs(disk, 'cat /etc/sudoers.d/90-form-ada'), /^ada ALL=\(ALL\) NOPASSWD:ALL$/m, 'sudo:true')
  t.match(debugfs(disk, 'cat /etc/ssh/sshd_config.d/50-form.conf'), /PermitRootLogin no/, 'disable_root (default) is in the sshd config')

  t.match(debugfs(disk, 'cat /etc/form/env/system.sh'), /export GREETING='hi there'/, 'system ENV')
  t.equal(debugfs(disk, 'cat /srv/app/env.txt'), `$(touch /pwned-quoted)|a $(touch /pwned-subst) \`touch /pwned-tick\`|hi there-x|/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n`, 'ENV values are data: $(...) and backticks never ran, $NAME and ${NAME} expanded')
  for (const f of ['/pwned-quoted', '/pwned-subst', '/pwned-tick']) t.notMatch(debugfs(disk, `stat ${f}`), /Type/, `${f} was never made`)
  t.match(debugfs(disk, 'cat /etc/form/env/user-ada.sh'), /export EDITOR='vi'/, 'user ENV')
  t.match(debugfs(disk, 'stat /etc/form/env/user-ada.sh'), new RegExp(`User:\\s+${uid}\\s.*\\n.*|Mode:\\s+0600`), 'readable by its user only')
  t.match(debugfs(disk, 'cat /etc/form/env/service-hello-build.env'), /PORT="8080"/, 'service ENV')
  t.match(debugfs(disk, 'cat /etc/bash.bashrc'), /^\[ -r \/etc\/profile.d\/form-env.sh \]/, 'non-login shells load the ENV')

  const unit = debugfs(disk, 'cat /etc/systemd/system/hello-build.service')
  t.match(unit, /ExecStart=\/usr\/local\/sbin\/form-entrypoint/, 'ENTRYPOINT is a systemd service')
  t.match(unit, /WorkingDirectory=\/srv\/app/)
  t.match(unit, /EnvironmentFile=-\/etc\/form\/env\/service-hello-build.env/)
  t.match(unit, /Restart=on-failure/)
  t.match(debugfs(disk, 'cat /usr/local/sbin/form-entrypoint'), /exec '\/usr\/bin\/hello' '-g' 'from the entrypoint'/)
  t.match(debugfs(disk, 'stat /etc/systemd/system/multi-user.target.wants/hello-build.service'), /Fast link dest: "\/etc\/systemd\/system\/hello-build.service"/, 'enabled at boot')
  t.notMatch(debugfs(disk, 'ls /usr/sbin'), /policy-rc\.d/, 'the build scaffolding is gone')

  // Unchanged: everything comes from the cache.
  const second = await buildImage({ ...common, cacheDir: stepCache, workDir: join(dir, 'w2') })
  t.ok(second.steps.every((s) => s.cached), 'a second build reports every step cached')
  t.equal(second.image, first.image, 'and gives the same image')

  // A change in the last COPY's file re-runs from that step only.
  await writeFile(join(ctxDir, 'motd.txt'), 'welcome back\n')
  const third = await buildImage({ ...common, context: await packDirectory(ctxDir, join(dir, 'ctx2.tar.gz')), cacheDir: stepCache, workDir: join(dir, 'w3') })
  const copyIndex = formfile.steps.findIndex((s) => s.kind === 'copy' && s.sources[0] === 'motd.txt')
  t.same(third.steps.map((s) => s.cached), formfile.steps.map((_, i) => i < copyIndex), 'only the changed COPY and the steps after it ran')
  t.equal(debugfs(blobs.path(third.manifest.disk.sha256), 'cat /home/ada/motd.txt'), 'welcome back\n', 'with the new content')
  t.equal(debugfs(blobs.path(third.manifest.disk.sha256), 'cat /srv/app/greeting.txt'), debugfs(disk, 'cat /srv/app/greeting.txt'), 'earlier results replayed from the cache')
  t.match(debugfs(blobs.path(third.manifest.disk.sha256), 'stat /usr/bin/hello'), /Type: regular/, 'including the installed package')
})

t.test('a failing RUN fails the build with its line and output', { skip }, async (t) => {
  const dir = t.testdir({ empty: {} })
  const parsed = parseFormfile('NAME failing\nRUN echo before-the-failure && false\nRUN echo never\nUSER username:ada lock_passwd:true\n')
  t.ok(parsed.formfile, 'the Formfile is valid')
  const error = await buildImage({
    formfile: parsed.formfile!,
    owner: '0x' + 'a'.repeat(40),
    buildId: 'c'.repeat(64),
    context: await packDirectory(join(dir, 'empty'), join(dir, 'empty.tar.gz')),
    cacheDir,
    blobs: new BlobStore(join(dir, 'blobs')),
    suite: 'bookworm',
    workDir: join(dir, 'w'),
  }).then(
    () => undefined,
    (e: { code?: string; output?: string; step?: { line: number }; message: string }) => e,
  )
  t.equal(error?.code, 'BUILD_STEP_FAILED')
  t.equal(error?.step?.line, 2, 'the failing step is named by its line')
  t.match(error?.output, /before-the-failure/, 'and carries its output')
  t.match(error?.message, /exit code 1/)
})
