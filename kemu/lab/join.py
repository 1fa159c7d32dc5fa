"""Nodes that join through the API server: their credentials, their kubeconfig, and the RBAC kemu's node daemons
need beyond upstream's `system:node` role.

A node's credential is a client certificate `CN=system:node:<name>, O=system:nodes` from the lab CA (kubelet's, as
kubeadm issues it). Every daemon of the node (agent, proxy, DNS server, NetworkPolicy enforcer) uses the node's
kubeconfig; `system:node` (bootstrap policy, bound to group system:nodes; there is no Node authorizer) covers the
agent, and `kemu:node-daemons` (also bound to system:nodes) adds what kube-proxy, the DNS server and the enforcer read,
and the kube-dns Endpoints the DNS server registers in.
"""
from __future__ import annotations

import os

from kemu.apiserver.bootstrappolicy import READ, _binding, _role, rule
from kemu.apiserver.kubeconfig import admin_kubeconfig, write
from kemu.lab.pki import CertPair, LabPKI

NODES_GROUP = "system:nodes"
NODE_DAEMONS_ROLE = "kemu:node-daemons"


def node_user(name: str) -> str:
    return f"system:node:{name}"


def node_daemon_policy() -> list[dict]:
    """The ClusterRole and ClusterRoleBinding kemu's node daemons need besides `system:node`."""
    role = _role(NODE_DAEMONS_ROLE, [
        rule(READ, [""], ["events", "namespaces", "endpoints", "serviceaccounts"]),
        rule(["update", "patch"], [""], ["events"]),
        rule(["create"], [""], ["endpoints", "services"]),              # kube-dns (clusterdns.register_endpoint)
        rule(["update", "patch"], [""], ["endpoints"], ["kube-dns"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),             # proxy, DNS
        rule(READ, ["networking.k8s.io"], ["networkpolicies"]),           # NetworkPolicy enforcer
    ])
    return [role, _binding(NODE_DAEMONS_ROLE, NODE_DAEMONS_ROLE, [("Group", NODES_GROUP)])]


def issue_node_credential(pki: LabPKI, name: str) -> CertPair:
    """The node's client certificate (`<pki>/node-<name>.crt/.key`; issued once)."""
    return pki.issue(f"node-{name}", node_user(name), (NODES_GROUP,), client=True)


def write_node_kubeconfig(path: str, cluster: str, server: str, pki: LabPKI, name: str) -> str:
    """Write (0600) a kubeconfig for node `name` against `server`: the lab CA and the node's certificate embedded,
    so the file alone is the credential; returns `path`."""
    pair = issue_node_credential(pki, name)
    config = admin_kubeconfig(cluster, server, pki.ca.cert, pair.cert, pair.key)
    config["users"][0]["name"] = config["contexts"][0]["context"]["user"] = node_user(name)
    config["contexts"][0]["name"] = config["current-context"] = f"{node_user(name)}@{cluster}"
    write(path, config)
    os.chmod(path, 0o600)
    return path
