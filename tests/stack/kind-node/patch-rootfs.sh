#!/usr/bin/env bash
# Our changes to kind's node rootfs (build-kind.sh runs this after kind's own images/base steps).
#
#   patch-rootfs.sh ROOTFS
#
# 1. The node never writes the host's kernel settings. Stock kind starts nodes --privileged, so
#    /proc/sys is writable, and everything that writes a host-global knob there (not a per-network-
#    namespace one) changes the host: systemd-sysctl applies /usr/lib/sysctl.d (fs.protected_*,
#    kernel.pid_max), the kubelet sets kernel.panic_on_oops=1 and kernel.panic=10 (a kernel oops
#    then reboots the whole machine). Our node keeps /proc/sys read-only; systemd-sysctl is
#    masked and its host-global files removed; entrypoint-prologue.sh shows the kubelet the values
#    it insists on and sets kind's per-namespace ones itself.
# 2. containerd may not lower a container's oom_score_adj: without CAP_SYS_RESOURCE it cannot,
#    and runc would fail every pod asking for a negative score.
# 3. A single-node pod network: kind's default CNI (kindnetd) is an image from a registry that
#    cannot be built from the Go module proxy; ptp.conflist (the CNI plugins ptp, host-local and
#    portmap, in /opt/cni/bin) gives each pod a veth and a route on the one node. The cluster is
#    created with `disableDefaultCNI: true` (deploy/kind/lib.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
r=$1

# 1.
rm -f "$r"/usr/lib/sysctl.d/50-pid-max.conf "$r"/usr/lib/sysctl.d/99-protect-links.conf
chroot "$r" systemctl mask systemd-sysctl.service >/dev/null 2>&1
python3 - "$r/usr/local/bin/entrypoint" "$here/entrypoint-prologue.sh" <<'PY'
import sys
path, prologue = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
marker = "set -o pipefail\n"
at = text.index(marker) + len(marker)
open(path, "w").write(text[:at] + "\n" + prologue + text[at:])
PY
bash -n "$r/usr/local/bin/entrypoint"
# 2.
sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$r/etc/containerd/config.toml"
# 3.
install -m0644 "$here/ptp.conflist" "$r/etc/cni/net.d/10-pss-ptp.conflist"
