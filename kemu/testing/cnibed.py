"""Lab objects for the kemu-bridge tests and benchmark (mininet-like, one class per kernel object).

Everything lives in network namespaces named ``kemu-t-cni-*``; nothing is created
in the caller's namespace. Needs root.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEMU_BRIDGE = os.path.join(REPO, "cni", "kemu-bridge")
REF_BIN = "/usr/lib/cni"
PREFIX = "kemu-t-cni-"


def run(argv: list[str], input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=input, capture_output=True, check=check)


class Netns:
    """A named network namespace (``ip netns add``), removed by ``delete()``."""

    def __init__(self, tag: str) -> None:
        self.name = f"{PREFIX}{tag}-{uuid.uuid4().hex[:6]}"
        run(["ip", "netns", "add", self.name])
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def exec(self, *argv: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``argv`` with this netns as the network namespace (nsenter: no /sys remount)."""
        return run(["nsenter", f"--net={self.path}", "--", *argv], input=input, check=check)

    def popen(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen(["nsenter", f"--net={self.path}", "--", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["ip", "-n", self.name, *args], check=check)

    def ipj(self, *args: str) -> list:
        out = run(["ip", "-j", "-n", self.name, *args]).stdout
        return json.loads(out or b"[]")

    def links(self) -> dict[str, dict]:
        return {l["ifname"]: l for l in self.ipj("-d", "link", "show")}

    def addrs(self, dev: str) -> list[str]:
        out = []
        for l in self.ipj("addr", "show", "dev", dev):
            out += [f"{a['local']}/{a['prefixlen']}" for a in l.get("addr_info", []) if a["family"] == "inet"]
        return out

    def routes(self) -> list[dict]:
        return self.ipj("route", "show")

    def nft_tables(self) -> list[str]:
        out = self.exec("nft", "list", "tables").stdout.decode()
        return [l.strip() for l in out.splitlines() if l.strip()]

    def delete(self) -> None:
        run(["ip", "netns", "delete", self.name], check=False)


class Link:
    """A veth pair between two namespaces, created with each end directly in its netns."""

    @staticmethod
    def veth(a: Netns, a_name: str, b: Netns, b_name: str) -> None:
        a.ip("link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", b.name)
        a.ip("link", "set", a_name, "up")
        b.ip("link", "set", b_name, "up")


class Plugin:
    """How to invoke one bridge flavour (kemu-bridge or the reference bridge) on a node."""

    def __init__(self, kind: str, bin_dir: str) -> None:
        self.kind = kind  # "kemu-bridge" | "bridge"
        self.bin_dir = bin_dir

    @property
    def path(self) -> str:
        return os.path.join(self.bin_dir, self.kind)

    def call(self, node: Netns, command: str, conf: dict | bytes, container_id: str = "", netns: str = "",
             ifname: str = "eth0", extra_env: dict | None = None) -> tuple[int, dict | None]:
        """Run the plugin in ``node``; (exit code, decoded stdout or None)."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_PATH": self.bin_dir}
        if container_id:
            env["CNI_CONTAINERID"] = container_id
        if netns:
            env["CNI_NETNS"] = netns
        if ifname:
            env["CNI_IFNAME"] = ifname
        env.update(extra_env or {})
        data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
        p = subprocess.run(["nsenter", f"--net={node.path}", "--", self.path], input=data, env=env,
                           capture_output=True, check=False)
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            out = {"_raw": p.stdout.decode(errors="replace")}
        return p.returncode, out


def make_bin_dir() -> str:
    """A CNI bin dir holding kemu-bridge plus the reference plugins (symlinks)."""
    d = tempfile.mkdtemp(prefix="kemu-t-cni-bin-")
    os.symlink(KEMU_BRIDGE, os.path.join(d, "kemu-bridge"))
    for name in os.listdir(REF_BIN):
        os.symlink(os.path.join(REF_BIN, name), os.path.join(d, name))
    return d


def bridge_conf(kind: str, data_dir: str, subnet: str = "10.244.1.0/24", name: str = "kemu-test",
                version: str = "1.0.0", bridge: str = "kemu-br0", **extra) -> dict:
    """The same network config for either flavour."""
    conf = {
        "cniVersion": version,
        "name": name,
        "type": kind,
        "bridge": bridge,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "mtu": 1400,
        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir},
    }
    conf.update(extra)
    return conf


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Lab:
    """A node netns, a pod netns factory and a tmp IPAM data dir; ``close()`` removes all."""

    def __init__(self) -> None:
        self.made: list[Netns] = []
        self.data_dir = tempfile.mkdtemp(prefix="kemu-t-cni-ipam-")
        try:
            self.node = self.pod("node")
        except BaseException:
            self.close()
            raise

    def pod(self, tag: str = "pod") -> Netns:
        ns = Netns(tag)
        self.made.append(ns)
        return ns

    def close(self) -> None:
        for ns in reversed(self.made):
            ns.delete()
        remove_tree(self.data_dir)
