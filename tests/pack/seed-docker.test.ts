import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { buildImage } from '../../plugins/pack/lib/builder/build.js'
import { parseFormfile } from '../../plugins/pack/lib/formfile/index.js'
import { bootImage, builderSkip, httpGet, packDirectory } from '../helpers/builder.js'
import { CACHE } from '../helpers/guest-image.js'

/**
 * The seed's docker-compose workload, built and booted for real (QEMU TCG): a Formfile INSTALLs
 * Docker and docker-compose from Debian and starts a compose project at boot, whose container
 * answers on a published port. Stand-in: the container image is `docker import`ed at boot from a
 * busybox tree in the image, since no registry is reachable where these tests run.
 */

const skip = builderSkip(['curl'])
const project = join(import.meta.dirname, 'fixtures', 'compose-web')

t.test('a Formfile with Docker runs its compose project at boot', { skip }, async (t) => {
  const dir = t.testdir()
  const parsed = parseFormfile(await readFile(join(project, 'Formfile'), 'utf8'), { file: 'Formfile' })
  t.same(parsed.diagnostics.filter((d) => d.severity === 'error'), [], 'the Formfile is valid')
  const blobs = new BlobStore(join(dir, 'blobs'))
  const context = await packDirectory(project, join(dir, 'context.tar.gz'))
  const started = Date.now()
  const { manifest } = await buildImage({ formfile: parsed.formfile!, owner: '0x' + 'c'.repeat(40), buildId: 'c'.repeat(64), context, workDir: join(dir, 'w'), cacheDir: join(CACHE, 'builder'), blobs, suite: 'bookworm' })
  t.comment(`built in ${((Date.now() - started) / 1000).toFixed(0)} s; disk ${Math.round(manifest.disk.size / 2 ** 20)} MiB`)
  const booted = await bootImage({ blobs, manifest, dir, name: 'compose-web-1', forward: [8080], memoryMb: 1024, diskGb: 5 }, (fn) => t.teardown(fn))
  const port = Number(Object.keys(booted.ports)[0])
  t.equal(await httpGet(port, 120), 'served from a compose container\n', 'the compose service answers on its published port')
  t.match(booted.console(), /FORM-READY/)
})
