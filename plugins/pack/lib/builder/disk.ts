import { FormError } from '../../../../core/errors.js'

/**
 * Writes a root filesystem into a sparse ext4 image of `sizeGb` with `mke2fs -d`: no loop device,
 * no mount, so a build never leaves anything mounted on the host.
 */
export async function writeExt4Image(root: string, image: string, sizeGb: number, label = 'formroot'): Promise<void> {
  if (!Number.isInteger(sizeGb) || sizeGb < 1) throw new FormError('BUILD_BAD_DISK', `the disk size must be a whole number of GB, not ${sizeGb}`)
  const { execa } = await import('execa')
  const r = await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-E', 'root_owner=0:0', '-d', root, image, `${sizeGb}G`], { reject: false, all: true })
  if (r.exitCode !== 0) {
    throw new FormError('BUILD_DISK_FAILED', `mke2fs could not write the disk image: ${(r.all ?? '').trim().slice(-500) || `exit ${r.exitCode}`}`, {
      hint: (r.all ?? '').includes('Could not allocate') || (r.all ?? '').includes('No space') ? 'the files do not fit: raise DISK in the Formfile' : 'install e2fsprogs 1.43 or newer',
    })
  }
}
