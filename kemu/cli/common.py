"""What every `kemu` command shares: the user-facing error, finding the lab and the cluster, names and namespaces,
node configs, the root-namespace guard, and the client for a node agent's server. The bottom of kemu.cli: it
imports no sibling module.
"""
from __future__ import annotations

import argparse
import json
import os

DEFAULT_LAB = "kemu"
HOST_NODE_CONFIG = "/etc/kemu/node.json"   # written by vagrant/provision.sh on hosts that are kemu nodes
HOST_PKI_DIR = "/etc/kemu/pki"             # a host node's LabPKI-shaped dir: ca.crt + the kubelet client pair


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def open_lab(args: argparse.Namespace, must_exist: bool = True):
    """The lab the command acts on (`--name` of `lab` commands, else --lab/KEMU_LAB)."""
    from kemu.lab import Lab, LabError
    try:
        lab = Lab(getattr(args, "lab_name", None) or args.lab)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    if must_exist and not lab.exists():
        raise CLIError(f"lab {lab.name} is not up; run `kemu lab up --name {lab.name}` (labs: "
                       f"{', '.join(Lab.names()) or 'none'})")
    return lab


def host_node_store(args: argparse.Namespace) -> str | None:
    """On a host-mode node (a VM) with no --store, KEMU_LAB or lab of the default name: its node config's store."""
    if args.store_url or "KEMU_LAB" in os.environ or args.lab != DEFAULT_LAB or not os.path.exists(HOST_NODE_CONFIG):
        return None
    from kemu.lab import Lab
    if Lab(DEFAULT_LAB).exists():
        return None
    with open(HOST_NODE_CONFIG) as f:
        return json.load(f)["store_url"]


def open_client(args: argparse.Namespace):
    """The cluster to talk to: --store/KEMU_STORE, else the lab (--lab/KEMU_LAB), else on a host-mode node (a VM)
    the store its node config names."""
    from kemu.client import Client
    from kemu.store import open_store
    url = args.store_url or host_node_store(args)
    return Client(open_store(url)) if url else open_lab(args).client()


def seconds_arg(value: str) -> float:
    """argparse type for durations: 10s, 1m30s, 500ms or a number of seconds."""
    from kemu.api.nodeconfig import seconds
    try:
        return seconds(value if not value.replace(".", "", 1).isdigit() else float(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def resolve_kind(name: str):
    from kemu.api.kinds import resolve_kind as resolve
    try:
        return resolve(name)
    except KeyError as exc:
        raise CLIError(f"error: {exc.args[0]}") from None


def split_kind_name(kind: str, name: str | None) -> tuple[str, str | None]:
    """`deployment/web` or (`deployment`, `web`) → (`deployment`, `web`)."""
    if "/" in kind and name is None:
        kind, name = kind.split("/", 1)
    return kind, name


def namespace_of(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or "default"


def find_pod(args: argparse.Namespace, name: str) -> dict:
    pod = open_client(args).get("Pod", namespace_of(args), name)
    if pod is None:
        raise CLIError(f'Error from server (NotFound): pods "{name}" not found')
    return pod


def container_name(pod: dict, wanted: str | None) -> str:
    """`wanted` if the pod has such a container, else the first app container (kubectl's default)."""
    names = [c["name"] for c in pod["spec"]["containers"]] + [c["name"] for c in pod["spec"].get("initContainers")
                                                              or []]
    if wanted:
        if wanted not in names:
            raise CLIError(f"container {wanted} is not valid for pod {pod['metadata']['name']}: choose one of "
                           f"{names}")
        return wanted
    return names[0]


def load_node_config(path: str):
    from kemu.api.nodeconfig import NodeConfig
    with open(path) as f:
        return NodeConfig(**json.load(f))


def in_root_netns() -> bool:
    """Is this process in the machine's initial network namespace? (PID 1's; where /proc/1 is not readable, any
    namespace that is not a named one under /run/netns counts as the root one.)"""
    own = os.stat("/proc/self/ns/net").st_ino
    try:
        return own == os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        named = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        return all(os.stat(os.path.join("/run/netns", n)).st_ino != own for n in named)


def guard_host_mode(args: argparse.Namespace) -> None:
    """Node daemons program routes, bridges and nftables: only inside a lab node's netns, unless told otherwise."""
    if in_root_netns() and not args.host_mode:
        raise CLIError(f"kemu {args.verb}: refusing to run in this machine's root network namespace; run it inside "
                       "a lab node (kemu lab up) or pass --host-mode on a host the node owns (e.g. a Vagrant VM)")


def node_client(args: argparse.Namespace, node_name: str):
    """A client for `node_name`'s agent server, authenticated with kemu's kubelet client certificate. For a lab it
    connects from inside the lab's `kemu-<lab>-net` namespace (never from this machine's root namespace); only on
    a host-mode node (a VM, /etc/kemu/node.json) directly, with the certificates under /etc/kemu/pki."""
    from kemu.client.nodeclient import ClientTLS, NodeClient, NodeClientError, direct
    from kemu.lab.pki import LabPKI
    if args.store_url or host_node_store(args):
        if not os.path.exists(HOST_NODE_CONFIG):
            raise CLIError("error: with --store, kemu reaches node agents only on a host-mode node (a VM with "
                           f"{HOST_NODE_CONFIG}); run it there or use --lab")
        pki, connect = LabPKI(HOST_PKI_DIR), direct
    else:
        lab = open_lab(args)
        pki, connect = LabPKI(lab.pki_dir), from_netns(lab.net.path)
    tls = ClientTLS(pki.ca.cert, *kubelet_client_pair(pki))
    try:
        return NodeClient.for_node(open_client(args), node_name, tls, connect)
    except NodeClientError as exc:
        raise CLIError(f"error: {exc}") from None


def from_netns(netns: str):
    """A NodeClient `connect` whose sockets are made inside the network namespace at `netns`."""
    import socket

    from runtime.linux import call_in_netns

    def connect(host: str, port: int, timeout: float) -> socket.socket:
        return call_in_netns(netns, lambda: socket.create_connection((host, port), timeout=timeout))
    return connect


def kubelet_client_pair(pki) -> tuple[str, str]:
    """(cert, key) of the client certificate kemu (and next the API server) shows to node agents."""
    from kemu.lab import KUBELET_CLIENT_CERT
    from kemu.lab.pki import CertPair
    pair = CertPair(os.path.join(pki.dir, f"{KUBELET_CLIENT_CERT}.crt"),
                    os.path.join(pki.dir, f"{KUBELET_CLIENT_CERT}.key"))
    if not (os.path.exists(pair.cert) and os.path.exists(pair.key)):
        raise CLIError(f"error: no kubelet client certificate in {pki.dir}: (re)create the lab with `kemu lab up`")
    return pair.cert, pair.key
