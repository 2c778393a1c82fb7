import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { link, mkdir, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { signRequest } from '../../core/auth/sign.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { submitOwnerRecord } from '../../plugins/state/lib/owner-ops.js'
import { form, makeEnv, startNode, until } from '../helpers/form.js'

const PASSWORD = 'correct horse battery staple'
const KiB = 1024

/** `kib` KiB of random bytes (they take real blocks), last used `agoS` seconds ago. */
async function put(path: string, kib: number, agoS: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, randomBytes(kib * KiB))
  const at = new Date(Date.now() - agoS * 1000)
  await utimes(path, at, at)
}

t.test('a node keeps its builder cache under cache_max_gb, shows it in node status, and pack prune frees what no build or instance uses', async (t) => {
  const env = await makeEnv(t, { FORM_PASSWORD: PASSWORD })
  t.equal((await form(env, ['kit', 'init', '--yes', '--no-join-formnet'])).code, 0)
  // 200 KiB of cache: the limit (about 146 KiB) holds the newest two 64 KiB items and a small context
  const config = join(env.dir, 'operator.toml')
  await writeFile(config, '[pack]\ncache_max_gb = 0.000136\n')
  env.env.FORM_OPERATOR_CONFIG = config
  const cache = join(String(env.env.FORM_CACHE_DIR), 'builder')
  await put(join(cache, 'layers', 'oldest.qcow2'), 64, 900)
  await put(join(cache, 'layers', 'newer.qcow2'), 64, 300)
  await put(join(cache, 'base', 'base.tar'), 64, 60)
  const node = await startNode(env)
  t.teardown(() => node.stop('SIGKILL'))

  await until('the start-up eviction', async () => (existsSync(join(cache, 'layers', 'oldest.qcow2')) ? undefined : true), 30_000)
  t.ok(existsSync(join(cache, 'layers', 'newer.qcow2')) && existsSync(join(cache, 'base', 'base.tar')), 'only the least recently used item went')

  // an upload is a context in the cache: the layer used longest ago makes room for it
  await writeFile(join(env.dir, 'password'), PASSWORD)
  const signer = await loadSigner({ configDir: env.configDir, passwordFile: join(env.dir, 'password') })
  const client = createClient({ socket: env.socket, signer: (req) => signRequest({ ...req, signer }) })
  const tar = await import('tar')
  await mkdir(join(env.dir, 'ctx'))
  await writeFile(join(env.dir, 'ctx', 'data.bin'), randomBytes(64 * KiB))
  await tar.c({ gzip: true, cwd: join(env.dir, 'ctx'), file: join(env.dir, 'ctx.tar.gz'), portable: true }, ['data.bin'])
  const up = await client.upload<{ context: string }>('/v1/pack/contexts', join(env.dir, 'ctx.tar.gz'))
  await until('the eviction after the upload', async () => (existsSync(join(cache, 'layers', 'newer.qcow2')) ? undefined : true), 30_000)
  t.ok(existsSync(join(String(env.env.FORM_DATA_DIR), 'builder', 'contexts', signer.address, `${up.context}.tar.gz`)), 'the new context stays')

  type Cache = { bytes: number; items: number; maxBytes: number; kinds: Record<string, { items: number; bytes: number }> }
  const cacheOf = async () => {
    const s = JSON.parse((await form(env, ['node', 'status', '--json'])).stdout)
    return s.services.find((x: { name: string }) => x.name === 'builder').info.cache as Cache
  }
  const shown = await until('node status to show the cache', async () => {
    const c = await cacheOf()
    return c.kinds.contexts?.items === 1 && !c.kinds.layers?.items ? c : undefined
  })
  t.match(shown, { items: 2, maxBytes: Math.round(0.000136 * 2 ** 30), kinds: { base: { items: 1, bytes: 64 * KiB }, contexts: { items: 1 } } }, 'node status --json shows what the cache holds, per kind')
  t.ok(shown.bytes <= shown.maxBytes, 'within its limit')
  const human = await form(env, ['node', 'status'])
  t.match(human.stdout, /builder cache: .* of .* \(\[pack\] cache_max_gb\), 2 items/, 'and says it in words')
  t.match(human.stdout, /contexts\s+1\s+/)

  // two images built here: M1 is used by nothing, M2 by an instance (its desired record); they share a kernel
  const blobs = join(String(env.env.FORM_DATA_DIR), 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const blob = async (data: Buffer | string) => {
    const hash = createHash('sha256').update(data).digest('hex')
    await writeFile(join(blobs, hash), data)
    return hash
  }
  const kernel = await blob(randomBytes(16 * KiB))
  const image = async () => {
    const disk = await blob(randomBytes(32 * KiB))
    const m = await blob(JSON.stringify({ kernel: { sha256: kernel }, disk: { sha256: disk } }))
    const dir = join(String(env.env.FORM_DATA_DIR), 'builder', 'images', m)
    await mkdir(dir, { recursive: true })
    for (const h of [m, kernel, disk]) await link(join(blobs, h), join(dir, h))
    return { m, disk }
  }
  const m1 = await image()
  const m2 = await image()
  const desired = { buildId: 'b'.repeat(64), image: m2.m, node: `0x${'1'.repeat(40)}`, state: 'stopped', name: 'web', vcpus: 1, memoryMb: 256, diskGb: 1 }
  await submitOwnerRecord(client, signer, 'instances', `${signer.address}/web-1/desired`, desired, 'instance')

  // prune: everything unused goes now, the base stays unless --all
  const pruned = JSON.parse((await form(env, ['pack', 'prune', '--json'])).stdout)
  t.match(pruned, { removed: { contexts: { items: 1 }, images: { items: 1 } }, after: { items: 2, kinds: { base: { items: 1 }, images: { items: 1 } } } }, 'prune removes the context and the unused image, and says what')
  t.equal(pruned.freed, pruned.removed.contexts.bytes + pruned.removed.images.bytes, 'and how much it freed')
  t.ok(pruned.removed.contexts.bytes > 64 * KiB, 'the context was at least its 64 KiB of random data')
  t.notOk(existsSync(join(blobs, m1.m)) || existsSync(join(blobs, m1.disk)), "the unused image's manifest and disk left the blob store")
  t.ok(existsSync(join(blobs, m2.m)) && existsSync(join(blobs, m2.disk)), 'the image an instance names stays')
  t.ok(existsSync(join(blobs, kernel)), 'and so does the kernel both images share')
  t.ok(existsSync(join(cache, 'base', 'base.tar')), 'the base stays')
  const all = await form(env, ['pack', 'prune', '--all'])
  t.equal(all.code, 0, all.stderr)
  t.match(all.stdout, /^freed 64(\.0)? KiB; the builder cache now holds .* in 1 item\n/, 'prune --all takes the base too, and says so')
  t.notOk(existsSync(join(cache, 'base', 'base.tar')))
})
