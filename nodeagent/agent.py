"""NodeAgent: registers the node, watches pods bound to it and runs a PodWorker for each; heartbeats; GC."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time

import psutil

from kemu.client import Client, now_rfc3339
from kemu.events import EventRecorder
from kemu.informer import Informer
from kemu.store import open_store
from nodeagent.backoff import Backoff
from nodeagent.config import NodeConfig
from nodeagent.status import StatusManager
from nodeagent.worker import PodWorker
from runtime.cnilib import CNIConfig, install_kemu_bridge, node_conflist
from runtime.pods import PodRuntime
from runtime.process import reap

log = logging.getLogger("nodeagent")


class NodeAgent:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.client = Client(open_store(config.store_url))
        self.events = EventRecorder(self.client, "kubelet", config.node_name)
        self.status = StatusManager(self.client)
        self.backoff = Backoff(config.crash_loop_initial, config.crash_loop_max)
        self.memory_capacity = psutil.virtual_memory().total
        self.cni = self._setup_cni()
        self.runtime = PodRuntime(config.pods_dir, config.cgroup_root or f"kemu-{config.node_name}", self.cni)
        self.workers: dict[str, PodWorker] = {}
        self._workers_lock = threading.Lock()
        self.pods = Informer(self.client, "Pod", self._on_pod)
        self.service_informer = Informer(self.client, "Service")
        self._stop = threading.Event()

    def _setup_cni(self) -> CNIConfig:
        conf_dir = os.path.join(self.config.cni_dir, "net.d")
        os.makedirs(conf_dir, exist_ok=True)
        conflist = node_conflist(self.config.cni_plugin, "kemu", self.config.pod_cidr, self.config.bridge,
                                 os.path.join(self.config.cni_dir, "networks"))
        path = os.path.join(conf_dir, "10-kemu.conflist")
        with open(path + ".tmp", "w") as f:
            json.dump(conflist, f, indent=2)
        os.replace(path + ".tmp", path)
        # a node-local CNI bin dir with the fast kemu-bridge launcher, then the usual places (reference plugins)
        bin_dir = os.path.join(self.config.cni_dir, "bin")
        install_kemu_bridge(bin_dir)
        bin_dirs = self.config.cni_bin_dirs or [bin_dir, "/opt/cni/bin", "/usr/lib/cni"]
        return CNIConfig(bin_dirs, conf_dir, os.path.join(self.config.cni_dir, "cache"))

    # ---- informer callbacks ------------------------------------------------------------------------------------
    def lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        """Read a ConfigMap or Secret (for env and volumes)."""
        return self.client.get(kind, namespace, name)

    def services(self) -> list[dict]:
        return self.service_informer.items()

    def _mine(self, pod: dict | None) -> bool:
        return pod is not None and pod.get("spec", {}).get("nodeName") == self.config.node_name

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        if not self._mine(new) and not self._mine(old):
            return
        with self._workers_lock:
            uid = (new or old)["metadata"]["uid"]
            worker = self.workers.get(uid)
            if worker is None:
                if new is None or not self._mine(new):
                    return
                worker = PodWorker(self, new)
                worker.adopt()
                self.workers[uid] = worker
                worker.start()
                return
        worker.update(new if self._mine(new) else None)

    # ---- node object -------------------------------------------------------------------------------------------
    def node_object(self) -> dict:
        cpu = os.cpu_count() or 1
        memory = self.memory_capacity
        capacity = {"cpu": str(cpu), "memory": f"{memory // 1024}Ki", "pods": str(self.config.max_pods)}
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.config.node_name,
                             "labels": {"kubernetes.io/hostname": self.config.node_name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64"}},
                "spec": {"podCIDR": self.config.pod_cidr, "podCIDRs": [self.config.pod_cidr]},
                "status": {"capacity": capacity, "allocatable": capacity,
                           "addresses": [{"type": "InternalIP", "address": self.config.node_ip},
                                         {"type": "Hostname", "address": self.config.node_name}],
                           "nodeInfo": {"kubeletVersion": "kemu-0.1.0", "operatingSystem": "linux",
                                        "architecture": "amd64", "containerRuntimeVersion": "kemu://0.1.0",
                                        "kernelVersion": os.uname().release},
                           "conditions": self._conditions({})}}

    def _conditions(self, old: dict) -> list[dict]:
        now = now_rfc3339()
        mem = psutil.virtual_memory()
        pressure = {"MemoryPressure": mem.available < 100 * 1024 * 1024,
                    "DiskPressure": False,
                    "PIDPressure": len(psutil.pids()) > 0.9 * _pid_max()}
        out = []
        previous = {c["type"]: c for c in old.get("conditions") or []}

        def cond(ctype: str, value: bool, reason: str, message: str) -> dict:
            status = "True" if value else "False"
            prev = previous.get(ctype)
            return {"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] == status else now}
        for ctype, value in pressure.items():
            out.append(cond(ctype, value, f"KubeletHas{'' if value else 'No'}{ctype.replace('Pressure', '')}Pressure"
                            if ctype != "PIDPressure" else ("KubeletHasInsufficientPID" if value
                                                            else "KubeletHasSufficientPID"),
                            f"kubelet has {'' if value else 'no '}{ctype}"))
        out.append(cond("Ready", True, "KubeletReady", "kubelet is posting ready status"))
        return out

    def register(self) -> None:
        node = self.node_object()
        existing = self.client.get("Node", None, self.config.node_name)
        if existing is None:
            self.client.create(node)
        self.heartbeat()

    def heartbeat(self) -> None:
        fresh = self.node_object()

        def mutate(node: dict) -> None:
            node["spec"].update(fresh["spec"])
            old = node.get("status") or {}
            node["status"] = dict(fresh["status"], conditions=self._conditions(old))
        self.client.mutate("Node", None, self.config.node_name, mutate)

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.register()
        self.service_informer.start()
        self.service_informer.synced.wait(10)
        self.pods.start()
        self.pods.synced.wait(10)
        self.garbage_collect()
        last_beat = time.monotonic()
        while not self._stop.wait(0.5):
            reap()
            if time.monotonic() - last_beat >= self.config.node_status_update_frequency:
                self.heartbeat()
                self.garbage_collect()
                self.backoff.gc()
                last_beat = time.monotonic()
            with self._workers_lock:
                for uid in [u for u, w in self.workers.items() if w.finished.is_set()]:
                    del self.workers[uid]

    def stop(self) -> None:
        self._stop.set()

    def garbage_collect(self) -> None:
        """Remove what belongs to pods that no longer exist: processes, sandboxes, IPs, cgroups, files."""
        live = {o["metadata"]["uid"] for o in self.pods.items()}
        with self._workers_lock:
            live |= set(self.workers)
        for entry in self.runtime.known_pod_dirs():
            uid = entry.rsplit("_", 1)[-1]
            if uid in live:
                continue
            pod_file = os.path.join(self.config.pods_dir, entry, "pod.json")
            try:
                with open(pod_file) as f:
                    pod = json.load(f)
            except (OSError, json.JSONDecodeError):
                log.warning("removing unknown pod dir %s", entry)
                shutil.rmtree(os.path.join(self.config.pods_dir, entry), ignore_errors=True)
                continue
            log.info("garbage-collecting pod %s/%s (%s)", pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
            self.runtime.remove_pod(pod)


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except OSError:
        return 32768


def main(config: NodeConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent = NodeAgent(config)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    agent.run()
