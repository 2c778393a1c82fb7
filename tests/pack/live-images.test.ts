import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { imageBlobs, liveImages } from '../../plugins/pack/lib/live-images.js'

// What the builder's cache eviction keeps: images live instances name and this node's latest
// builds, with the blobs their manifests name (kernel, initrd, disk).

const h = (c: string) => c.repeat(64)
const me = '0x' + 'a'.repeat(40)
const other = '0x' + 'b'.repeat(40)
const owner = '0x' + 'c'.repeat(40)

t.test('live images and their blobs', async (t) => {
  const dir = t.testdir()
  const blobs = { path: (hash: string) => join(dir, hash) }
  // image 1 runs on an instance; image 2 is this node's build; image 3 another node's; image 4 a deleted instance's
  writeFileSync(blobs.path(h('1')), JSON.stringify({ kernel: { sha256: h('5') }, initrd: { sha256: h('6') }, disk: { sha256: h('7') } }))
  writeFileSync(blobs.path(h('2')), JSON.stringify({ kernel: { sha256: h('5') }, disk: { sha256: h('8') } }))
  writeFileSync(blobs.path(h('3')), JSON.stringify({ disk: { sha256: h('9') } }))
  const records: Record<string, { key: string; value: unknown }[]> = {
    instances: [
      { key: `${owner}/i1/desired`, value: { image: h('1'), state: 'running' } },
      { key: `${owner}/i1/observed/${me}`, value: { image: h('3') } },
      { key: `${owner}/i2/desired`, value: { image: h('4'), state: 'deleted' } },
    ],
    builds: [
      { key: `${owner}/${h('d')}/status/${me}`, value: { image: h('2') } },
      { key: `${owner}/${h('e')}/status/${other}`, value: { image: h('3') } },
      { key: `${owner}/${h('d')}`, value: { image: h('3') } },
    ],
  }
  const state = { all: async (c: string) => records[c] ?? [] }
  const live = await liveImages(state, blobs, me)
  t.same([...live.images].sort(), [h('1'), h('2')], 'the running instance\'s image and this node\'s build')
  t.same([...live.blobs].sort(), [h('1'), h('2'), h('5'), h('6'), h('7'), h('8')], 'with the blobs their manifests name')
  t.same(await imageBlobs(blobs, h('4')), [h('4')], 'a manifest that is not here: the image alone')
  writeFileSync(blobs.path(h('0')), JSON.stringify({ kernel: { sha256: '../../etc/passwd' }, disk: { sha256: h('7') } }))
  t.same(await imageBlobs(blobs, h('0')), [h('0'), h('7')], 'a name in a manifest that is not a hash is ignored')
})
