import { generateKeyPair } from '@libp2p/crypto/keys'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHost } from './host.js'
import { BlobStore, BLOB_PROTOCOL } from '../plugins/net/lib/p2p/blobs.js'
import { randomBytes } from 'node:crypto'
const mb = Number(process.env.MB ?? 256)
const d = mkdtempSync(join(tmpdir(), 'bp-'))
const mk = async (n: string) => createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], datastorePath: join(d, n) })
const a = await mk('a'), b = await mk('b')
const sa = new BlobStore(join(d, 'sa')), sb = new BlobStore(join(d, 'sb'))
const f = await sa.tempFile()
const buf = Buffer.alloc(mb * 2 ** 20); randomBytes(2 ** 20).copy(buf) // mostly zeros
for (let i = 0; i < mb; i += 2) randomBytes(2 ** 20).copy(buf, i * 2 ** 20)
writeFileSync(f, buf)
const { sha256 } = await sa.putFile(f)
await a.node.handle(BLOB_PROTOCOL, async (s: any) => { await sa.serve(s); await s.close() })
await b.node.peerStore.merge(a.node.peerId, { multiaddrs: a.node.getMultiaddrs() })
const t0 = performance.now()
const s = await b.node.dialProtocol(a.node.peerId, BLOB_PROTOCOL)
await sb.fetchFrom(s as any, sha256, 2 ** 40)
const ms = performance.now() - t0
console.log(`${mb} MB in ${ms.toFixed(0)} ms = ${(mb / ms * 1000).toFixed(1)} MB/s`)
await a.node.stop(); await b.node.stop(); await a.datastore.close(); await b.datastore.close()
