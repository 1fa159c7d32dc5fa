"""Lab objects for the kemu-bridge tests and benchmark, on the netns toolkit (kemu/lab/netns.py).

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

from kemu.lab.netns import Namespace, VethPair

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEMU_BRIDGE = os.path.join(REPO, "cni", "kemu-bridge")
REF_BIN = "/usr/lib/cni"
PREFIX = "kemu-t-cni-"


class Netns(Namespace):
    """A fresh ``kemu-t-cni-<tag>-<random>`` network namespace (created now), removed by ``delete()``."""

    def __init__(self, tag: str) -> None:
        super().__init__(f"{PREFIX}{tag}-{uuid.uuid4().hex[:6]}")
        self.create()

    exec = Namespace.run   # the CNI tests' name for it

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        """Start ``argv`` here with stdout and stderr piped."""
        return super().popen(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


class Link:
    """A veth pair between two namespaces (the toolkit's VethPair: each end born in its netns, both up)."""

    @staticmethod
    def veth(a: Netns, a_name: str, b: Netns, b_name: str) -> None:
        VethPair(a, a_name, b, b_name).create()


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
        p = subprocess.run(node.enter_argv([self.path]), input=data, env=env, capture_output=True, check=False)
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
