"""A lab: nodes as network namespaces on a private L2 segment, each running a node agent and a proxy, plus a
`client` host outside the cluster. Nothing of it lives in the machine's root network namespace.

    kemu-<lab>-net      the lab segment: bridge br0 192.168.56.1/24 (the "host" side, like Vagrant's)
    kemu-<lab>-nodeN    eth1 192.168.56.(10+N), pod bridge kemu0 10.244.N.1/24, agent + proxy inside
    kemu-<lab>-client   eth1 192.168.56.100
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

from kemu.api.meta import is_dns1123_label
from kemu.client import Client
from kemu.netlab import Bridge, Namespace, VethPair, add_route
from kemu.store import open_store
from nodeagent.config import NodeConfig, load_kubelet_config
from runtime import cgroups, linux
from runtime.process import pid_alive, start_ticks

LABS_DIR = os.environ.get("KEMU_LABS_DIR", "/run/kemu/labs")
LAB_NETWORK = ipaddress.ip_network("192.168.56.0/24")
LAB_GATEWAY = "192.168.56.1"
CLIENT_IP = "192.168.56.100"
CLUSTER_CIDR = "10.244.0.0/16"
MAX_NODES = 50
BOOTSTRAP = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
    for n in ("default", "kube-system", "kube-public", "kube-node-lease")
] + [{"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver",
                                                                             "provider": "kubernetes"}},
      "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}]


class LabError(RuntimeError):
    pass


def node_ip(index: int) -> str:
    return str(LAB_NETWORK[10 + index])


def pod_cidr(index: int) -> str:
    return f"10.244.{index}.0/24"


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


class Lab:
    def __init__(self, name: str) -> None:
        if not is_dns1123_label(name) or len(name) > 20:
            raise LabError(f"lab name {name!r}: use a DNS-1123 label of at most 20 characters, e.g. kemu or t1")
        self.name = name
        self.dir = os.path.join(LABS_DIR, name)
        self.state_path = os.path.join(self.dir, "lab.json")
        self.store_url = f"sqlite://{os.path.join(self.dir, 'store.db')}"
        self.prefix = f"kemu-{name}-"
        self.net = Namespace(f"{self.prefix}net")
        self.state = self._load()

    # ---- state -------------------------------------------------------------------------------------------------
    def _load(self) -> LabState:
        try:
            with open(self.state_path) as f:
                return LabState(**json.load(f))
        except FileNotFoundError:
            return LabState(self.name)

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
        return Client(open_store(self.store_url))

    def namespace(self, host: str) -> Namespace:
        if host != "client" and host not in self.state.nodes and host != "net":
            raise LabError(f"no host {host!r} in lab {self.name}: hosts are {', '.join(self.state.nodes + ['client'])}")
        return Namespace(f"{self.prefix}{host}")

    def node_config(self, index: int) -> NodeConfig:
        name = f"node{index}"
        return NodeConfig(node_name=name, state_dir=os.path.join(self.dir, "nodes", name), store_url=self.store_url,
                          node_ip=node_ip(index), pod_cidr=pod_cidr(index), cluster_cidr=CLUSTER_CIDR,
                          cgroup_root=f"{self.prefix}{name}", **self.state.kubelet_config)

    # ---- up ----------------------------------------------------------------------------------------------------
    def up(self, nodes: int = 1, config_file: str | None = None, timeout: float = 30.0) -> None:
        if self.exists():
            raise LabError(f"lab {self.name} already exists; run `kemu lab down --name {self.name}` first")
        if not 1 <= nodes <= MAX_NODES:
            raise LabError(f"--nodes: must be between 1 and {MAX_NODES}")
        if Namespace.list(self.prefix):
            raise LabError(f"namespaces {Namespace.list(self.prefix)} are left from an earlier lab {self.name}; "
                           f"run `kemu lab down --name {self.name}`")
        overrides = load_kubelet_config(config_file) if config_file else {}
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.state = LabState(self.name, [f"node{i}" for i in range(1, nodes + 1)], {}, overrides, time.time())
        self._save()
        try:
            self._build_network(nodes)
            client = self.client()
            client.apply(BOOTSTRAP, source="bootstrap")
            self._start_daemons(nodes)
            self.wait_ready(client, timeout)
        except BaseException:
            self.down()
            raise

    def _build_network(self, nodes: int) -> None:
        self.net.create()
        lan = Bridge(self.net, "br0").create(LAB_GATEWAY, LAB_NETWORK.prefixlen)
        for i in range(1, nodes + 1):
            ns = Namespace(f"{self.prefix}node{i}").create()
            VethPair(self.net, f"node{i}", ns, "eth1").create(lan, node_ip(i), LAB_NETWORK.prefixlen, LAB_GATEWAY)
            ns.sysctl({"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1,
                       "net.ipv4.conf.all.rp_filter": 0})
            for j in range(1, nodes + 1):   # host-gw routing: every other node's pod CIDR via that node
                if j != i:
                    add_route(ns, pod_cidr(j), node_ip(j))
        client = Namespace(f"{self.prefix}client").create()
        VethPair(self.net, "client", client, "eth1").create(lan, CLIENT_IP, LAB_NETWORK.prefixlen)

    def _spawn(self, key: str, ns: Namespace, argv: list[str]) -> None:
        log_path = os.path.join(self.dir, "logs", f"{key}.log")
        env = dict(os.environ, KEMU_LAB=self.name, PYTHONUNBUFFERED="1")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(ns.enter_argv(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, env=env)
        # nsenter execs the command, so the PID is the daemon's
        self.state.daemons[key] = asdict(Daemon(key, proc.pid, start_ticks(proc.pid) or 0, log_path))
        self._save()

    def _start_daemons(self, nodes: int) -> None:
        kemu = [sys.executable, "-m", "kemu.cli"]
        self._spawn("controller-manager", self.net, kemu + ["controller-manager", "--store", self.store_url])
        for i in range(1, nodes + 1):
            cfg = self.node_config(i)
            os.makedirs(cfg.state_dir, exist_ok=True)
            cfg_path = os.path.join(cfg.state_dir, "node.json")
            with open(cfg_path, "w") as f:
                json.dump(asdict(cfg), f, indent=2)
            ns = Namespace(f"{self.prefix}node{i}")
            self._spawn(f"node{i}-agent", ns, kemu + ["node-agent", "--node-config", cfg_path])
            self._spawn(f"node{i}-proxy", ns, kemu + ["proxy", "--node-config", cfg_path])

    def wait_ready(self, client: Client, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes, _ = client.list("Node")
            ready = {n["metadata"]["name"] for n in nodes
                     if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
            if ready >= set(self.state.nodes):
                return
            dead = [k for k, d in self.state.daemons.items() if not Daemon(**d).alive()]
            if dead:
                raise LabError(f"lab {self.name}: {', '.join(dead)} exited; see {self.dir}/logs/{dead[0]}.log")
            time.sleep(0.02)
        raise LabError(f"lab {self.name}: nodes not Ready after {timeout:.0f}s; see {self.dir}/logs/")

    # ---- down --------------------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove everything the lab made; returns what could not be removed (empty when clean)."""
        for d in self.state.daemons.values():
            Daemon(**d).stop()
        driver = cgroups.detect()
        for node in self.state.nodes or [n[len(self.prefix):] for n in Namespace.list(self.prefix)]:
            cgroups.cleanup_node(driver, f"{self.prefix}{node}")
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
        left += [f"process {p}" for p in self._marked_processes()]
        if os.path.exists(self.dir):
            left.append(f"directory {self.dir}")
        return left

    def exec_argv(self, host: str, argv: list[str]) -> list[str]:
        return self.namespace(host).enter_argv(argv)
