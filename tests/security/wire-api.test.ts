// Attacks on the node API from someone who can reach its TCP port: replaying a signed request to
// another node, uploading without (or with a wrong) signature, cross-site posts, oversized bodies,
// malformed paths, and reading local details. Each is refused as stated, and the API keeps working.
import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { signRequest } from '../../core/auth/sign.js'
import { createClient } from '../../core/client.js'
import { walletSigner } from '../../plugins/kit/lib/signer.js'
import { createWallet } from '../../plugins/kit/lib/wallet.js'
import { makeEnv, startNode, type FormEnv, type NodeProcess } from '../helpers/form.js'

const signer = walletSigner(createWallet())

interface Answer {
  status: number
  body: any
  /** body bytes written before the answer came */
  sent: number
}

/**
 * One HTTP request over TCP, its body streamed in 64 KiB pieces of zeros (or `body`); stops sending
 * once the node answers, as a client reading the early answer would.
 */
function send(api: string, method: string, path: string, headers: Record<string, string | number>, body: Buffer | { zeros: number } = Buffer.alloc(0)): Promise<Answer> {
  const [host, port] = api.split(':')
  return new Promise((resolve, reject) => {
    let sent = 0
    let answered = false
    const req = request({ host, port: Number(port), method, path, headers, agent: false }, (res) => {
      answered = true
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined, sent }))
    })
    req.on('error', (error) => (answered ? undefined : reject(error)))
    if (Buffer.isBuffer(body)) {
      sent = body.length
      req.end(body)
      return
    }
    const piece = Buffer.alloc(64 * 1024)
    const pump = () => {
      while (!answered && sent < body.zeros) {
        const n = Math.min(piece.length, body.zeros - sent)
        sent += n
        if (!req.write(piece.subarray(0, n))) return void req.once('drain', pump)
      }
      if (!answered) req.end()
    }
    pump()
  })
}

async function files(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [] as string[])).sort()
}

async function tcpNode(t: Test): Promise<{ fe: FormEnv; node: NodeProcess; api: string; audience: string }> {
  const fe = await makeEnv(t)
  const node = await startNode(fe, ['--api-listen', '127.0.0.1:0'])
  t.teardown(() => node.stop('SIGKILL'))
  const api = (await createClient({ socket: fe.socket }).get<{ api: string[] }>('/v1/node')).api[0]
  const { audience } = await createClient({ url: `http://${api}` }).get<{ audience: string }>('/v1/auth/audience')
  return { fe, node, api, audience }
}

t.test('a request signed for one node is refused by another; each node takes requests signed for it', async (t) => {
  const [a, b] = await Promise.all([tcpNode(t), tcpNode(t)])
  t.not(a.audience, b.audience, 'each node has its own audience')
  t.match(a.audience, /^0x[0-9a-f]{40}$/, "the audience is the node's address in state")
  const path = '/v1/auth/whoami'
  const payload = Buffer.from('{}')
  const headers = { 'content-type': 'application/json', ...signRequest({ method: 'POST', path, body: payload, signer, audience: a.audience }) }
  const atB = await send(b.api, 'POST', path, headers, payload)
  t.equal(atB.status, 401, 'node B refuses the request signed for A')
  t.equal(atB.body.error.code, 'AUTH_WRONG_AUDIENCE')
  t.match(atB.body.error.message, new RegExp(`signed for the node "${a.audience}", not for this one \\(${b.audience}\\)`))
  t.match(atB.body.error.hint, /valid on one node only/)
  const atA = await send(a.api, 'POST', path, headers, payload)
  t.equal(atA.status, 200, 'node A takes it')
  t.equal(atA.body.address, signer.address)
  t.equal((await send(a.api, 'POST', path, headers, payload)).body.error.code, 'AUTH_REPLAY', 'and only once')

  // the client learns each node's audience: signed commands keep working on both
  for (const n of [a, b]) {
    const client = createClient({ url: `http://${n.api}`, signer: (req) => signRequest({ ...req, signer }) })
    t.same(await client.post(path, { hello: 1 }), { address: signer.address }, `a signed request to ${n.audience}`)
  }
  const overSocket = createClient({ socket: b.fe.socket, signer: (req) => signRequest({ ...req, signer }) })
  t.same(await overSocket.post(path, {}), { address: signer.address }, 'and over the Unix socket')
})

t.test('uploads: unsigned, badly signed, signed for another node, or not matching their hash are refused and nothing is stored', async (t) => {
  const { fe, api, audience } = await tcpNode(t)
  const builderDir = join(fe.dir, 'data', 'builder')
  const before = await files(builderDir)
  const path = '/v1/pack/contexts'
  const size = 100 * 2 ** 20

  const unsigned = await send(api, 'POST', path, { 'content-type': 'application/gzip', 'content-length': size }, { zeros: size })
  t.equal(unsigned.status, 401, 'an unsigned 100 MB upload is refused')
  t.equal(unsigned.body.error.code, 'AUTH_MISSING')
  t.ok(unsigned.sent < size, `the node answered before the body was sent (${unsigned.sent} of ${size} bytes were written)`)
  t.same(await files(builderDir), before, "nothing was written under the builder's directories")

  const zerosHash = createHash('sha256')
  const piece = Buffer.alloc(64 * 1024)
  for (let n = 0; n < size; n += piece.length) zerosHash.update(piece)
  const declared = { sha256: zerosHash.digest('hex'), length: size }
  const signedFor = (aud: string, body = declared) => ({ 'content-type': 'application/gzip', 'content-length': size, 'x-form-body-sha256': declared.sha256, ...signRequest({ method: 'POST', path, body, signer, audience: aud }) })

  const forged = { ...signedFor(audience), 'x-form-signature': '1b' + 'ab'.repeat(64) }
  const bad = await send(api, 'POST', path, forged, { zeros: size })
  t.equal(bad.status, 401, 'a badly signed upload is refused')
  t.equal(bad.body.error.code, 'AUTH_BAD_SIGNATURE')
  const other = await send(api, 'POST', path, signedFor('0x' + '1'.repeat(40)), { zeros: size })
  t.equal(other.body.error.code, 'AUTH_WRONG_AUDIENCE', 'an upload signed for another node is refused')
  const lying = await send(api, 'POST', path, signedFor(audience, { sha256: declared.sha256, length: size - 1 }), { zeros: size })
  t.equal(lying.body.error.code, 'AUTH_BAD_SIGNATURE', 'the declared length is covered by the signature')
  t.ok(Math.max(bad.sent, other.sent, lying.sent) < size, 'each answered before its body was sent')
  t.same(await files(builderDir), before, 'still nothing written')

  // signed and declared right, but the body is not what was declared: discarded
  const small = Buffer.from('not what was declared')
  const claimed = { sha256: createHash('sha256').update('something else').digest('hex'), length: small.length }
  const mismatch = await send(api, 'POST', path, { 'content-type': 'application/gzip', 'content-length': small.length, 'x-form-body-sha256': claimed.sha256, ...signRequest({ method: 'POST', path, body: claimed, signer, audience }) }, small)
  t.equal(mismatch.status, 400)
  t.equal(mismatch.body.error.code, 'API_BODY_MISMATCH')
  t.same(await files(builderDir), before, 'the mismatching body was discarded')

  // the real client declares and signs its upload and is served
  const ctxDir = join(fe.dir, 'ctx')
  await mkdir(ctxDir, { recursive: true })
  await writeFile(join(ctxDir, 'Formfile'), 'NAME demo\n')
  const tarball = join(fe.dir, 'ctx.tar.gz')
  execFileSync('tar', ['czf', tarball, '-C', ctxDir, '.'])
  const client = createClient({ url: `http://${api}`, signer: (req) => signRequest({ ...req, signer }) })
  const up = await client.upload<{ context: string; size: number }>(path, tarball, { contentType: 'application/gzip' })
  t.equal(up.context, createHash('sha256').update(await readFile(tarball)).digest('hex'), 'a signed upload from form is stored under its hash')
})

t.test('API hygiene: JSON bodies only, 413 before close, 400 for a malformed path, nothing local over TCP', async (t) => {
  const { fe, api } = await tcpNode(t)
  const ops = JSON.stringify({ ops: [] })
  const plain = await send(api, 'POST', '/v1/state/ops', { 'content-type': 'text/plain', 'content-length': ops.length }, Buffer.from(ops))
  t.equal(plain.status, 415, 'a text/plain post (what a page on the LAN can send cross-site) is refused')
  t.equal(plain.body.error.code, 'API_UNSUPPORTED_MEDIA_TYPE')
  const form = await send(api, 'POST', '/v1/state/ops', { 'content-type': 'application/x-www-form-urlencoded', 'content-length': 3 }, Buffer.from('a=b'))
  t.equal(form.status, 415, 'so is a form post')
  const json = await send(api, 'POST', '/v1/state/ops', { 'content-type': 'application/json; charset=utf-8', 'content-length': ops.length }, Buffer.from(ops))
  t.equal(json.status, 200, 'JSON is taken')

  const big = 17 * 2 ** 20
  const declared = await send(api, 'POST', '/v1/state/ops', { 'content-type': 'application/json', 'content-length': big }, { zeros: big })
  t.equal(declared.status, 413, 'an oversized body gets its 413 (not a reset)')
  t.equal(declared.body.error.code, 'API_BODY_TOO_LARGE')
  t.match(declared.body.error.message, /limit of 16777216 bytes/)
  const chunked = await send(api, 'POST', '/v1/state/ops', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, { zeros: big })
  t.equal(chunked.status, 413, 'so does one sent without a length, once it passes the limit')
  t.ok(chunked.sent > 16 * 2 ** 20 && chunked.sent <= big, `after ${chunked.sent} bytes`)

  for (const path of ['/v1/state/records/%zz', '/v1/state/records/nodes/%E0%A4%A']) {
    const r = await send(api, 'GET', path, {})
    t.equal(r.status, 400, `${path} is a 400`)
    t.equal(r.body.error.code, 'API_BAD_PATH')
  }
  const log = await readFile(fe.logFile, 'utf8')
  t.notMatch(log, /API handler failed|URIError|\n\s+at /, 'no stack trace in the node log')

  const remote = await send(api, 'GET', '/v1/node', {})
  const text = JSON.stringify(remote.body)
  t.equal(remote.status, 200)
  t.notOk('pid' in remote.body || 'socket' in remote.body || 'dataDir' in remote.body || 'configFile' in remote.body, 'over TCP /v1/node shows no pid or paths')
  t.notOk(text.includes(fe.dir), `and no local path anywhere in it: ${text.slice(0, 300)}`)
  t.ok(Array.isArray(remote.body.services) && remote.body.services.length > 0, 'it still says what runs')
  t.notOk('pid' in (await send(api, 'GET', '/v1/health', {})).body, '/v1/health neither')
  const local = await createClient({ socket: fe.socket }).get<{ pid: number; dataDir: string }>('/v1/node')
  t.ok(local.pid > 0 && local.dataDir === join(fe.dir, 'data'), 'the Unix socket shows them to the operator')
  t.equal((await send(api, 'GET', '/v1/health', {})).status, 200, 'the API still answers')
})
