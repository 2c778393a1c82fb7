import { copyFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import type { BlobStore } from '../../../net/index.js'
import { IMAGE_SCHEMA, type ImageManifest } from '../../../node/index.js'
import { writeExt4Image } from './disk.js'
import { installGuestAgent } from './guest-agent.js'

export type ImageMeta = Omit<ImageManifest, 'schema' | 'kernel' | 'initrd' | 'disk' | 'cmdline' | 'createdAt'>

/** The newest file of /boot whose name starts with `prefix` (Debian keeps one per kernel version). */
async function newestBootFile(root: string, prefix: string): Promise<string> {
  const names = (await readdir(join(root, 'boot')).catch(() => [] as string[])).filter((n) => n.startsWith(prefix)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
  const name = names.at(-1)
  if (!name) throw new FormError('BUILD_NO_KERNEL', `the root filesystem has no /boot/${prefix}*`, { hint: 'the base must include a kernel package (linux-image-amd64) and initramfs-tools' })
  return join(root, 'boot', name)
}

/**
 * Turns a finished root filesystem into an image: the guest agent goes in, the kernel and initrd
 * are copied out, the disk is written, and all three plus the manifest land in the blob store.
 * Returns the image id (the manifest's SHA-256) and the manifest.
 */
export async function publishImage(root: string, blobs: BlobStore, meta: ImageMeta): Promise<{ image: string; manifest: ImageManifest }> {
  await installGuestAgent(root)
  const out = async (file: string) => {
    const tmp = await blobs.tempFile()
    await copyFile(file, tmp)
    return blobs.putFile(tmp)
  }
  const kernel = await out(await newestBootFile(root, 'vmlinuz-'))
  const initrd = await out(await newestBootFile(root, 'initrd.img-'))
  const diskFile = await blobs.tempFile()
  await writeExt4Image(root, diskFile, meta.resources.diskGb)
  const disk = await blobs.putFile(diskFile)
  const manifest: ImageManifest = {
    ...meta,
    schema: IMAGE_SCHEMA,
    createdAt: new Date().toISOString(),
    kernel,
    initrd,
    disk: { ...disk, format: 'raw', fs: 'ext4' },
    cmdline: 'root=/dev/vda rw console=ttyS0',
  }
  const image = await blobs.put(Buffer.from(JSON.stringify(manifest)))
  return { image, manifest }
}
