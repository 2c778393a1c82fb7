/**
 * `update-initramfs` at build time. Packages ask for an initramfs rebuild from their maintainer
 * scripts: initramfs-tools' trigger runs `update-initramfs -u` after any package that ships an
 * initramfs hook (dmsetup, which docker.io pulls in; lvm2, cryptsetup, busybox...). In a build VM
 * under TCG one rebuild of Debian's 36 MB initrd takes many minutes, and the instance never needs
 * it: it boots the image's kernel and initrd with its root on ext4 directly on a virtio disk, which
 * the base's initrd mounts whatever hooks were added since.
 *
 * So during a build, an update (-u) asked by a package's maintainer script (dpkg sets
 * DPKG_MAINTSCRIPT_NAME) is skipped, and said in the build log. apt runs dpkg with its own PATH
 * (DPkg::Path, /usr/sbin first), so the shim sits in a directory of its own that an apt.conf.d file
 * puts first on that PATH; the Formfile's own shells never see it (nor do package scripts see the
 * build's systemctl). Everything else goes to the real one: a new kernel's initrd (the kernel
 * hook in /etc/kernel/postinst.d runs `update-initramfs -c`, which Debian's update_initramfs=no
 * would not stop either), and an update the Formfile runs itself. The builder removes the shim from
 * every image, so an instance's own `apt-get install` behaves as Debian's does.
 */

export const INITRAMFS_SHIM_DIR = 'usr/local/lib/form-build'
export const INITRAMFS_SHIM_PATH = `${INITRAMFS_SHIM_DIR}/update-initramfs`
/** Where apt reads the PATH it gives dpkg; Debian's default behind the shim's directory. */
export const DPKG_PATH_CONF = 'etc/apt/apt.conf.d/00form-build-dpkg-path'
export const DPKG_PATH_CONF_TEXT = `// written by the form builder for the duration of a build (package scripts find update-initramfs here first)
DPkg::Path "/${INITRAMFS_SHIM_DIR}:/usr/sbin:/usr/bin:/sbin:/bin";
`

/** Marks the shim, so the builder removes it and never an `update-initramfs` of the Formfile's own. */
export const INITRAMFS_SHIM_MARKER = '# form-update-initramfs: written by the form builder for the duration of a build'

export const INITRAMFS_SHIM = `#!/bin/sh
${INITRAMFS_SHIM_MARKER}
# An update asked by a package script is skipped: the instance boots with root on a virtio disk,
# which the image's initrd mounts as it is. -c (a new kernel) and a Formfile's own call go through.
real=\${FORM_UPDATE_INITRAMFS_REAL:-/usr/sbin/update-initramfs}
if [ -n "\${DPKG_MAINTSCRIPT_NAME:-}" ]; then
  for a in "$@"; do
    case "$a" in
      -c|-d) break ;;
      -u)
        echo "update-initramfs (form build): update asked by \${DPKG_MAINTSCRIPT_PACKAGE:-a package's trigger} ($DPKG_MAINTSCRIPT_NAME) skipped: the image keeps its initrd, which mounts the instance's root" >&2
        exit 0 ;;
    esac
  done
fi
exec "$real" "$@"
`
