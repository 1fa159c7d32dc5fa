#!/usr/bin/env bash
# The Vagrant cluster's credentials, made on the host before the VMs boot (the Vagrantfile's `before :up`
# trigger runs it; only openssl is needed), into vagrant/.kemu/ (rsynced to every VM as /kemu/vagrant/.kemu):
#
#   pki/ca.{crt,key}            the cluster CA (kemu.lab.pki's shape: EC P-256)
#   pki/apiserver.{crt,key}     the API server's serving certificate (SANs: CONTROL_IP, 127.0.0.1, 10.96.0.1,
#                               kubernetes, kubernetes.default[.svc[.cluster.local]], localhost)
#   NAME.kubeconfig             per node: server https://CONTROL_IP:6443, the CA and a client certificate
#                               CN=system:node:NAME, O=system:nodes (what `kemu lab join-command` writes for a lab)
#   admin.kubeconfig            CN=kubernetes-admin, O=system:masters (installed on the control VM)
#
#   pki.sh CONTROL_IP NODE...    (existing files are kept: run it again after adding workers)
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: pki.sh CONTROL_IP NODE..." >&2; exit 2; }
control_ip=$1; shift
out=${KEMU_PKI_OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.kemu}
pki=$out/pki
mkdir -p "$pki"
chmod 700 "$out" "$pki"
umask 077

if [[ ! -s $pki/ca.crt ]]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=kemu-ca" -days 3650 -out "$pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyCertSign,cRLSign"
fi

# issue NAME SUBJECT EXTENSIONS: a leaf certificate signed by the CA (once)
issue() {
  local name=$1 subject=$2 ext=$3
  [[ -s $pki/$name.crt ]] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 365 \
    -extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" "$ext") -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}

b64() { base64 -w0 < "$1"; }

# kubeconfig FILE USER CERT: server, CA and the client pair embedded (0600)
kubeconfig() {
  local file=$1 user=$2 cert=$3
  cat > "$file" <<YAML
apiVersion: v1
kind: Config
current-context: $user@kemu-vagrant
clusters:
- name: kemu-vagrant
  cluster:
    server: https://$control_ip:6443
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$pki/$cert.crt")
    client-key-data: $(b64 "$pki/$cert.key")
contexts:
- name: $user@kemu-vagrant
  context: {cluster: kemu-vagrant, user: $user}
YAML
}

issue apiserver "/CN=kube-apiserver" "subjectAltName=IP:$control_ip,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,\
DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost
extendedKeyUsage=serverAuth"
issue admin "/O=system:masters/CN=kubernetes-admin" "extendedKeyUsage=clientAuth"
kubeconfig "$out/admin.kubeconfig" kubernetes-admin admin
for node in "$@"; do
  issue "node-$node" "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth"
  kubeconfig "$out/$node.kubeconfig" "system:node:$node" "node-$node"
done
echo "kemu credentials for $* in $out (API server https://$control_ip:6443)"
