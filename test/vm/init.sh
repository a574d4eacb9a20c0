#!/bin/sh
# PID 1 of a tandem test VM (POSIX sh). The initramfs (test/vm/initramfs-init.sh) has mounted the host's root
# read-only over 9p and switch_rooted here. This script makes the writable places node and ava need, mounts
# the results share (9p tag "results"), loads virtio_net and IPVS with every scheduler module the kernel has,
# runs the job the host wrote to the share (job.sh) with its stdout/stderr in the share, writes the job's exit
# code there and powers off. Nothing here writes to the host except through the results share.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
R=/run/tandem-results

log() { echo "tandem-vm: $*" > /dev/console; }
stamp() { read -r up _ < /proc/uptime; echo "$1 $up" >> "$R/timings"; }
off() {
  sync
  echo o > /proc/sysrq-trigger
  sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$d"; done
for d in /run /var/lib /var/log /var/cache /root; do mount -t tmpfs -o mode=755 tmpfs "$d"; done
[ -d /sys/fs/cgroup ] && mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mkdir -p /run/lock /run/netns "$R"

if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results "$R"; then
  log "cannot mount the results share (9p tag results)"
  off
fi
stamp init

# IPVS and its schedulers (every ip_vs_* module except the FTP helper and the SIP persistence engine), and
# virtio_net for later NIC-carrying VMs. A missing module is logged, not fatal: the tests say what is wrong.
kver=$(uname -r)
modprobe -q virtio_net || log "modprobe virtio_net failed"
modprobe ip_vs || log "modprobe ip_vs failed"
for f in "/lib/modules/$kver"/kernel/net/netfilter/ipvs/ip_vs_*.ko*; do
  [ -e "$f" ] || continue
  m=${f##*/}
  m=${m%%.ko*}
  case "$m" in ip_vs_ftp | ip_vs_pe_*) continue ;; esac
  modprobe "$m" || log "modprobe $m failed"
done
ip link set lo up

hostname tandem-vm 2>/dev/null
HOME=/tmp
TMPDIR=/tmp
TANDEM_VM=1
export HOME TMPDIR TANDEM_VM
stamp job-start
if [ -r "$R/job.sh" ]; then
  /bin/sh "$R/job.sh" < /dev/null > "$R/stdout" 2> "$R/stderr"
  code=$?
else
  log "no job.sh in the results share"
  code=125
fi
stamp job-end
echo "$code" > "$R/exit-code.tmp" && mv "$R/exit-code.tmp" "$R/exit-code"
off
