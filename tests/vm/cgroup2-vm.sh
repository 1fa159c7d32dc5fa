#!/usr/bin/env bash
# cgroup2-vm.sh - run kemu's cgroup tests on a real, unified cgroup v2 hierarchy in a VM.
#
# The CI machine is cgroup v1/hybrid, so runtime/cgroups/v2.py is otherwise only tested
# against a fake tree. This boots a Debian kernel under QEMU with cgroup v2 as the only
# hierarchy (cgroup_no_v1=all, cgroup2 mounted on /sys/fs/cgroup, +cpu +memory +pids
# delegated from the root), runs
#     python3 -m pytest -q -s tests/unit/cgroups tests/integration/test_cgroups_real.py
# inside as root, prints the pytest output and exits with pytest's exit code.
#
# Usage (as root):  tests/vm/cgroup2-vm.sh [extra pytest args...]
#
# What it does:
#   1. apt-get installs qemu-system-x86, debootstrap, e2fsprogs and linux-image-amd64 when
#      missing (the kernel is only needed for /boot/vmlinuz-*-amd64 and its initrd).
#   2. Once, caches under $KEMU_VM_CACHE (default /var/cache/kemu-vm):
#        rootfs/      debootstrap --variant=minbase $KEMU_VM_SUITE + python3, pytest, psutil, yaml
#        base.ext4    ext4 image of rootfs plus /kemu-init.sh (PID 1, see INIT below)
#      Delete the directory (or change the suite) to rebuild; base.ext4 is rebuilt when the
#      init script changes. The base image is booted with snapshot=on, so it stays pristine.
#   3. Per run: src.ext4 (second disk, /dev/vdb) with a copy of runtime/, kemu/,
#      tests/unit/cgroups/, tests/integration/test_cgroups_real.py, tests/conftest.py and
#      the in-VM script run.sh (mounts, delegates controllers, runs pytest).
#   4. Boots with no network (-nic none), the serial console on stdout of qemu (logged to
#      $KEMU_VM_CACHE/last-run.log). KVM is tried first when /dev/kvm exists; if the guest
#      does not reach PID 1 within $KEMU_VM_KVM_BOOT_TIMEOUT seconds (nested KVM can hang,
#      as on Firecracker hosts) or qemu fails, it falls back to TCG (slow: minutes).
#   5. Prints the pytest output (between markers on the console) and exits with its code.
#
# Environment: KEMU_VM_CACHE, KEMU_VM_SUITE (bookworm), KEMU_VM_MIRROR
# (http://deb.debian.org/debian), KEMU_VM_KERNEL / KEMU_VM_INITRD (default: newest
# /boot/vmlinuz-*-amd64 and the matching initrd), KEMU_VM_ACCEL (auto|kvm|tcg),
# KEMU_VM_MEM (2048), KEMU_VM_SMP (2), KEMU_VM_TIMEOUT (3600 s for the whole run),
# KEMU_VM_KVM_BOOT_TIMEOUT (90).
# Exit codes: pytest's code; 2 bad usage/environment; 124 the VM timed out; 125 the VM
# stopped without reporting a result (see the log).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${KEMU_VM_CACHE:-/var/cache/kemu-vm}
SUITE=${KEMU_VM_SUITE:-bookworm}
MIRROR=${KEMU_VM_MIRROR:-http://deb.debian.org/debian}
ACCEL=${KEMU_VM_ACCEL:-auto}
MEM=${KEMU_VM_MEM:-2048}
SMP=${KEMU_VM_SMP:-2}
TIMEOUT=${KEMU_VM_TIMEOUT:-3600}
KVM_BOOT_TIMEOUT=${KEMU_VM_KVM_BOOT_TIMEOUT:-90}
PACKAGES=python3,python3-pytest,python3-psutil,python3-yaml
LOG=$CACHE/last-run.log
QEMU_PID=

log() { printf 'cgroup2-vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
    fi
    rm -rf "$CACHE/src" "$CACHE/src.ext4"
}
trap cleanup EXIT

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, mkfs of a root-owned tree)"
[[ $(uname -m) == x86_64 ]] || die "x86_64 only"

# ---- 1. host packages ----
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
kernel=${KEMU_VM_KERNEL:-}
if [[ -z $kernel ]]; then
    kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' 2>/dev/null | sort -V | tail -n 1)
    [[ -n $kernel ]] || need+=(linux-image-amd64)
fi
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if [[ -z $kernel ]]; then
    kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' | sort -V | tail -n 1)
fi
initrd=${KEMU_VM_INITRD:-/boot/initrd.img-${kernel##*/vmlinuz-}}
[[ -r $kernel ]] || die "no kernel found (set KEMU_VM_KERNEL)"
[[ -r $initrd ]] || die "no initrd $initrd (set KEMU_VM_INITRD)"
log "kernel $kernel, initrd $initrd"

mkdir -p "$CACHE"

# ---- 2. cached rootfs and base image ----
# PID 1 of the VM: mount the source disk and hand over to its run.sh (so changing the test
# logic never needs a new base image). Power off whatever happens.
INIT='#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /kemu
echo "KEMU-VM-BOOTED"
if mount -t ext4 /dev/vdb /kemu; then
    sh /kemu/run.sh
else
    echo "KEMU-VM: cannot mount /dev/vdb"
fi
sync
echo o > /proc/sysrq-trigger
sleep 60'

if [[ ! -f $CACHE/rootfs/.kemu-$SUITE ]]; then
    log "debootstrap $SUITE into $CACHE/rootfs (once; a few minutes)"
    rm -rf "$CACHE/rootfs" "$CACHE/rootfs.tmp" "$CACHE/base.ext4"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$CACHE/rootfs.tmp" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$CACHE/rootfs.tmp/var/cache/apt/archives/"*.deb
    touch "$CACHE/rootfs.tmp/.kemu-$SUITE"
    mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
fi

init_sum=$(printf '%s' "$INIT" | sha256sum | cut -c1-16)
if [[ ! -f $CACHE/base.ext4 || ! -f $CACHE/base.ext4.$init_sum ]]; then
    log "building $CACHE/base.ext4"
    printf '%s\n' "$INIT" >"$CACHE/rootfs/kemu-init.sh"
    chmod 755 "$CACHE/rootfs/kemu-init.sh"
    rm -f "$CACHE"/base.ext4*
    mkfs.ext4 -q -F -L kemuroot -d "$CACHE/rootfs" "$CACHE/base.ext4.tmp" 2G >&2
    mv "$CACHE/base.ext4.tmp" "$CACHE/base.ext4"
    touch "$CACHE/base.ext4.$init_sum"
fi

# ---- 3. per-run source disk ----
src=$CACHE/src
rm -rf "$src" "$CACHE/src.ext4"
mkdir -p "$src/tests/unit" "$src/tests/integration"
cp -a "$REPO/runtime" "$REPO/kemu" "$src/"
cp -a "$REPO/tests/unit/cgroups" "$src/tests/unit/"
cp -a "$REPO/tests/integration/test_cgroups_real.py" "$src/tests/integration/"
cp -a "$REPO/tests/conftest.py" "$src/tests/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
printf '[pytest]\nmarkers =\n    root: needs root and the real kernel\n' >"$src/pytest.ini"
if (($#)); then printf '%q ' "$@"; fi >"$src/pytest-args"
cat >"$src/run.sh" <<'EOF'
#!/bin/sh
# In-VM test driver (PID 1's child shell): a unified-only cgroup2 tree, then pytest.
export HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup
dmesg -n 1   # keep OOM-killer reports off the console (pytest's output goes there)
echo "KEMU-VM: kernel $(uname -r) cpus $(nproc) mem $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "KEMU-VM: $(grep cgroup /proc/mounts)"
echo "KEMU-VM: cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
# As on a systemd host: nothing but the root cgroup's children hold processes.
mkdir -p /sys/fs/cgroup/init.scope
echo $$ >/sys/fs/cgroup/init.scope/cgroup.procs
echo 1 >/sys/fs/cgroup/init.scope/cgroup.procs 2>/dev/null
echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
echo "KEMU-VM: root cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
cd /kemu || exit 1
echo "KEMU-VM-PYTEST-BEGIN"
eval "set -- $(cat pytest-args)"
python3 -m pytest -p no:cacheprovider --color=no -q -rs -s tests/unit/cgroups tests/integration/test_cgroups_real.py "$@" 2>&1
rc=$?
echo "KEMU-VM-RESULT rc=$rc"
EOF
mkfs.ext4 -q -F -L kemusrc -d "$src" "$CACHE/src.ext4" 64M >&2

# ---- 4. boot ----
boot() {  # boot ACCEL BOOT_TIMEOUT: 0 = VM ran and powered off, 1 = did not boot, 124 = timeout
    local accel=$1 boot_timeout=$2 args start
    args=(-m "$MEM" -smp "$SMP" -nographic -nic none -no-reboot
          -kernel "$kernel" -initrd "$initrd"
          -append "root=/dev/vda rw console=ttyS0 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 init=/kemu-init.sh"
          -drive "file=$CACHE/base.ext4,format=raw,if=virtio,snapshot=on"
          -drive "file=$CACHE/src.ext4,format=raw,if=virtio")
    if [[ $accel == kvm ]]; then
        args=(-enable-kvm -cpu host "${args[@]}")
    else
        args=(-accel 'tcg,thread=multi' -cpu max "${args[@]}")
    fi
    log "booting ($accel) - console in $LOG"
    : >"$LOG"
    start=$SECONDS
    qemu-system-x86_64 "${args[@]}" </dev/null >"$LOG" 2>&1 &
    QEMU_PID=$!
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if ((SECONDS - start > TIMEOUT)); then
            log "timeout after ${TIMEOUT}s"
            kill "$QEMU_PID"; wait "$QEMU_PID" || true; QEMU_PID=
            return 124
        fi
        if ((boot_timeout > 0 && SECONDS - start > boot_timeout)) && ! grep -q KEMU-VM-BOOTED "$LOG"; then
            log "$accel guest did not reach init within ${boot_timeout}s"
            kill "$QEMU_PID"; wait "$QEMU_PID" || true; QEMU_PID=
            return 1
        fi
        sleep 2
    done
    wait "$QEMU_PID" || true
    QEMU_PID=
    log "VM ran $((SECONDS - start))s"
    grep -q KEMU-VM-BOOTED "$LOG" || return 1
    return 0
}

booted=no
if [[ $ACCEL != tcg && -w /dev/kvm ]]; then
    r=0
    boot kvm "$KVM_BOOT_TIMEOUT" || r=$?
    ((r == 124)) && exit 124
    cp "$LOG" "$CACHE/last-run-kvm.log"
    ((r == 0)) && booted=yes
fi
if [[ $booted == no ]]; then
    [[ $ACCEL == kvm ]] && die "KVM boot failed (see $CACHE/last-run-kvm.log)"
    r=0
    boot tcg 0 || r=$?
    ((r == 124)) && exit 124
fi

# ---- 5. report ----
tr -d '\r' <"$LOG" | sed -n '/^KEMU-VM: /p; /^KEMU-VM-PYTEST-BEGIN$/,/^KEMU-VM-RESULT /p' | grep -v '^KEMU-VM-PYTEST-BEGIN$'
result=$(tr -d '\r' <"$LOG" | sed -n 's/^KEMU-VM-RESULT rc=\([0-9]*\)$/\1/p' | tail -n 1)
if [[ -z $result ]]; then
    log "the VM stopped without a result; last console lines:"
    tr -d '\r' <"$LOG" | tail -n 30 >&2
    exit 125
fi
exit "$result"
