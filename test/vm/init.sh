#!/bin/sh
# PID 1 of a tandem test VM (POSIX sh). The initramfs (test/vm/initramfs-init.sh) has mounted the host's root
# read-only over 9p and switch_rooted here. This script makes the writable places node and ava need, mounts
# the results share (9p tag "results"), loads virtio_net and IPVS with every scheduler module the kernel has,
# runs the job the host wrote to the share (job.sh) with its stdout/stderr in the share, writes the job's exit
# code there and powers off. Nothing here writes to the host except through the results share.
# Mounts use busybox-static's applet: one static binary over 9p starts much faster under TCG than util-linux.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
R=/run/tandem-results

log() { echo "tandem-vm: $*" > /dev/console; }
mnt() { /bin/busybox mount "$@" || log "mount $* failed"; }
uptime_s() { read -r up _ < /proc/uptime; echo "$up"; }
off() {
  sync
  echo o > /proc/sysrq-trigger
  sleep 10
}

mnt -t proc proc /proc
t_init=$(uptime_s)
mnt -t sysfs sysfs /sys
mnt -t devtmpfs devtmpfs /dev
/bin/busybox mkdir -p /dev/pts /dev/shm
mnt -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mnt -t tmpfs -o mode=1777 tmpfs /dev/shm
for d in /tmp /var/tmp; do mnt -t tmpfs -o mode=1777 tmpfs "$d"; done
for d in /run /var/lib /var/log /var/cache /root; do mnt -t tmpfs -o mode=755 tmpfs "$d"; done
[ -d /sys/fs/cgroup ] && /bin/busybox mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
/bin/busybox mkdir -p /run/lock /run/netns "$R"

# The checkout at its own path (it may sit under /tmp, which the tmpfs above hides).
repo=$(/bin/busybox sed -n 's/.*tandem\.repo=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$repo" ]; then
  /bin/busybox mkdir -p "$repo" 2>/dev/null
  mnt -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro project "$repo"
fi

if ! /bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results "$R"; then
  log "cannot mount the results share (9p tag results)"
  off
fi
echo "init $t_init" >> "$R/timings"
echo "mounted $(uptime_s)" >> "$R/timings"

# IPVS and its schedulers (every ip_vs_* module except the FTP helper and the SIP persistence engine), and
# virtio_net for later NIC-carrying VMs, in one modprobe run. A missing module is logged, not fatal: the tests
# say what is wrong.
kver=$(uname -r)
mods="virtio_net ip_vs"
for f in "/lib/modules/$kver"/kernel/net/netfilter/ipvs/ip_vs_*.ko*; do
  [ -e "$f" ] || continue
  m=${f##*/}
  m=${m%%.ko*}
  case "$m" in ip_vs_ftp | ip_vs_pe_*) continue ;; esac
  mods="$mods $m"
done
# shellcheck disable=SC2086 # word splitting wanted
modprobe -a $mods || log "modprobe -a $mods failed"
ip link set lo up || log "ip link set lo up failed"
# A VM with a NIC (the two-director lab): tandem.ip=ADDR/PREFIX on the kernel command line configures eth0.
nic_ip=$(/bin/busybox sed -n 's/.*tandem\.ip=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$nic_ip" ]; then
  ip link set eth0 up && ip addr add "$nic_ip" dev eth0 || log "cannot configure eth0 with $nic_ip"
fi
/bin/busybox hostname tandem-vm

HOME=/tmp
TMPDIR=/tmp
TANDEM_VM=1
export HOME TMPDIR TANDEM_VM
# The VM has no network: npm/npx must not try the registry (update checks, audits would wait for timeouts).
npm_config_offline=true
npm_config_update_notifier=false
npm_config_audit=false
npm_config_fund=false
export npm_config_offline npm_config_update_notifier npm_config_audit npm_config_fund
echo "job-start $(uptime_s)" >> "$R/timings"
if [ -r "$R/job.sh" ]; then
  /bin/sh "$R/job.sh" < /dev/null > "$R/stdout" 2> "$R/stderr"
  code=$?
else
  log "no job.sh in the results share"
  code=125
fi
echo "job-end $(uptime_s)" >> "$R/timings"
echo "$code" > "$R/exit-code.tmp" && mv "$R/exit-code.tmp" "$R/exit-code"
off
