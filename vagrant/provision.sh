#!/usr/bin/env bash
# Provision one kemu node in host mode: install kemu (the README's `make deps`), write its node config and
# systemd units, and start it. Nodes join through the API server: all a node needs is the server's address and a
# credential, both in one kubeconfig (a client certificate CN=system:node:NAME, O=system:nodes). On the control
# node also run the control plane: etcd (loopback only), the API server and the controller-manager.
#
#   provision.sh ROLE NAME IP [INDEX CONTROL_IP ALL_NODES]
#     ROLE       control | worker
#     INDEX, CONTROL_IP, ALL_NODES   only for the legacy store mode (KEMU_STORE_URL, below)
#
# The node's kubeconfig: $KEMU_KUBECONFIG, else $KEMU_SRC/vagrant/.kemu/NAME.kubeconfig (what vagrant/pki.sh writes
# for `vagrant up`), or what `kemu lab join-command NAME --ip IP` wrote for a machine joining a lab. Its pod CIDR
# comes from the cluster (the node IPAM controller sets the Node's spec.podCIDR), and the agent keeps routes to
# the other nodes' pod CIDRs from their Node objects (pod_routes: host-gw).
#
# Environment: KEMU_SRC (default /kemu), KEMU_ROOT (default /: where /etc, /var/lib and units are written),
# KEMU_START (default 1: enable and start units; 0 only writes files, as the tests do), KEMU_KUBECONFIG, and
# KEMU_STORE_URL (legacy: talk to the store directly; needs INDEX and ALL_NODES for the pod CIDR and routes).
set -euo pipefail

role=$1 name=$2 ip=$3 index=${4:-} all_nodes=${6:-}   # $5 (CONTROL_IP): kept for the argument order
src=${KEMU_SRC:-/kemu}
root=${KEMU_ROOT:-/}
start=${KEMU_START:-1}
store_url=${KEMU_STORE_URL:-}
kubeconfig_src=${KEMU_KUBECONFIG:-$src/vagrant/.kemu/$name.kubeconfig}

case "$role" in control|worker) ;; *) echo "provision.sh: ROLE must be control or worker, got '$role'" >&2; exit 2 ;; esac
[[ $name =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "provision.sh: NAME '$name' is not a DNS-1123 label" >&2; exit 2; }
[[ $ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "provision.sh: IP '$ip' is not an IPv4 address" >&2; exit 2; }
if [[ -n $store_url ]]; then
  if ! [[ $index =~ ^[0-9]+$ ]] || (( index < 1 || index > 254 )); then
    echo "provision.sh: with KEMU_STORE_URL, INDEX must be 1-254, got '$index'" >&2; exit 2
  fi
elif [[ ! -r $kubeconfig_src ]]; then
  echo "provision.sh: no kubeconfig for $name at $kubeconfig_src: run vagrant/pki.sh (vagrant up does) or" \
       "\`kemu lab join-command $name --ip $ip\`, and set KEMU_KUBECONFIG" >&2
  exit 2
fi

etc="$root/etc/kemu"
state="$root/var/lib/kemu/$name"
units="$root/etc/systemd/system"
mkdir -p "$etc" "$state" "$units"
chmod 700 "$etc"

if [[ $start == 1 ]]; then
  make -C "$src" deps
  modprobe br_netfilter || true
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
fi

if [[ -n $store_url ]]; then
  # legacy: the store directly; the pod CIDR and the host-gw routes follow from the node indexes
  # (the address plan has one home, kemu/api/network.py; stdlib only: runs before `make deps`)
  network() { PYTHONPATH="$src" python3 -m kemu.api.network "$@"; }
  pod_cidr=$(network pod-cidr "$index")
  cat > "$etc/node.json" <<JSON
{
  "node_name": "$name",
  "state_dir": "$state",
  "store_url": "$store_url",
  "node_ip": "$ip",
  "pod_cidr": "$pod_cidr",
  "cgroup_root": "kemu-$name"
}
JSON
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
  cluster="store $store_url, pods $pod_cidr"
else
  install -m 600 "$kubeconfig_src" "$etc/kubelet.conf"
  cat > "$etc/node.json" <<JSON
{
  "node_name": "$name",
  "state_dir": "$state",
  "store_url": "",
  "kubeconfig": "$etc/kubelet.conf",
  "node_ip": "$ip",
  "pod_cidr": "",
  "pod_routes": "host-gw",
  "cgroup_root": "kemu-$name"
}
JSON
  : > "$etc/routes"
  server=$(sed -n 's/^ *server: *//p' "$etc/kubelet.conf" | head -n 1)
  cluster="API server $server"
fi

kemu="$src/.venv/bin/kemu"
cat > "$units/kemu-routes.service" <<UNIT
[Unit]
Description=kemu host-gw routes to the other nodes' pod CIDRs (legacy store mode; the agent keeps them otherwise)
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
  pki="$src/vagrant/.kemu/pki"
  mkdir -p "$root/etc/default"
  cat > "$root/etc/default/etcd" <<ENV
ETCD_NAME=$name
ETCD_DATA_DIR=/var/lib/etcd/kemu
ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379
ENV
  # the API server: the only way in for nodes (and kubectl: /etc/kemu/admin.kubeconfig)
  cat > "$units/kemu-apiserver.service" <<UNIT
[Unit]
Description=kemu API server
After=etcd.service
Wants=etcd.service

[Service]
ExecStart=$src/.venv/bin/python -m kemu.apiserver --store etcd://127.0.0.1:2379 --listen $ip:6443 --listen 127.0.0.1:6443 --tls-cert $pki/apiserver.crt --tls-key $pki/apiserver.key --client-ca $pki/ca.crt --advertise-address $ip
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
  cat > "$units/kemu-controller-manager.service" <<UNIT
[Unit]
Description=kemu controller-manager (scheduler and controllers, node IPAM)
After=etcd.service
Wants=etcd.service

[Service]
ExecStart=$kemu controller-manager --store etcd://127.0.0.1:2379
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
  [[ -r $src/vagrant/.kemu/admin.kubeconfig ]] && install -m 600 "$src/vagrant/.kemu/admin.kubeconfig" "$etc/admin.kubeconfig"
  services=(etcd kemu-apiserver kemu-controller-manager "${services[@]}")
  ln -sf "$kemu" "$root/usr/local/bin/kemu" 2>/dev/null || true
fi

if [[ $start == 1 ]]; then
  if [[ $role == control ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client
    # bootstrap the cluster's objects (namespaces, RBAC incl. the node roles) once etcd answers
    systemctl restart etcd
    "$src/.venv/bin/python" -c 'import sys; from kemu.client.daemon import connect; from kemu.lab import bootstrap
bootstrap(connect(sys.argv[1]))' etcd://127.0.0.1:2379
  fi
  systemctl daemon-reload
  systemctl enable --now "${services[@]}"
fi
echo "provisioned $role $name ($ip, $cluster)"
