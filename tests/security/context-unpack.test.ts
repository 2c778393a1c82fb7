import t from 'tap'
import { readdir, stat, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { createClient } from '../../core/client.js'
import { signRequest } from '../../core/auth/sign.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { verifyContextArchive } from '../../plugins/pack/lib/context-archive.js'
import { form, makeEnv, startNode } from '../helpers/form.js'

/**
 * A context is small on the wire and may unpack to anything: the builder counts what its headers
 * declare before it keeps an upload, and refuses one past `[pack] max_context_unpacked_mb` or
 * `max_context_files`, leaving nothing on disk.
 */

const PASSWORD = 'correct horse battery staple'
const LIMITS = { maxBytes: 16 * 2 ** 20, maxFiles: 100 }

/** A gzip bomb: one 64 MiB file of zeros, about 64 KiB compressed. */
async function bomb(dir: string): Promise<string> {
  const tar = await import('tar')
  const src = join(dir, 'bomb-src')
  await mkdir(src, { recursive: true })
  await writeFile(join(src, 'zeros'), Buffer.alloc(64 * 2 ** 20))
  const file = join(dir, 'bomb.tar.gz')
  await tar.c({ gzip: true, cwd: src, file, portable: true }, ['zeros'])
  return file
}

/** 300 empty files, a few KiB compressed. */
async function manyFiles(dir: string): Promise<string> {
  const tar = await import('tar')
  const src = join(dir, 'many-src')
  await mkdir(src, { recursive: true })
  const names = Array.from({ length: 300 }, (_, i) => `f${i}`)
  for (const n of names) await writeFile(join(src, n), '')
  const file = join(dir, 'many.tar.gz')
  await tar.c({ gzip: true, cwd: src, file, portable: true }, names)
  return file
}

/** One tar header that claims a 100 GiB file, followed by nothing: refused at the header, before any body is read. */
async function liar(dir: string): Promise<string> {
  const tar = await import('tar')
  const block = Buffer.alloc(512)
  new tar.Header({ path: 'huge', mode: 0o644, size: 100 * 2 ** 30, type: 'File', mtime: new Date(0) }).encode(block, 0)
  const file = join(dir, 'liar.tar.gz')
  await writeFile(file, gzipSync(Buffer.concat([block, Buffer.alloc(4096)])))
  return file
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await filesUnder(p)))
    else out.push(p)
  }
  return out
}

t.test('the archive check counts headers and stops at the first one past a limit', async (t) => {
  const dir = t.testdir()
  const b = await bomb(dir)
  t.ok((await stat(b)).size < 256 * 1024, 'the bomb is small on the wire')
  await t.rejects(verifyContextArchive(b, LIMITS), { code: 'CONTEXT_TOO_LARGE_UNPACKED', message: /KiB context unpacks to more than 64\.0 MiB .*the limit is 16\.0 MiB \(\[pack\] max_context_unpacked_mb\)/ })
  await t.rejects(verifyContextArchive(await manyFiles(dir), LIMITS), { code: 'CONTEXT_TOO_MANY_FILES', message: /more than 100 files; the limit is 100 \(\[pack\] max_context_files\)/ })
  await t.rejects(verifyContextArchive(await liar(dir), LIMITS), { code: 'CONTEXT_TOO_LARGE_UNPACKED', message: /100\.0 GiB/ }, 'a header that lies about a huge body is refused before the body')
  t.same(await verifyContextArchive(await manyFiles(dir), { maxBytes: 1, maxFiles: 300 }), { files: 300, bytes: 0 }, 'within the limits an archive passes')
})

t.test('a node refuses a gzip bomb and a many-files context with nothing left on disk, and keeps taking good ones', async (t) => {
  const env = await makeEnv(t, { FORM_PASSWORD: PASSWORD })
  const init = await form(env, ['kit', 'init', '--yes', '--no-join-formnet'])
  t.equal(init.code, 0, init.stderr)
  const config = join(env.dir, 'operator.toml')
  await writeFile(config, '[pack]\nmax_context_unpacked_mb = 16\nmax_context_files = 100\n')
  env.env.FORM_OPERATOR_CONFIG = config
  const node = await startNode(env)
  t.teardown(() => node.stop('SIGKILL'))
  await writeFile(join(env.dir, 'password'), PASSWORD)
  const signer = await loadSigner({ configDir: env.configDir, passwordFile: join(env.dir, 'password') })
  const client = createClient({ socket: env.socket, signer: (req) => signRequest({ ...req, signer }) })
  const builder = join(String(env.env.FORM_DATA_DIR), 'builder')

  const dir = join(env.dir, 'contexts')
  await t.rejects(client.upload('/v1/pack/contexts', await bomb(join(env.dir))), { code: 'CONTEXT_TOO_LARGE_UNPACKED', message: /the limit is 16\.0 MiB/ }, 'the bomb is refused, naming the limit')
  await t.rejects(client.upload('/v1/pack/contexts', await manyFiles(join(env.dir))), { code: 'CONTEXT_TOO_MANY_FILES', message: /the limit is 100/ }, 'so is the many-files context')
  await t.rejects(client.upload('/v1/pack/contexts', await liar(join(env.dir))), { code: 'CONTEXT_TOO_LARGE_UNPACKED' }, 'and the lying header')
  t.same(await filesUnder(builder), [], 'nothing of them is left under the builder directories')

  // the node keeps working: a small context is taken
  const tar = await import('tar')
  await mkdir(join(dir, 'ok'), { recursive: true })
  await writeFile(join(dir, 'ok', 'index.html'), '<h1>ok</h1>\n')
  await tar.c({ gzip: true, cwd: join(dir, 'ok'), file: join(dir, 'ok.tar.gz'), portable: true }, ['index.html'])
  const up = await client.upload<{ context: string }>('/v1/pack/contexts', join(dir, 'ok.tar.gz'))
  t.match(up.context, /^[0-9a-f]{64}$/, 'a good context is accepted afterwards')
  t.same(
    (await filesUnder(builder)).map((f) => f.slice(builder.length + 1)),
    [`contexts/${signer.address}/${up.context}.tar.gz`],
    'and kept under its owner',
  )
})
