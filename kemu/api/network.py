"""The cluster's address plan: the one home of every range and well-known address (kubeadm's defaults).

Run `python -m kemu.api.network` for the same facts as shell assignments, and `python -m kemu.api.network pod-cidr N`
for the Nth node's pod CIDR (vagrant/provision.sh reads them so, instead of repeating them).
"""
from __future__ import annotations

import ipaddress

SERVICE_CIDR = "10.96.0.0/12"             # kube-apiserver --service-cluster-ip-range
KUBERNETES_SERVICE_IP = "10.96.0.1"       # the first address: default/kubernetes
CLUSTER_DNS_IP = "10.96.0.10"             # kube-dns, as kubeadm places it
CLUSTER_CIDR = "10.244.0.0/16"            # pod network (kube-controller-manager --cluster-cidr, flannel's default)
NODE_CIDR_PREFIX = 24                     # each node's pod CIDR (--node-cidr-mask-size)
CLUSTER_DOMAIN = "cluster.local"
NODEPORT_RANGE = range(30000, 32768)      # --service-node-port-range 30000-32767
LAB_SEGMENT = "192.168.56.0/24"           # the private segment a lab's nodes and client share (Vagrant's too)
LB_POOL = "192.168.57.0/24"               # LoadBalancer addresses a lab hands out

SERVICE_NETWORK = ipaddress.ip_network(SERVICE_CIDR)


def shell_assignments() -> str:
    """The address plan as `NAME=value` lines for shell scripts."""
    facts = {"SERVICE_CIDR": SERVICE_CIDR, "KUBERNETES_SERVICE_IP": KUBERNETES_SERVICE_IP,
             "CLUSTER_DNS_IP": CLUSTER_DNS_IP, "CLUSTER_CIDR": CLUSTER_CIDR, "NODE_CIDR_PREFIX": NODE_CIDR_PREFIX,
             "CLUSTER_DOMAIN": CLUSTER_DOMAIN, "LAB_SEGMENT": LAB_SEGMENT, "LB_POOL": LB_POOL,
             "NODEPORT_RANGE": f"{NODEPORT_RANGE.start}-{NODEPORT_RANGE.stop - 1}"}
    return "".join(f"{k}={v}\n" for k, v in facts.items())


def node_pod_cidr(index: int) -> str:
    """The pod CIDR of node number `index` when nodes are numbered statically (Vagrant): the index-th subnet."""
    subnets = ipaddress.ip_network(CLUSTER_CIDR).subnets(new_prefix=NODE_CIDR_PREFIX)
    for i, subnet in enumerate(subnets):
        if i == index:
            return str(subnet)
    raise ValueError(f"node index {index} is beyond {CLUSTER_CIDR}")


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["pod-cidr"]:
        print(node_pod_cidr(int(sys.argv[2])))
    else:
        print(shell_assignments(), end="")
