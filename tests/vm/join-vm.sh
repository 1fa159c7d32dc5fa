#!/usr/bin/env bash
# join-vm.sh - a real VM joins a kemu lab through the API server, with only its address and a node kubeconfig.
#
# Builds (once, cached) a Debian VM image, brings up a one-node lab (`kemu lab up --name jvm`), writes the VM's
# credential with `kemu lab join-command vm1 --ip 192.168.56.200`, and boots the VM under QEMU with its NIC on a
# tap device that lives INSIDE the lab's namespace kemu-jvm-net (bridged to the lab segment br0; nothing is added
# to this machine's root network namespace). Inside the VM, vagrant/provision.sh (KEMU_START=0) writes the node
# config from the kubeconfig alone, and the node agent, proxy and DNS server run in host mode. The host then checks:
# Node vm1 turns Ready with a pod CIDR from node IPAM, a pod scheduled there runs, and a pod on the lab's node1
# reaches it by IP and through a Service. Prints PASS/FAIL lines; exit 0 when every check passed.
#
# Usage (as root): tests/vm/join-vm.sh        (not part of `make test`: minutes under TCG)
#
# Cache ($KEMU_VM_CACHE, default /var/cache/kemu-vm): join-rootfs/ (debootstrap minbase + python3, nftables,
# iproute2, curl; kemu's Python dependencies pip-installed for the guest's python3 into /opt/kemu-deps; the
# kernel's modules), join-base.ext4. Per run: a source disk with kemu and the join material (/dev/vdb).
# Environment: KEMU_VM_CACHE, KEMU_VM_SUITE (bookworm), KEMU_VM_MIRROR, KEMU_VM_KERNEL/KEMU_VM_INITRD,
# KEMU_VM_ACCEL (tcg|kvm), KEMU_VM_MEM (2048), KEMU_VM_SMP (2), KEMU_VM_TIMEOUT (1500 s for the checks).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${KEMU_VM_CACHE:-/var/cache/kemu-vm}
SUITE=${KEMU_VM_SUITE:-bookworm}
MIRROR=${KEMU_VM_MIRROR:-http://deb.debian.org/debian}
ACCEL=${KEMU_VM_ACCEL:-tcg}          # kvm: faster where nested KVM works (it can hang on Firecracker hosts)
MEM=${KEMU_VM_MEM:-2048}
SMP=${KEMU_VM_SMP:-2}
TIMEOUT=${KEMU_VM_TIMEOUT:-1500}
LAB=jvm
VM_NAME=vm1
VM_IP=192.168.56.200
VM_MAC=52:54:00:38:c8:01
TAP=tapvm1
KEMU="$REPO/.venv/bin/kemu"
PACKAGES=python3,python3-nftables,nftables,iproute2,kmod,procps,curl,ca-certificates,containernetworking-plugins
PY_DEPS=(pyroute2 psutil pyyaml dnspython "aiohttp>=3.9" cryptography croniter prometheus_client jsonpatch)
WORK=$CACHE/join-run
LOG=$WORK/console.log
QEMU_PID=
FAILED=0

log() { printf 'join-vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }
check() {  # check DESCRIPTION CMD...: PASS/FAIL line
    local what=$1; shift
    if "$@"; then echo "PASS $what"; else echo "FAIL $what"; FAILED=1; fi
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    "$KEMU" lab down --name "$LAB" >/dev/null 2>&1 || true    # removes kemu-jvm-net, and the tap device in it
}
trap cleanup EXIT

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -x $KEMU ]] || die "no $KEMU: run \`make deps\` first"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
command -v debootstrap >/dev/null || die "debootstrap missing"
kernel=${KEMU_VM_KERNEL:-$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' | sort -V | tail -n 1)}
[[ -r $kernel ]] || die "no /boot/vmlinuz-*-amd64 (apt-get install linux-image-amd64, or set KEMU_VM_KERNEL)"
kver=${kernel##*/vmlinuz-}
initrd=${KEMU_VM_INITRD:-/boot/initrd.img-$kver}
[[ -r $initrd && -d /lib/modules/$kver ]] || die "need $initrd and /lib/modules/$kver"
mkdir -p "$CACHE"

# ---- 1. the cached image ----
INIT='#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /kemu
echo "KEMU-VM-BOOTED"
if mount -t ext4 /dev/vdb /kemu; then sh /kemu/run.sh; else echo "KEMU-VM: cannot mount /dev/vdb"; fi
sync
echo o > /proc/sysrq-trigger
sleep 60'
rootfs=$CACHE/join-rootfs
marker=.kemu-$SUITE-$kver-$(printf '%s' "$PACKAGES ${PY_DEPS[*]}" | sha256sum | cut -c1-8)
if [[ ! -f $rootfs/$marker ]]; then
    log "debootstrap $SUITE into $rootfs (once; a few minutes)"
    rm -rf "$rootfs" "$rootfs.tmp" "$CACHE/join-base.ext4"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs.tmp" "$MIRROR" \
        >"$CACHE/join-debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/join-debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs.tmp/var/cache/apt/archives/"*.deb
    pyver=$(chroot "$rootfs.tmp" python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
    log "pip: kemu's dependencies for the guest's python ${pyver}"
    "$REPO/.venv/bin/python" -m pip install -q --target "$rootfs.tmp/opt/kemu-deps" --python-version "$pyver" \
        --only-binary=:all: --implementation cp "${PY_DEPS[@]}" || die "pip install failed"
    mkdir -p "$rootfs.tmp/lib/modules"
    cp -a "/lib/modules/$kver" "$rootfs.tmp/lib/modules/"
    touch "$rootfs.tmp/$marker"
    mv "$rootfs.tmp" "$rootfs"
fi
init_sum=$(printf '%s' "$INIT$marker" | sha256sum | cut -c1-16)
if [[ ! -f $CACHE/join-base.ext4.$init_sum ]]; then
    log "building $CACHE/join-base.ext4"
    printf '%s\n' "$INIT" >"$rootfs/kemu-init.sh"
    chmod 755 "$rootfs/kemu-init.sh"
    rm -f "$CACHE"/join-base.ext4*
    mkfs.ext4 -q -F -L kemuroot -d "$rootfs" "$CACHE/join-base.ext4.tmp" 3G >&2
    mv "$CACHE/join-base.ext4.tmp" "$CACHE/join-base.ext4"
    touch "$CACHE/join-base.ext4.$init_sum"
fi

# ---- 2. the lab, and the VM's join material ----
rm -rf "$WORK"
mkdir -p "$WORK/src"
"$KEMU" lab down --name "$LAB" >/dev/null 2>&1 || true
"$KEMU" lab up --name "$LAB" --nodes 1
"$KEMU" --lab "$LAB" lab join-command "$VM_NAME" --ip "$VM_IP" --out "$WORK/src/join"
netns=kemu-$LAB-net
ip -n "$netns" tuntap add dev "$TAP" mode tap          # inside the lab's namespace, never the root one
ip -n "$netns" link set "$TAP" master br0 up

# ---- 3. the source disk: kemu + join material + the in-VM driver ----
src=$WORK/src
for d in kemu nodeagent runtime cni proxy clusterdns netpol vagrant; do cp -a "$REPO/$d" "$src/"; done
rm -rf "$src/vagrant/.kemu"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
cat >"$src/run.sh" <<EOF
#!/bin/sh
# In-VM driver: the network on the lab segment, then the node's daemons from what provision.sh writes.
export HOME=/root LANG=C.UTF-8 PYTHONPATH=/opt/kemu:/opt/kemu-deps PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/init.scope && echo \$\$ >/sys/fs/cgroup/init.scope/cgroup.procs
echo 1 >/sys/fs/cgroup/init.scope/cgroup.procs 2>/dev/null
echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
for m in virtio_net bridge br_netfilter veth nf_tables nft_chain_nat nf_nat nft_ct nft_masq nft_numgen nft_fib_ipv4 nft_redir overlay; do modprobe \$m 2>/dev/null; done
dmesg -n 1
hostname $VM_NAME
ip link set lo up
dev=\$(ls /sys/class/net | grep -v '^lo\$' | head -n 1)
ip addr add $VM_IP/24 dev "\$dev" && ip link set "\$dev" up
ip route add default via 192.168.56.1
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
echo "KEMU-VM: kernel \$(uname -r) \$dev $VM_IP; server: \$(grep server: /kemu/join/kubelet.conf)"
# kemu on the root filesystem (containers see the root fs, not the /kemu disk), and its command next to python3
cp -a /kemu /opt/kemu
printf '#!/bin/sh\nPYTHONPATH=/opt/kemu:/opt/kemu-deps exec python3 -m kemu.cli "\$@"\n' >/usr/bin/kemu
chmod 755 /usr/bin/kemu
KEMU_SRC=/opt/kemu KEMU_START=0 KEMU_KUBECONFIG=/kemu/join/kubelet.conf bash /kemu/vagrant/provision.sh worker $VM_NAME $VM_IP
for daemon in node-agent proxy dns; do
    python3 -m kemu.cli \$daemon --host-mode --node-config /etc/kemu/node.json >/tmp/\$daemon.log 2>&1 &
done
echo "KEMU-VM-DAEMONS-STARTED"
while sleep 30; do for f in /tmp/*.log; do tail -n 2 "\$f" | sed "s|^|KEMU-VM \$f: |"; done; done
EOF
mkfs.ext4 -q -F -L kemusrc -d "$src" "$WORK/src.ext4" 256M >&2

# ---- 4. boot, NIC on the tap device in the lab's namespace ----
accel=(-accel 'tcg,thread=multi' -cpu max)
if [[ $ACCEL == kvm ]]; then accel=(-enable-kvm -cpu host); fi
log "booting ($ACCEL) - console in $LOG"
nsenter --net="/run/netns/$netns" -- qemu-system-x86_64 "${accel[@]}" -m "$MEM" -smp "$SMP" -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 cgroup_no_v1=all init=/kemu-init.sh" \
    -drive "file=$CACHE/join-base.ext4,format=raw,if=virtio,snapshot=on" \
    -drive "file=$WORK/src.ext4,format=raw,if=virtio" \
    -netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$VM_MAC" \
    </dev/null >"$LOG" 2>&1 &
QEMU_PID=$!
started=$SECONDS

# ---- 5. checks from the lab's side ----
node_ready() {
    "$KEMU" --lab "$LAB" get node "$VM_NAME" -o json 2>/dev/null |
        python3 -c 'import json,sys; n=json.load(sys.stdin); sys.exit(0 if any(c["type"]=="Ready" and c["status"]=="True" for c in n["status"].get("conditions",[])) and n["spec"].get("podCIDR") else 1)' 2>/dev/null
}
until node_ready; do
    kill -0 "$QEMU_PID" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "the VM stopped"; }
    ((SECONDS - started < TIMEOUT)) || { tail -n 30 "$LOG" >&2; die "node $VM_NAME not Ready after ${TIMEOUT}s"; }
    sleep 5
done
echo "PASS node $VM_NAME Ready $((SECONDS - started))s after boot started ($(grep -c . "$LOG") console lines)"
"$KEMU" --lab "$LAB" get nodes -o wide
"$KEMU" --lab "$LAB" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: onvm, labels: {app: onvm}}
spec:
  nodeSelector: {kubernetes.io/hostname: $VM_NAME}
  containers:
  - {name: echo, image: kemu/agnhost, args: ["netexec", "--http-port=8080"],
     readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}}
---
apiVersion: v1
kind: Pod
metadata: {name: onlab}
spec:
  nodeSelector: {kubernetes.io/hostname: node1}
  containers:
  - {name: echo, image: kemu/agnhost, args: ["netexec", "--http-port=8080"]}
---
apiVersion: v1
kind: Service
metadata: {name: onvm}
spec:
  selector: {app: onvm}
  ports: [{port: 80, targetPort: 8080}]
YAML
check "pod onvm Ready on $VM_NAME" "$KEMU" --lab "$LAB" wait --for=Ready pod onvm --timeout 600s
check "pod onlab Ready on node1" "$KEMU" --lab "$LAB" wait --for=Ready pod onlab --timeout 120s
pod_ip=$("$KEMU" --lab "$LAB" get pod onvm -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"].get("podIP",""))')
svc_ip=$("$KEMU" --lab "$LAB" get svc onvm -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["clusterIP"])')
# shellcheck disable=SC2317  # invoked through check
http_from_onlab() {  # URL EXPECTED: retry for a minute
    local _
    for _ in $(seq 60); do
        [[ $("$KEMU" --lab "$LAB" exec onlab -- curl -s -m 3 "$1" 2>/dev/null) == "$2" ]] && return 0
        sleep 1
    done
    return 1
}
check "node1's pod reaches the VM's pod by IP ($pod_ip)" http_from_onlab "http://$pod_ip:8080/hostname" onvm
check "node1's pod reaches it through Service onvm ($svc_ip)" http_from_onlab "http://$svc_ip/hostname" onvm
grep -a '^KEMU-VM' "$LOG" | tr -d '\r' | tail -n 12
((FAILED == 0)) && echo "join-vm: all checks passed" || echo "join-vm: some checks FAILED (console: $LOG)"
exit "$FAILED"
