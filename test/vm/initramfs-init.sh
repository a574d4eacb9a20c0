#!/bin/sh
# /init of tandem's VM initramfs (built by ensureVmImage() in src/lab/vm.ts; runs under busybox, PID 1).
# Loads the modules listed in /modules.order (virtio PCI + 9p, in dependency order), mounts the host's root
# read-only over 9p (mount tag "rootfs") and switch_roots to the init script named by tandem.init= on the
# kernel command line (test/vm/init.sh of the checkout). Any failure powers the VM off with a message, so the
# host sees "no exit code" instead of a hang.
PATH=/bin
export PATH

die() {
  echo "tandem-initramfs: $*" > /dev/console
  echo o > /proc/sysrq-trigger
  sleep 5
  exit 1
}

mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc || die "cannot mount /proc"
mount -t devtmpfs devtmpfs /dev || die "cannot mount /dev"

for m in $(cat /modules.order); do
  insmod "/lib/modules/$m" || die "insmod $m failed"
done

target=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    tandem.init=*) target=${arg#tandem.init=} ;;
  esac
done
[ -n "$target" ] || die "no tandem.init= on the kernel command line"

# cache=loose: the root is read-only and nobody writes it while the VM runs, so the guest may cache
# metadata and pages (node resolving node_modules is dominated by 9p round trips otherwise).
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose rootfs /newroot \
  || die "cannot mount the host root over 9p (mount tag rootfs)"
[ -x "/newroot$target" ] || [ -f "/newroot$target" ] || die "init script $target not found on the host root"

umount /proc
umount /dev
exec switch_root /newroot /bin/sh "$target"
