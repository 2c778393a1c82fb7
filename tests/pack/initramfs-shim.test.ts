import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AGENT, finalizeScript } from '../../plugins/pack/lib/builder/agent.js'
import { DPKG_PATH_CONF, DPKG_PATH_CONF_TEXT, INITRAMFS_SHIM, INITRAMFS_SHIM_DIR, INITRAMFS_SHIM_PATH } from '../../plugins/pack/lib/builder/initramfs.js'

/**
 * Build-time update-initramfs, run on the host with a fake "real" one that logs its arguments. The
 * whole path (docker.io installed in a build VM, the image booted) is bench/compose-boot.ts.
 */

async function shim(t: { testdir(): string }) {
  const dir = t.testdir()
  const script = join(dir, 'update-initramfs')
  await writeFile(script, INITRAMFS_SHIM, { mode: 0o755 })
  const real = join(dir, 'real')
  await writeFile(real, `#!/bin/sh\necho "$*" >> ${join(dir, 'real.log')}\n`, { mode: 0o755 })
  const run = (env: Record<string, string>, ...args: string[]) => {
    // what dpkg sets for a maintainer script is only what the case gives
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DPKG_')))
    return spawnSync(script, args, { encoding: 'utf8', env: { ...base, FORM_UPDATE_INITRAMFS_REAL: real, ...env } })
  }
  const calls = async () => (existsSync(join(dir, 'real.log')) ? (await readFile(join(dir, 'real.log'), 'utf8')).trim().split('\n') : [])
  return { run, calls }
}

t.test("an update asked by a package script is skipped and said; the kernel hook's -c and a Formfile's own call go through", async (t) => {
  const s = await shim(t)
  // initramfs-tools' postinst when its trigger fires (dmsetup activates it): DPKG_MAINTSCRIPT_PACKAGE='' update-initramfs -u
  const trigger = s.run({ DPKG_MAINTSCRIPT_NAME: 'postinst', DPKG_MAINTSCRIPT_PACKAGE: '' }, '-u')
  t.equal(trigger.status, 0, 'the package script goes on')
  t.match(trigger.stderr, /update-initramfs \(form build\): update asked by a package's trigger \(postinst\) skipped/)
  const pkg = s.run({ DPKG_MAINTSCRIPT_NAME: 'postinst', DPKG_MAINTSCRIPT_PACKAGE: 'cryptsetup-initramfs' }, '-u', '-k', 'all')
  t.equal(pkg.status, 0)
  t.match(pkg.stderr, /asked by cryptsetup-initramfs \(postinst\) skipped/)
  t.same(await s.calls(), [], 'the real update-initramfs was not run for either')

  // /etc/kernel/postinst.d/initramfs-tools, from a new kernel's postinst
  t.equal(s.run({ DPKG_MAINTSCRIPT_NAME: 'postinst', DPKG_MAINTSCRIPT_PACKAGE: 'linux-image-6.1.0-99-amd64' }, '-c', '-k', '6.1.0-99-amd64').status, 0)
  t.equal(s.run({ DPKG_MAINTSCRIPT_NAME: 'postrm', DPKG_MAINTSCRIPT_PACKAGE: 'linux-image-6.1.0-98-amd64' }, '-d', '-k', '6.1.0-98-amd64').status, 0)
  // RUN update-initramfs -u in a Formfile: no package script around it
  t.equal(s.run({}, '-u').status, 0)
  t.same(await s.calls(), ['-c -k 6.1.0-99-amd64', '-d -k 6.1.0-98-amd64', '-u'])
})

t.test("apt gives package scripts a PATH with the shim's directory first (apt's DPkg::Path, not the shell's PATH)", async (t) => {
  const dir = t.testdir({ 'form.conf': DPKG_PATH_CONF_TEXT })
  const r = spawnSync('apt-config', ['-c', join(dir, 'form.conf'), 'dump', 'DPkg::Path'], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, `DPkg::Path "/${INITRAMFS_SHIM_DIR}:/usr/sbin:/usr/bin:/sbin:/bin";`)
  t.notMatch(DPKG_PATH_CONF_TEXT, /usr\/local\/sbin/, "package scripts do not see the build's systemctl")
})

t.test('the build VM puts the shim on the PATH of package scripts and the image never keeps it', async (t) => {
  t.match(AGENT, `cp "$IN/update-initramfs" /${INITRAMFS_SHIM_PATH}`)
  t.match(AGENT, `> /${DPKG_PATH_CONF}`)
  const final = finalizeScript({ name: 'x', expose: [], users: [], env: { services: {} } } as never)
  // the image's part of the finalize script, on a scratch root
  const lines = final.split('\n').filter((l) => l.includes(INITRAMFS_SHIM_DIR) || l.includes(DPKG_PATH_CONF))
  t.equal(lines.length, 2)
  const onRoot = (root: string) => lines.map((l) => l.replaceAll(` /${INITRAMFS_SHIM_DIR}`, ` ${root}/${INITRAMFS_SHIM_DIR}`).replaceAll(` /${DPKG_PATH_CONF}`, ` ${root}/${DPKG_PATH_CONF}`)).join('\n')
  const conf = { etc: { apt: { 'apt.conf.d': { '00form-build-dpkg-path': DPKG_PATH_CONF_TEXT } } } }
  const root = t.testdir({ usr: { local: { lib: { 'form-build': { 'update-initramfs': INITRAMFS_SHIM } } } }, ...conf })
  t.equal(spawnSync('sh', ['-c', onRoot(root)]).status, 0)
  t.notOk(existsSync(join(root, INITRAMFS_SHIM_DIR)), 'the shim and its directory are removed')
  t.notOk(existsSync(join(root, DPKG_PATH_CONF)), "and apt's PATH is Debian's again")
  const own = t.testdir({ usr: { local: { lib: { 'form-build': { 'update-initramfs': '#!/bin/sh\necho mine\n' } } } }, etc: { apt: { 'apt.conf.d': { '00form-build-dpkg-path': 'DPkg::Path "/opt";\n' } } } })
  t.equal(spawnSync('sh', ['-c', onRoot(own)]).status, 0)
  t.ok(existsSync(join(own, INITRAMFS_SHIM_PATH)), "files of the Formfile's own are kept")
  t.ok(existsSync(join(own, DPKG_PATH_CONF)))
})
