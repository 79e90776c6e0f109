# shellcheck shell=bash
# --- pullsecret-syncer (tests/stack/kind-node/entrypoint-prologue.sh), run before kind's entrypoint
# On hosts whose capability bounding set lacks CAP_SYS_RESOURCE, deploy/kind/docker-shim starts this
# node with --cap-add=ALL --cap-drop=SYS_RESOURCE instead of --privileged (Docker 20.10's
# --privileged asks for every capability and fails there). Docker then mounts sysfs and the
# cgroup v1 hierarchies read-only: make them writable again (a per-mount flag change only).
if [[ ! -f /sys/fs/cgroup/cgroup.controllers ]] && ! mkdir /sys/fs/cgroup/systemd/.pss-rw-probe 2>/dev/null; then
  echo 'INFO: pullsecret-syncer: cgroup mounts are read-only (started without --privileged); remounting them read-write' >&2
  mount -o remount,rw /sys || true
  for m in $(findmnt -rn -o TARGET | grep '^/sys/fs/cgroup'); do mount -o remount,bind,rw "$m" || true; done
fi
rmdir /sys/fs/cgroup/systemd/.pss-rw-probe 2>/dev/null || true
# /proc/sys stays READ-ONLY (Docker's default without --privileged). The kernel knobs below are
# host-global, not per container: a node allowed to write them writes the host's kernel, and the
# kubelet would set kernel.panic_on_oops=1 and kernel.panic=10 (a kernel oops then reboots the
# machine), vm.overcommit_memory=1 and more. The kubelet refuses to start unless it can read the
# values it wants or set them: show it private files holding them instead.
mkdir -p /kind/pss-sysctl
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*}; f=/kind/pss-sysctl/${k//\//_}
  echo "${kv#*=}" >"$f"
  mount --bind "$f" "/proc/sys/$k" || echo "WARN: pullsecret-syncer: could not shadow /proc/sys/$k" >&2
done
# kind's own sysctls (/etc/sysctl.d, applied by systemd-sysctl in stock kind) are per network
# namespace: set them through a private procfs mount, which is the node's own network namespace.
if ! touch /proc/sys/net/ipv4/conf/all/route_localnet 2>/dev/null; then
  mkdir -p /kind/pss-proc && mount -t proc proc /kind/pss-proc && {
    for kv in net/ipv4/conf/all/route_localnet=1 net/ipv4/conf/all/arp_ignore=0 \
              net/ipv4/conf/default/rp_filter=1 net/ipv4/conf/all/rp_filter=1 net/ipv4/ip_forward=1; do
      echo "${kv#*=}" >"/kind/pss-proc/sys/${kv%%=*}" || echo "WARN: pullsecret-syncer: could not set ${kv%%=*}" >&2
    done
    umount /kind/pss-proc
  }
fi
# --- end of the pullsecret-syncer prologue
