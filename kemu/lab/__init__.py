"""A lab: nodes as network namespaces on a private L2 segment, each running a node agent and a proxy, plus a
`client` host outside the cluster. Nothing of it lives in the machine's root network namespace.

    kemu-<lab>-net      the lab segment: bridge br0 192.168.56.1/24 (the "host" side, like Vagrant's); etcd and
                        the controller-manager run here
    kemu-<lab>-nodeN    eth1 192.168.56.(10+N), pod bridge kemu0 with the node's podCIDR, agent + proxy inside
    kemu-<lab>-client   eth1 192.168.56.100

The store is SQLite (one node) or etcd (N >= 2, or --store etcd). The lab's etcd listens on 192.168.56.1:2379 and
127.0.0.1:2379 inside kemu-<lab>-net only, plus a unix socket under the lab directory for the CLI, which runs in the
root namespace and must not reach into the lab over IP. Pod CIDRs are allocated in the store
(kemu.controllers.nodeipam); pod traffic between nodes is routed (host-gw) or carried by a VXLAN overlay (--pod-network vxlan), never NATed.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable
from urllib.parse import urlencode

import yaml

from kemu.api.meta import is_dns1123_label
from kemu.api.network import CLUSTER_CIDR, KUBERNETES_SERVICE_IP, LAB_SEGMENT, LB_POOL, NODE_CIDR_PREFIX
from kemu.api.nodeconfig import NodeConfig, load_kubelet_config
from kemu.client import Client
from kemu.lab.netns import (
    Bridge,
    Namespace,
    VethPair,
    Vxlan,
    add_multipath_route,
    add_route,
    keep_pod_sources,
    link_is_up,
    set_link,
)
from kemu.apiserver.bootstrappolicy import bootstrap_objects
from kemu.client.tokens import ensure_key
from kemu.lab.join import node_daemon_policy, write_node_kubeconfig
from kemu.lab.pki import LabPKI
from kemu.store import open_store
from kemu.store.allocator import allocate_pod_cidr
from kemu.store.etcd import EtcdStore, remove_stale_sockets, server_argv, wait_ready
from runtime import cgroups, linux
from runtime.process import pid_alive, start_ticks

LABS_DIR = os.environ.get("KEMU_LABS_DIR", "/run/kemu/labs")
LAB_NETWORK = ipaddress.ip_network(LAB_SEGMENT)
LAB_GATEWAY = str(LAB_NETWORK[1])
CLIENT_IP = str(LAB_NETWORK[100])
ETCD_PORT = 2379
POD_NETWORKS = ("host-gw", "vxlan")
MAX_NODES = 50
NODE_TRANSPORTS = ("store", "api")
APISERVER_PORT = 6443
APISERVER_DNS_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local", "localhost")
KUBELET_CLIENT_CERT = "apiserver-kubelet-client"   # <lab>/pki/<this>.{crt,key}: what node agents' servers trust
BOOTSTRAP = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
    for n in ("default", "kube-system", "kube-public", "kube-node-lease")
] + [{"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver",
                                                                             "provider": "kubernetes"}},
      "spec": {"clusterIP": KUBERNETES_SERVICE_IP, "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}]


BOOTSTRAP_NAMESPACES = [o["metadata"]["name"] for o in BOOTSTRAP if o["kind"] == "Namespace"]


class LabError(RuntimeError):
    pass


def bootstrap(client: Client) -> None:
    """A new cluster's objects: namespaces, the kubernetes Service, the RBAC policy (incl. the node roles)."""
    client.apply(BOOTSTRAP + bootstrap_objects(BOOTSTRAP_NAMESPACES) + node_daemon_policy(), source="bootstrap")


def node_ip(index: int) -> str:
    return str(LAB_NETWORK[10 + index])


def vtep_mac(index: int) -> str:
    """The VXLAN device MAC of node N (fixed, so peers can be programmed before the device exists)."""
    return f"0a:58:c0:a8:38:{index:02x}"


@dataclass
class Daemon:
    """A lab process: the argv it runs, in which namespace, and its identity (PID + start ticks)."""
    name: str
    pid: int = 0
    ticks: int = 0
    log: str = ""

    def alive(self) -> bool:
        return bool(self.pid) and pid_alive(self.pid, self.ticks)

    def stop(self, timeout: float = 3.0) -> None:
        if not self.alive():
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)


@dataclass
class LabState:
    name: str
    nodes: list[str] = field(default_factory=list)
    daemons: dict[str, dict] = field(default_factory=dict)
    kubelet_config: dict = field(default_factory=dict)
    created: float = 0.0
    store: str = "sqlite"                 # sqlite | etcd
    store_url: str = ""                   # what the CLI (root namespace) uses
    node_store_url: str = ""              # what daemons inside the lab use
    pod_network: str = "host-gw"          # host-gw | vxlan
    pod_cidrs: dict[str, str] = field(default_factory=dict)
    node_monitor_grace_period: float = 40.0
    hpa_downscale_stabilization: float = 300.0   # the controller-manager's HPA flags (tests shorten them)
    hpa_sync_period: float = 15.0
    node_transport: str = "store"         # store | api: how the lab's node daemons reach the cluster
    remote_nodes: dict[str, dict] = field(default_factory=dict)   # joined from outside: name -> {ip, pod_cidr}


class Lab:
    def __init__(self, name: str) -> None:
        if not is_dns1123_label(name) or len(name) > 20:
            raise LabError(f"lab name {name!r}: use a DNS-1123 label of at most 20 characters, e.g. kemu or t1")
        self.name = name
        self.dir = os.path.join(LABS_DIR, name)
        self.state_path = os.path.join(self.dir, "lab.json")
        self.etcd_dir = os.path.join(self.dir, "etcd")
        self.etcd_socket = os.path.join(self.etcd_dir, "client.sock:0")
        self.prefix = f"kemu-{name}-"
        self.net = Namespace(f"{self.prefix}net")
        self.state = self._load()

    @property
    def store_url(self) -> str:
        return self.state.store_url or f"sqlite://{os.path.join(self.dir, 'store.db')}"

    @property
    def node_store_url(self) -> str:
        return self.state.node_store_url or self.store_url

    # ---- state -------------------------------------------------------------------------------------------------
    def _load(self) -> LabState:
        try:
            with open(self.state_path) as f:
                return LabState(**json.load(f))
        except FileNotFoundError:
            return LabState(self.name)
        except PermissionError:       # the lab directory is 0700 (_make_private_dirs): say so, do not wait on it
            raise LabError(f"kemu: lab {self.name}'s state is readable by root only; run kemu as root (or kubectl "
                           "with a kubeconfig root gives you: kemu lab kubeconfig)") from None

    def _save(self) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self.state), f, indent=2)
        os.replace(tmp, self.state_path)

    def exists(self) -> bool:
        return os.path.exists(self.state_path)

    @staticmethod
    def names() -> list[str]:
        return sorted(os.listdir(LABS_DIR)) if os.path.isdir(LABS_DIR) else []

    def client(self) -> Client:
        from kemu.api.images import use_overrides
        use_overrides(self.state.kubelet_config.get("image_catalog"), "lab configuration")
        return Client(open_store(self.store_url))

    def _image_catalog_file(self) -> str:
        """The lab's image catalog entries (`images:` of --config) as a file its daemons read."""
        path = os.path.join(self.dir, "images.yaml")
        with open(path, "w") as f:
            yaml.safe_dump({"entries": self.state.kubelet_config["image_catalog"]}, f)
        return path

    def namespace(self, host: str) -> Namespace:
        if host != "client" and host not in self.state.nodes and host != "net":
            raise LabError(f"no host {host!r} in lab {self.name}: hosts are {', '.join(self.state.nodes + ['client'])}")
        return Namespace(f"{self.prefix}{host}")

    def node_config(self, index: int) -> NodeConfig:
        name = f"node{index}"
        settings = {**self.node_server_tls(name, node_ip(index)), **self.state.kubelet_config,
                    # the agent issues its pods' service-account tokens in-process (docs/apiserver.md)
                    "service_account_key_file": ensure_key(self.pki_dir),
                    "root_ca_file": LabPKI(self.pki_dir).ensure_ca().cert}
        if self.state.node_transport == "api":     # through the API server, as a joined VM does
            settings["kubeconfig"] = write_node_kubeconfig(
                os.path.join(self.dir, "nodes", name, "kubelet.conf"), f"kemu-{self.name}", self.api_url, self.pki,
                name)
        return NodeConfig(node_name=name, state_dir=os.path.join(self.dir, "nodes", name),
                          store_url="" if self.state.node_transport == "api" else self.node_store_url,
                          node_ip=node_ip(index), pod_cidr=self.state.pod_cidrs[name],
                          cluster_cidr=CLUSTER_CIDR,
                          cgroup_root=f"{self.prefix}{name}", **settings)

    # ---- node agent server certificates (kubelet :10250; kemu.cli.common.node_client is their client) -------
    @property
    def pki_dir(self) -> str:
        return os.path.join(self.dir, "pki")

    def node_server_tls(self, node: str, ip: str) -> dict:
        """Issue (once) the node's serving certificate and kemu's kubelet client certificate from the lab CA;
        the NodeConfig fields that name them."""
        pki = LabPKI(self.pki_dir)
        serving = pki.issue(f"kubelet-{node}", node, dns_names=(node,), ip_addresses=(ip,), server=True)
        pki.issue(KUBELET_CLIENT_CERT, "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",), client=True)
        return {"tls_cert_file": serving.cert, "tls_private_key_file": serving.key, "client_ca_file": pki.ca.cert}

    # ---- up ----------------------------------------------------------------------------------------------------
    def up(self, nodes: int = 1, config_file: str | None = None, timeout: float = 30.0, store: str | None = None,
           etcd_endpoint: str | None = None, pod_network: str = "host-gw",
           node_monitor_grace_period: float = 40.0, node_transport: str = "store",
           hpa_downscale_stabilization: float = 300.0, hpa_sync_period: float = 15.0) -> None:
        """Create the lab. `store`: sqlite|etcd (default sqlite for 1 node, etcd for more); `etcd_endpoint`: use
        that etcd (etcd://, etcds://?ca=&cert=&key=) instead of starting one; `node_transport`: store (node
        daemons use the store in-process: fastest) or api (through the API server with a node certificate)."""
        if node_transport not in NODE_TRANSPORTS:
            raise LabError(f"--node-transport {node_transport}: use {' or '.join(NODE_TRANSPORTS)}")
        store = store or ("etcd" if nodes >= 2 or etcd_endpoint else "sqlite")
        if store not in ("sqlite", "etcd"):
            raise LabError(f"--store {store}: use sqlite or etcd")
        if etcd_endpoint and store != "etcd":
            raise LabError("--etcd-endpoint needs --store etcd")
        if pod_network not in POD_NETWORKS:
            raise LabError(f"--pod-network {pod_network}: use {' or '.join(POD_NETWORKS)}")
        if node_monitor_grace_period <= 0:
            raise LabError("--node-monitor-grace-period: must be a positive number of seconds")
        if self.exists():
            raise LabError(f"lab {self.name} already exists; run `kemu lab down --name {self.name}` first")
        if not 1 <= nodes <= MAX_NODES:
            raise LabError(f"--nodes: must be between 1 and {MAX_NODES}")
        if Namespace.list(self.prefix):
            raise LabError(f"namespaces {Namespace.list(self.prefix)} are left from an earlier lab {self.name}; "
                           f"run `kemu lab down --name {self.name}`")
        overrides = load_kubelet_config(config_file) if config_file else {}
        # nodes post status 4 times per grace period (upstream: every 10 s, grace 40 s)
        overrides.setdefault("node_status_update_frequency", min(10.0, node_monitor_grace_period / 4))
        self._make_private_dirs()
        self.state = LabState(self.name, [f"node{i}" for i in range(1, nodes + 1)], {}, overrides, time.time(),
                              store=store, pod_network=pod_network,
                              node_monitor_grace_period=node_monitor_grace_period, node_transport=node_transport,
                              hpa_downscale_stabilization=hpa_downscale_stabilization, hpa_sync_period=hpa_sync_period)
        if etcd_endpoint:
            self.state.store_url = self.state.node_store_url = etcd_endpoint
        self._save()
        try:
            own_etcd = store == "etcd" and not etcd_endpoint
            self._build_network(nodes, then=self._spawn_etcd if own_etcd else None)   # etcd boots meanwhile
            if store == "etcd":
                self._wait_etcd()
            client = self.client()
            bootstrap(client)
            self._spawn_apiserver()
            if node_transport == "api":
                self._wait_apiserver(timeout)      # the nodes' only way to the cluster
            self.state.pod_cidrs = {n: allocate_pod_cidr(client.store, n, CLUSTER_CIDR, NODE_CIDR_PREFIX) for n in self.state.nodes}
            self._save()
            self._start_daemons(nodes)
            self._route_pod_networks()     # while the agents start (no pod can exist before they are Ready)
            self.wait_ready(client, timeout)
            self._wait_apiserver(timeout)
        except BaseException:
            self.down()
            raise

    def _build_network(self, nodes: int, then: Callable[[], None] | None = None) -> None:
        """The lab segment, nodes and client; `then` runs as soon as the segment exists."""
        self.net.create()
        lan = Bridge(self.net, "br0").create(LAB_GATEWAY, LAB_NETWORK.prefixlen)
        if then:
            then()
        for i in range(1, nodes + 1):
            ns = Namespace(f"{self.prefix}node{i}").create()
            VethPair(self.net, f"node{i}", ns, "eth1").create(lan, node_ip(i), LAB_NETWORK.prefixlen, LAB_GATEWAY)
            ns.sysctl({"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1,
                       "net.ipv4.conf.all.rp_filter": 0})
        client = Namespace(f"{self.prefix}client").create()
        VethPair(self.net, "client", client, "eth1").create(lan, CLIENT_IP, LAB_NETWORK.prefixlen)
        # LoadBalancer addresses are announced to the outside (the client) as an ECMP route over the nodes,
        # the way MetalLB's BGP mode does; the node that gets a packet DNATs it like a ClusterIP
        add_multipath_route(client, LB_POOL, [node_ip(i) for i in range(1, nodes + 1)])

    def _route_pod_networks(self, only: str | None = None) -> None:
        """Make every node's pod CIDR reachable from every other node, without NAT (host-gw routes or VXLAN).
        Idempotent; `only` re-programs one node (after its link came back, the kernel dropped its routes)."""
        cidrs = [(i, self.state.pod_cidrs[n]) for i, n in enumerate(self.state.nodes, start=1)]
        for i, local in cidrs:
            if only and only != f"node{i}":
                continue
            ns = Namespace(f"{self.prefix}node{i}")
            keep_pod_sources(ns, CLUSTER_CIDR, local)
            add_route(self.net, local, node_ip(i))   # the API server's proxies reach pods from the lab netns
            if self.state.pod_network == "vxlan":
                vxlan = Vxlan(ns)
                if not vxlan.exists():
                    vxlan.create(node_ip(i), "eth1", vtep_mac(i), _network_address(local))
                for j, cidr in cidrs:
                    if j != i:
                        vxlan.add_peer(cidr, _network_address(cidr), vtep_mac(j), node_ip(j))
            else:
                for j, cidr in cidrs:
                    if j != i:
                        add_route(ns, cidr, node_ip(j))
                for remote in self.state.remote_nodes.values():     # joined through the API (join_command)
                    add_route(ns, remote["pod_cidr"], remote["ip"])

    def _start_etcd(self) -> None:
        self._spawn_etcd()
        self._wait_etcd()

    def _spawn_etcd(self) -> None:
        """etcd in the lab's net namespace: TCP on the lab gateway and loopback there, a unix socket for the CLI."""
        os.makedirs(self.etcd_dir, mode=0o700, exist_ok=True)
        remove_stale_sockets(self.etcd_dir)
        urls = [f"https://{LAB_GATEWAY}:{ETCD_PORT}", f"https://127.0.0.1:{ETCD_PORT}",
                f"unix://{os.path.basename(self.etcd_socket)}"]
        tls, node_url = self.etcd_tls()
        self._spawn("etcd", self.net, server_argv(f"kemu-{self.name}", os.path.join(self.etcd_dir, "data"), urls,
                                                  tls=tls), cwd=self.etcd_dir)
        self.state.store_url = f"etcd+unix://{self.etcd_socket}"
        self.state.node_store_url = node_url
        self._save()

    # ---- the lab's etcd requires client certificates (pods on the lab segment must not rule the cluster) ----
    def etcd_tls(self) -> tuple[tuple[str, str, str], str]:
        """Issue (once) etcd's serving certificate and the client certificate of kemu's components from the lab CA;
        returns (ca, cert, key) for etcd and the `etcds://` store URL of daemons inside the lab. The serving
        certificate covers the lab gateway and loopback, and carries clientAuth too: etcd 3.4's JSON gateway dials
        etcd's own gRPC port with it. The CLI keeps the unix socket, which is root-only (a 0700 directory)."""
        pki = LabPKI(self.pki_dir)
        server = pki.issue("etcd-server", f"kemu-{self.name}-etcd", dns_names=("localhost",),
                           ip_addresses=(LAB_GATEWAY, "127.0.0.1"), server=True, client=True)
        client = pki.issue("etcd-client", "kube-apiserver-etcd-client", ("system:masters",), client=True)
        query = urlencode({"ca": pki.ca.cert, "cert": client.cert, "key": client.key}, safe="/")
        return (pki.ca.cert, server.cert, server.key), f"etcds://{LAB_GATEWAY}:{ETCD_PORT}?{query}"

    # ---- file modes: a lab's state (store, Secrets in pod volumes, keys, logs) is root's alone --------------
    def _make_private_dirs(self) -> None:
        """The lab directory 0700 (kubelet keeps its state 0750 for root's group; kemu has no such group) and its
        logs 0700: nothing below is reachable for another local user whatever the mode of a file inside."""
        os.makedirs(os.path.dirname(self.dir), mode=0o755, exist_ok=True)
        for path in (self.dir, os.path.join(self.dir, "logs")):
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)

    def _wait_etcd(self) -> None:
        try:
            wait_ready(EtcdStore(self.state.store_url), timeout=15)
        except RuntimeError as exc:
            where = f"see {self.dir}/logs/etcd.log" if "etcd" in self.state.daemons else "check --etcd-endpoint"
            raise LabError(f"lab {self.name}: etcd at {self.state.store_url} is not answering ({exc}); {where}") \
                from None

    def _spawn(self, key: str, ns: Namespace | None, argv: list[str], cwd: str | None = None) -> None:
        """Start a daemon in `ns` (None: this process's network namespace)."""
        log_path = os.path.join(self.dir, "logs", f"{key}.log")
        env = dict(os.environ, KEMU_LAB=self.name, PYTHONUNBUFFERED="1")
        if self.state.kubelet_config.get("image_catalog"):   # the API server validates against the lab's catalog
            env["KEMU_IMAGE_CATALOG"] = self._image_catalog_file()
        os.makedirs(os.path.join(self.dir, "supervise"), exist_ok=True)
        # each daemon runs under its own supervisor (kemu/lab/supervise.py), which restarts it when it dies
        node_config = ["--node-config", argv[argv.index("--node-config") + 1]] if "--node-config" in argv else []
        argv = [sys.executable, "-m", "kemu.lab.supervise", self.supervise_file(key), *node_config, "--", *argv]
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            proc = subprocess.Popen(ns.enter_argv(argv) if ns else argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, env=env, cwd=cwd)
        # nsenter execs the command, so the PID is the daemon's supervisor's
        self.state.daemons[key] = asdict(Daemon(key, proc.pid, start_ticks(proc.pid) or 0, log_path))
        self._save()

    def supervise_file(self, key: str) -> str:
        """Where daemon `key`'s supervisor records its pid, restarts and last exit."""
        return os.path.join(self.dir, "supervise", f"{key}.json")

    def daemon_status(self) -> list[dict]:
        """Every daemon of the lab: name, supervisor pid, daemon pid, running, restarts, last exit."""
        from kemu.lab.supervise import read_state
        out = []
        for key, d in sorted(self.state.daemons.items()):
            daemon = Daemon(**d)
            sup = read_state(self.supervise_file(key))
            pid = sup.get("pid") or 0
            out.append({"name": key, "supervisor": daemon.pid if daemon.alive() else 0, "pid": pid,
                        "running": daemon.alive() and bool(pid) and pid_alive(pid),
                        "restarts": sup.get("restarts", 0), "last_exit": sup.get("last_exit", "")})
        return out

    def restart(self, target: str) -> list[str]:
        """Restart a daemon (`node1-proxy`, `controller-manager`) or every daemon of a node (`node1`) now, under
        their supervisors (a stopped one is started); returns the daemons restarted."""
        keys = [k for k in self.state.daemons if k == target or k.startswith(f"{target}-")]
        if not keys:
            raise LabError(f"{target!r} is neither a node nor a daemon of lab {self.name}: use one of "
                           f"{', '.join(self.state.nodes + sorted(self.state.daemons))}")
        for key in keys:
            daemon = Daemon(**self.state.daemons[key])
            if daemon.alive():
                os.kill(daemon.pid, signal.SIGHUP)
            elif key == "etcd":
                self._start_etcd()
            elif key.endswith("-agent"):
                self._spawn_agent(key.removesuffix("-agent"))
            else:
                raise LabError(f"{key} is not running and has no supervisor: `kemu lab start` or re-create the lab")
        return keys

    def _start_daemons(self, nodes: int) -> None:
        kemu = [sys.executable, "-m", "kemu.cli"]
        cm_store = self.node_store_url.replace(f"//{LAB_GATEWAY}:", "//127.0.0.1:")
        pki = LabPKI(self.pki_dir)
        kubelet = pki.issue(KUBELET_CLIENT_CERT, "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",),
                            client=True)     # the HPA's metrics client reads node agents' stats with it
        self._spawn("controller-manager", self.net, kemu + [
            "controller-manager", "--store", cm_store,
            "--node-monitor-grace-period", str(self.state.node_monitor_grace_period),
            "--horizontal-pod-autoscaler-downscale-stabilization", str(self.state.hpa_downscale_stabilization),
            "--horizontal-pod-autoscaler-sync-period", str(self.state.hpa_sync_period),
            "--kubelet-client-certificate", kubelet.cert, "--kubelet-client-key", kubelet.key,
            "--kubelet-certificate-authority", pki.ca.cert])
        for i in range(1, nodes + 1):
            self._start_node_daemons(i)

    def _start_node_daemons(self, i: int) -> None:
        """node.json, then the node's agent, proxy and DNS server."""
        kemu = [sys.executable, "-m", "kemu.cli"]
        cfg = self.node_config(i)
        os.makedirs(cfg.state_dir, exist_ok=True)
        cfg_path = os.path.join(cfg.state_dir, "node.json")
        with open(cfg_path, "w") as f:
            json.dump(asdict(cfg), f, indent=2)
        self._spawn_agent(f"node{i}")
        self._spawn(f"node{i}-proxy", self.namespace(f"node{i}"), kemu + ["proxy", "--node-config", cfg_path])
        self._spawn(f"node{i}-netpol", self.namespace(f"node{i}"), kemu + ["netpol", "--node-config", cfg_path])
        # the node's ingress controller: nginx on the node's :80/:443 (ingress/run.py, docs/ingress.md)
        self._spawn(f"node{i}-ingress", self.namespace(f"node{i}"), kemu + ["ingress", "--node-config", cfg_path])
        # the node's cluster DNS server (NodeLocal-DNSCache-like); it registers in kube-dns's Endpoints
        self._spawn(f"node{i}-dns", self.namespace(f"node{i}"), kemu + ["dns", "--node-config", cfg_path])

    def _spawn_agent(self, node: str) -> None:
        cfg_path = os.path.join(self.dir, "nodes", node, "node.json")
        self._spawn(f"{node}-agent", self.namespace(node),
                    [sys.executable, "-m", "kemu.cli", "node-agent", "--node-config", cfg_path])

    # ---- API server (kubectl) -------------------------------------------------------------------------------
    @property
    def pki(self) -> LabPKI:
        return LabPKI(self.pki_dir)

    @property
    def api_url(self) -> str:
        """The API server as nodes and pods reach it: on the lab segment."""
        return f"https://{LAB_GATEWAY}:{APISERVER_PORT}"

    @property
    def kubeconfig_path(self) -> str:
        """The lab's admin kubeconfig (server https://127.0.0.1:<port>, context kemu-<lab>)."""
        return os.path.join(self.dir, "kubeconfig")

    def _spawn_apiserver(self) -> None:
        """The API server, TLS with the lab CA: on LAB_GATEWAY:6443 inside the lab's net namespace (for pods and
        nodes) and on a free port of the machine's loopback (for the user's kubectl). It runs in the root
        namespace, where the CLI's store URL works, and creates its lab socket there by setns() on a thread."""
        pki = LabPKI(self.pki_dir)
        serving = pki.issue("apiserver", "kube-apiserver", dns_names=APISERVER_DNS_NAMES,
                            ip_addresses=("127.0.0.1", LAB_GATEWAY, KUBERNETES_SERVICE_IP), server=True)
        kubelet = pki.issue(KUBELET_CLIENT_CERT, "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",),
                            client=True)     # streams and proxies go to node agents with it, from the lab netns
        self._spawn("apiserver", None, [
            sys.executable, "-m", "kemu.apiserver", "--store", self.store_url, "--listen", "127.0.0.1:0",
            "--listen-netns", f"{self.net.path}={LAB_GATEWAY}:{APISERVER_PORT}", "--tls-cert", serving.cert,
            "--tls-key", serving.key, "--client-ca", pki.ca.cert, "--advertise-address", LAB_GATEWAY,
            "--service-account-signing-key-file", ensure_key(self.pki_dir),
            "--kubelet-client-certificate", kubelet.cert, "--kubelet-client-key", kubelet.key,
            "--kubelet-certificate-authority", pki.ca.cert,
            "--ready-file", os.path.join(self.dir, "apiserver.json")])

    def _wait_apiserver(self, timeout: float) -> None:
        """Wait until the API server listens, then write the admin kubeconfig for its loopback port."""
        from kemu.apiserver.kubeconfig import admin_kubeconfig, write
        ready = os.path.join(self.dir, "apiserver.json")
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if not Daemon(**self.state.daemons["apiserver"]).alive():
                raise LabError(f"lab {self.name}: apiserver exited: {self._log_tail('apiserver')}")
            if time.monotonic() > deadline:
                raise LabError(f"lab {self.name}: apiserver not serving after {timeout:.0f}s; see {self.dir}/logs/")
            time.sleep(0.02)
        with open(ready) as f:
            port = json.load(f)["ports"][0]
        pki = LabPKI(self.pki_dir)
        admin = pki.issue("admin", "kubernetes-admin", ("system:masters",), client=True)
        write(self.kubeconfig_path, admin_kubeconfig(f"kemu-{self.name}", f"https://127.0.0.1:{port}", pki.ca.cert,
                                                     admin.cert, admin.key))

    # ---- grow --------------------------------------------------------------------------------------------------
    def add_node(self, timeout: float = 30.0) -> str:
        """Grow a running lab by one node, built as `up` builds one: netns on the lab segment, pod CIDR claimed in
        the store, pod routes (or VXLAN peers) both ways, agent + proxy + DNS; returns its name once it is Ready."""
        if not self.exists():
            raise LabError(f"lab {self.name} is not up; run `kemu lab up --name {self.name}` first")
        index = len(self.state.nodes) + 1
        if index > MAX_NODES:
            raise LabError(f"lab {self.name} has {MAX_NODES} nodes already (the most a lab can have)")
        name = f"node{index}"
        ns = Namespace(f"{self.prefix}{name}")
        if ns.exists():
            raise LabError(f"namespace {ns.name} is left from an earlier node; run `kemu lab down --name {self.name}`")
        client = self.client()
        # in lab.json before the namespace exists, so `lab down` and leftovers() cover a half-built node too
        self.state.nodes.append(name)
        self.state.pod_cidrs[name] = allocate_pod_cidr(client.store, name, CLUSTER_CIDR, NODE_CIDR_PREFIX)
        self._save()
        ns.create()
        VethPair(self.net, name, ns, "eth1").create(Bridge(self.net, "br0"), node_ip(index), LAB_NETWORK.prefixlen,
                                                    LAB_GATEWAY)
        ns.sysctl({"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1,
                   "net.ipv4.conf.all.rp_filter": 0})
        self._start_node_daemons(index)
        self._route_pod_networks()    # idempotent: the new node to the others and the others to it
        # the client's ECMP route to LoadBalancer addresses spans the new node too (as `up` makes it)
        add_multipath_route(Namespace(f"{self.prefix}client"), LB_POOL, [node_ip(i) for i in range(1, index + 1)])
        self._wait_node_ready(client, name, timeout)
        return name

    # ---- nodes joining from outside (a VM): only the API address and a credential -----------------------------
    def join_command(self, name: str, ip: str, out_dir: str) -> dict:
        """Prepare node `name` at `ip` (on the lab segment, e.g. a VM whose tap device is on the lab bridge) to join
        through the API server: write `out_dir`/kubelet.conf (server, CA, the node's client certificate
        CN=system:node:<name>) and join.json; claim the pod CIDR the node IPAM controller will give it, so the
        lab's nodes route it (host-gw), as they route each other. Returns join.json's content."""
        if not self.exists():
            raise LabError(f"lab {self.name} is not up; run `kemu lab up --name {self.name}` first")
        if not is_dns1123_label(name) or name in self.state.nodes:
            raise LabError(f"node name {name!r}: use a DNS-1123 label that no lab node has "
                           f"({', '.join(self.state.nodes)})")
        if self.state.pod_network != "host-gw":
            raise LabError(f"lab {self.name} uses --pod-network {self.state.pod_network}; joining from outside "
                           "needs host-gw")
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise LabError(f"--ip {ip!r}: not an IPv4 address") from None
        taken = {LAB_GATEWAY, CLIENT_IP} | {node_ip(i) for i in range(1, MAX_NODES + 1)} | \
            {r["ip"] for n, r in self.state.remote_nodes.items() if n != name}
        if addr not in LAB_NETWORK or ip in taken or addr in (LAB_NETWORK.network_address,
                                                             LAB_NETWORK.broadcast_address):
            raise LabError(f"--ip {ip}: use a free address of {LAB_SEGMENT} outside the lab's own "
                           f"(.1, .11-.{10 + MAX_NODES}, .100), e.g. {LAB_NETWORK[200]}")
        cidr = allocate_pod_cidr(self.client().store, name, CLUSTER_CIDR, NODE_CIDR_PREFIX)
        self.state.remote_nodes[name] = {"ip": ip, "pod_cidr": cidr}
        self._save()
        self._route_pod_networks()
        os.makedirs(out_dir, mode=0o700, exist_ok=True)
        kubeconfig = write_node_kubeconfig(os.path.join(out_dir, "kubelet.conf"), f"kemu-{self.name}",
                                           self.api_url, self.pki, name)
        info = {"server": self.api_url, "node_name": name, "node_ip": ip, "kubeconfig": kubeconfig,
                "pod_cidr": cidr}
        with open(os.path.join(out_dir, "join.json"), "w") as f:
            json.dump(info, f, indent=2)
        return info

    def _wait_node_ready(self, client: Client, name: str, timeout: float) -> None:
        """`name` is Ready and its DNS server is in kube-dns's Endpoints (other nodes may be failed on purpose)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = client.get("Node", None, name) or {}
            ep = client.get("Endpoints", "kube-system", "kube-dns") or {}
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (node.get("status") or {}).get("conditions", [])) and \
                    any(a.get("nodeName") == name for s in ep.get("subsets") or [] for a in s.get("addresses") or []):
                return
            dead = [k for k in (f"{name}-agent", f"{name}-proxy", f"{name}-dns")
                    if not Daemon(**self.state.daemons[k]).alive()]
            if dead:
                raise LabError(f"lab {self.name}: {', '.join(dead)} exited: {self._log_tail(dead[0])}")
            time.sleep(0.02)
        raise LabError(f"lab {self.name}: {name} not Ready after {timeout:.0f}s; see {self.dir}/logs/")

    # ---- failures ----------------------------------------------------------------------------------------------
    def _check_stoppable(self, name: str) -> None:
        if name == "etcd" and "etcd" in self.state.daemons:
            return
        if name not in self.state.nodes:
            extra = " or etcd" if "etcd" in self.state.daemons else ""
            raise LabError(f"{name!r} is not a node of lab {self.name}: use one of "
                           f"{', '.join(self.state.nodes)}{extra}")

    def stop(self, name: str, cut_link: bool = False) -> None:
        """Emulate a failure: stop a node's agent (its pods keep running) or cut its cable (eth1 down);
        `etcd` stops the lab's etcd."""
        self._check_stoppable(name)
        if cut_link and name != "etcd":
            set_link(self.namespace(name), "eth1", up=False)
        else:
            Daemon(**self.state.daemons["etcd" if name == "etcd" else f"{name}-agent"]).stop()

    def start(self, name: str) -> None:
        """Undo stop(): the cable back in, the agent (or etcd) running again; an agent re-adopts its pods."""
        self._check_stoppable(name)
        if name == "etcd":
            if not Daemon(**self.state.daemons["etcd"]).alive():
                self._start_etcd()
            return
        ns = self.namespace(name)
        if not link_is_up(ns, "eth1"):
            set_link(ns, "eth1", up=True)
            add_route(ns, "0.0.0.0/0", LAB_GATEWAY)   # routes through eth1 went away with the link
            self._route_pod_networks(only=name)
        if not Daemon(**self.state.daemons[f"{name}-agent"]).alive():
            self._spawn_agent(name)

    def wait_ready(self, client: Client, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes, _ = client.list("Node")
            ready = {n["metadata"]["name"] for n in nodes
                     if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
            if ready >= set(self.state.nodes) and self._dns_ready(client):
                return
            dead = [d["name"] for d in self.daemon_status() if not d["supervisor"] or d["restarts"]]
            if dead:     # while coming up, a daemon that had to be restarted is a failed start
                raise LabError(f"lab {self.name}: {', '.join(dead)} exited: {self._log_tail(dead[0])}")
            time.sleep(0.02)
        raise LabError(f"lab {self.name}: nodes not Ready after {timeout:.0f}s; see {self.dir}/logs/")

    def _dns_ready(self, client: Client) -> bool:
        """Every node's DNS server is in kube-dns's Endpoints (so pods resolve names as soon as up returns)."""
        if not any(k.endswith("-dns") for k in self.state.daemons):
            return True
        ep = client.get("Endpoints", "kube-system", "kube-dns") or {}
        ips = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
        return len(ips) >= len(self.state.nodes)

    def _log_tail(self, daemon: str, lines: int = 3) -> str:
        """The last lines of a daemon's log (the lab directory goes away with a failed `up`)."""
        try:
            with open(os.path.join(self.dir, "logs", f"{daemon}.log"), errors="replace") as f:
                tail = [line.strip() for line in f.readlines()[-lines:] if line.strip()]
        except OSError:
            tail = []
        return " | ".join(tail) or "(no log output)"

    # ---- down --------------------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove everything the lab made; returns what could not be removed (empty when clean)."""
        from kemu.apiserver.kubeconfig import forget_lab
        forget_lab(self.dir, f"kemu-{self.name}")     # the context `kemu lab kubeconfig --merge` added
        daemons = [Daemon(**d) for d in self.state.daemons.values()]
        for group in ([d for d in daemons if d.name != "etcd"], [d for d in daemons if d.name == "etcd"]):
            for d in group:       # SIGTERM all at once, then wait; etcd last so nobody waits for it
                if d.alive():
                    os.kill(d.pid, signal.SIGTERM)
            for d in group:
                d.stop()
        driver = cgroups.detect()
        # every node cgroup tree of this lab: from the state, and from the kernel in case the state is incomplete
        trees = {f"{self.prefix}{node}" for node in self.state.nodes}
        trees |= {d for m in driver.mounts if os.path.isdir(m) for d in os.listdir(m) if d.startswith(self.prefix)}
        for tree in sorted(trees):
            cgroups.cleanup_node(driver, tree)
        for pid in self._marked_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mount in self._mounts():
            try:
                linux.umount(mount)
            except OSError:
                pass
        for device in loop_devices(self.dir):     # ext4-loop volumes (autoclear frees them on umount)
            subprocess.run(["losetup", "-d", device], capture_output=True)
        for name in Namespace.list(self.prefix):
            Namespace(name).delete()
        shutil.rmtree(self.dir, ignore_errors=True)
        deadline = time.monotonic() + 3
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def _marked_processes(self) -> list[int]:
        marker = f"KEMU_LAB={self.name}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0") and start_ticks(int(entry)) is not None:
                        pids.append(int(entry))
            except OSError:
                continue
        return pids

    def _mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [p for p in reversed(points) if p.startswith(self.dir + "/")]

    def leftovers(self) -> list[str]:
        """Everything of this lab still on the machine: netns, cgroups, mounts, processes, files."""
        left = [f"netns {n}" for n in Namespace.list(self.prefix)]
        driver = cgroups.detect()
        for mount in driver.mounts:
            if os.path.isdir(mount):
                left += [f"cgroup {os.path.join(mount, d)}" for d in os.listdir(mount) if d.startswith(self.prefix)]
        left += [f"mount {m}" for m in self._mounts()]
        left += [f"loop device {d}" for d in loop_devices(self.dir)]
        left += [f"process {p}" for p in self._marked_processes()]
        if os.path.exists(self.etcd_socket):
            left.append(f"etcd socket {self.etcd_socket}")
        if os.path.exists(self.dir):
            left.append(f"directory {self.dir}")
        return left

    def exec_argv(self, host: str, argv: list[str]) -> list[str]:
        return self.namespace(host).enter_argv(argv)


def loop_devices(top: str) -> list[str]:
    """Loop devices whose backing file lies under `top` (the lab's ext4-loop volumes)."""
    out = []
    for dev in os.listdir("/sys/block") if os.path.isdir("/sys/block") else []:
        try:
            with open(f"/sys/block/{dev}/loop/backing_file") as f:
                backing = f.read().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        if backing.startswith(top.rstrip("/") + "/"):
            out.append(f"/dev/{dev}")
    return out


def _network_address(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr).network_address)
