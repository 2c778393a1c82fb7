import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cp, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { buildImage } from '../../plugins/pack/lib/builder/build.js'
import { parseFormfile } from '../../plugins/pack/lib/formfile/index.js'
import { bootImage, builderSkip, httpGet, packDirectory } from '../helpers/builder.js'
import { CACHE } from '../helpers/guest-image.js'

/**
 * The seed's nginx examples, built and booted for real (QEMU TCG): the base image runs nginx, a
 * copied nginx.conf with `RUN sudo systemctl restart nginx` is what answers on port 80, and
 * `RUN sudo systemctl stop nginx && sudo systemctl disable nginx` frees port 80 for a server of the
 * Formfile's own. A `systemctl` action at build time applies to the booted instance.
 */

const skip = builderSkip(['curl'])
const cacheDir = join(CACHE, 'builder')

const NGINX_CONF = `user www-data;
worker_processes 1;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
  server {
    listen 80;
    location / { default_type text/plain; return 200 "served by my-nginx.conf\\n"; }
  }
}
`

const SEED = `NAME seed-nginx
USER username:dev lock_passwd:true sudo:true
DISK 5
COPY ./my-nginx.conf /etc/nginx/nginx.conf
RUN sudo systemctl restart nginx
EXPOSE 80
`

const OWN_SERVER = `NAME seed-nginx-off
USER username:dev lock_passwd:true sudo:true
DISK 5
COPY ./my-nginx.conf /etc/nginx/nginx.conf
RUN sudo systemctl restart nginx
RUN sudo systemctl stop nginx && sudo systemctl disable nginx
COPY ./app/ /srv/hello/
ENV --scope=service:seed-nginx-off PORT=80 GREETING="not nginx"
ENTRYPOINT ["perl", "/srv/hello/server.pl"]
EXPOSE 80
`

t.test("the seed's nginx examples build and behave as documented", { skip }, async (t) => {
  const dir = t.testdir()
  const ctx = join(dir, 'ctx')
  await mkdir(ctx)
  await writeFile(join(ctx, 'my-nginx.conf'), NGINX_CONF)
  await cp(join(import.meta.dirname, '..', '..', 'templates', 'formfiles', 'hello-web', 'app'), join(ctx, 'app'), { recursive: true })
  const context = await packDirectory(ctx)
  const blobs = new BlobStore(join(dir, 'blobs'))
  const build = async (text: string, name: string) => {
    const parsed = parseFormfile(text, { file: 'Formfile' })
    t.same(parsed.diagnostics.filter((d) => d.severity === 'error'), [], `${name}: the Formfile is valid`)
    let output = ''
    const r = await buildImage({ formfile: parsed.formfile!, owner: '0x' + 'a'.repeat(40), buildId: name.padEnd(64, '0').slice(0, 64), context, workDir: join(dir, `w-${name}`), cacheDir, blobs, suite: 'bookworm', onOutput: (c) => (output += c) })
    return { ...r, output }
  }

  const seed = await build(SEED, 'seed-nginx')
  const disk = blobs.path(seed.manifest.disk.sha256)
  const debugfs = (request: string) => spawnSync('debugfs', ['-R', request, disk], { encoding: 'utf8' }).stdout
  t.match(debugfs('stat /usr/sbin/nginx'), /Type: regular/, 'the base image has nginx')
  t.match(debugfs('stat /etc/systemd/system/multi-user.target.wants/nginx.service'), /Fast link dest/, 'enabled at boot')
  t.notMatch(debugfs('stat /usr/local/sbin/systemctl'), /Type/, "the build's systemctl is not in the image")
  t.match(debugfs('cat /etc/form/boot-actions'), /^restart nginx\.service$/m, 'the restart was kept for the instance')
  t.match(debugfs('cat /etc/systemd/system/form-boot-actions.service.d/after.conf'), /After=nginx\.service/, 'and is done after nginx has started')

  const a = await bootImage({ blobs, manifest: seed.manifest, dir, name: 'seed-nginx-1', forward: [80] }, (fn) => t.teardown(fn))
  const port = Number(Object.keys(a.ports)[0])
  t.equal(await httpGet(port), 'served by my-nginx.conf\n', "port 80 answers with the copied config: nginx runs it")
  t.match(a.console(), /form-boot-actions: restart nginx\.service \(asked for at build time\)/, 'the build-time restart was done at boot')
  await a.stop()

  const own = await build(OWN_SERVER, 'seed-nginx-off')
  const ownDisk = blobs.path(own.manifest.disk.sha256)
  t.notMatch(spawnSync('debugfs', ['-R', 'stat /etc/systemd/system/multi-user.target.wants/nginx.service', ownDisk], { encoding: 'utf8' }).stdout, /Fast link dest/, '`systemctl disable nginx` at build time: not enabled in the image')
  const b = await bootImage({ blobs, manifest: own.manifest, dir, name: 'seed-nginx-off-1', forward: [80] }, (fn) => t.teardown(fn))
  t.equal(await httpGet(Number(Object.keys(b.ports)[0])), 'not nginx from seed-nginx-off-1\n', "port 80 is the Formfile's own server: nginx stayed stopped")
  t.notMatch(b.console(), /restart nginx\.service \(asked/, 'the restart recorded before the stop was not done (the last action counts)')
  await b.stop()
})
