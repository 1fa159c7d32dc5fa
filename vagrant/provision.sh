#!/usr/bin/env bash
# Provision one kemu node in host mode: install kemu (the README's `make deps`), write its node config and
# systemd units, and start it. On the control node also run etcd and the controller-manager.
#
#   provision.sh ROLE NAME IP INDEX CONTROL_IP ALL_NODES
#     ROLE       control | worker
#     INDEX      the node's number: its pod CIDR is the INDEX-th /24 of the cluster CIDR (kemu/api/network.py)
#     ALL_NODES  name=ip=index,... of every node (for host-gw routes to the other nodes' pod CIDRs)
#
# Environment: KEMU_SRC (default /kemu), KEMU_ROOT (default /: where /etc, /var/lib and units are written),
# KEMU_START (default 1: enable and start units; 0 only writes files, as the tests do), KEMU_STORE_URL (default
# etcd://CONTROL_IP:2379).
set -euo pipefail

role=$1 name=$2 ip=$3 index=$4 control_ip=$5 all_nodes=$6
src=${KEMU_SRC:-/kemu}
root=${KEMU_ROOT:-/}
start=${KEMU_START:-1}

case "$role" in control|worker) ;; *) echo "provision.sh: ROLE must be control or worker, got '$role'" >&2; exit 2 ;; esac
[[ $name =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "provision.sh: NAME '$name' is not a DNS-1123 label" >&2; exit 2; }
if ! [[ $index =~ ^[0-9]+$ ]] || (( index < 1 || index > 254 )); then
  echo "provision.sh: INDEX must be 1-254, got '$index'" >&2; exit 2
fi

# the address plan has one home, kemu/api/network.py (stdlib only: runs before `make deps`)
network() { PYTHONPATH="$src" python3 -m kemu.api.network "$@"; }
pod_cidr=$(network pod-cidr "$index")

etc="$root/etc/kemu"
state="$root/var/lib/kemu/$name"
units="$root/etc/systemd/system"
mkdir -p "$etc" "$state" "$units"

if [[ $start == 1 ]]; then
  make -C "$src" deps
  modprobe br_netfilter || true
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
fi

cat > "$etc/node.json" <<JSON
{
  "node_name": "$name",
  "state_dir": "$state",
  "store_url": "${KEMU_STORE_URL:-etcd://$control_ip:2379}",
  "node_ip": "$ip",
  "pod_cidr": "$pod_cidr",
  "cgroup_root": "kemu-$name"
}
JSON

# host-gw: every other node's pod CIDR via that node (what the lab does inside node namespaces)
routes=()
IFS=, read -r -a peers <<< "$all_nodes"
for peer in "${peers[@]}"; do
  IFS='=' read -r peer_name peer_ip peer_index <<< "$peer"
  [[ $peer_name == "$name" ]] && continue
  routes+=("$(network pod-cidr "$peer_index") via $peer_ip")
done
{
  echo "# pod CIDRs of the other kemu nodes (host-gw)"
  printf '%s\n' "${routes[@]}"
} > "$etc/routes"

kemu="$src/.venv/bin/kemu"
cat > "$units/kemu-routes.service" <<UNIT
[Unit]
Description=kemu host-gw routes to the other nodes' pod CIDRs
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'grep -v "^#" $etc/routes | while read -r cidr _ gw; do ip route replace "\$cidr" via "\$gw"; done'

[Install]
WantedBy=multi-user.target
UNIT

for daemon in node-agent proxy dns; do
  cat > "$units/kemu-$daemon.service" <<UNIT
[Unit]
Description=kemu $daemon (host mode)
After=network-online.target kemu-routes.service
Wants=network-online.target

[Service]
ExecStart=$kemu $daemon --host-mode --node-config $etc/node.json
Restart=always
RestartSec=2
KillMode=process

[Install]
WantedBy=multi-user.target
UNIT
done

services=(kemu-routes kemu-node-agent kemu-proxy kemu-dns)
if [[ $role == control ]]; then
  mkdir -p "$root/etc/default"
  cat > "$root/etc/default/etcd" <<ENV
ETCD_NAME=$name
ETCD_DATA_DIR=/var/lib/etcd/kemu
ETCD_LISTEN_CLIENT_URLS=http://$ip:2379,http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://$ip:2379
ENV
  cat > "$units/kemu-controller-manager.service" <<UNIT
[Unit]
Description=kemu controller-manager (scheduler and controllers)
After=etcd.service
Wants=etcd.service

[Service]
ExecStart=$kemu controller-manager --store etcd://127.0.0.1:2379
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
  services=(etcd kemu-controller-manager "${services[@]}")
  ln -sf "$kemu" "$root/usr/local/bin/kemu" 2>/dev/null || true
fi

if [[ $start == 1 ]]; then
  [[ $role == control ]] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client
  systemctl daemon-reload
  systemctl enable --now "${services[@]}"
fi
echo "provisioned $role $name ($ip, pods $pod_cidr, store ${KEMU_STORE_URL:-etcd://$control_ip:2379})"
