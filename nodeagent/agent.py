"""NodeAgent: registers the node, watches pods bound to it (and static pod manifests) and runs a PodWorker for
each; owns the prober manager, the exit watcher and the status manager the workers share; heartbeats; GC."""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import threading
import time
import uuid

import psutil

from kemu.api import images
from kemu.api.nodeconfig import NodeConfig
from kemu.api.timeutil import now_rfc3339
from kemu.api.version import KEMU_VERSION, KUBERNETES_VERSION
from kemu.client.daemon import node_client
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from nodeagent import qos
from nodeagent.backoff import Backoff
from nodeagent.podroutes import PodRoutes, wait_pod_cidr
from nodeagent.prober import ProbeManager
from nodeagent.server import NodeServer
from nodeagent.staticpods import StaticPods, is_mirror
from nodeagent.status import StatusManager
from nodeagent.tokens import TokenManager
from nodeagent.worker import ExitWatcher, PodWorker, WorkerDeps
from runtime.cnilib import CNIConfig, install_kemu_bridge, node_conflist
from runtime.pods import PodRuntime
from runtime.process import reap

log = logging.getLogger("nodeagent")


class NodeAgent:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.client = node_client(config)   # the store in-process, or the API server (config.kubeconfig)
        images.use_overrides(config.image_catalog, "node configuration")   # the lab's image catalog entries
        self.events = EventRecorder(self.client, "kubelet", config.node_name)
        self.status = StatusManager(self.client)
        self.backoff = Backoff(config.crash_loop_initial, config.crash_loop_max)
        self.memory_capacity = psutil.virtual_memory().total
        os.makedirs(config.state_dir, mode=0o700, exist_ok=True)   # pods (Secret volumes), CNI results: root's
        os.chmod(config.state_dir, 0o700)
        if not config.pod_cidr:   # a host joining a cluster (a VM): register, then wait for the node IPAM's CIDR
            config.pod_cidr = wait_pod_cidr(self.client, config.node_name, node_labels(config.node_name))
        self.cni = self._setup_cni()
        self.runtime = PodRuntime(config.pods_dir, config.cgroup_root or f"kemu-{config.node_name}", self.cni)
        # node server (kubelet's :10250, nodeagent/server.py): logs, exec, port-forward and stats of the pods it runs
        self.server = NodeServer(config, self.runtime, lambda: [w.pod for w in self.workers.copy().values()])
        self.workers: dict[str, PodWorker] = {}
        self._workers_lock = threading.Lock()
        self.exit_watcher = ExitWatcher()
        self.prober = ProbeManager(self._wake_pod, self.events.record)
        self.worker_deps = WorkerDeps(
            runtime=self.runtime, prober=self.prober, status=self.status, record=self.events.record,
            backoff=self.backoff, exit_watcher=self.exit_watcher, lookup=self.lookup, services=self.services,
            on_terminated=self.pod_terminated, node_ip=config.node_ip, cluster_dns=config.cluster_dns,
            cluster_domain=config.cluster_domain, sync_frequency=config.sync_frequency,
            memory_capacity=self.memory_capacity,
            tokens=TokenManager(self.client, config.service_account_key_file, config.root_ca_file)
            if config.service_account_key_file else None)
        self.static_pods = StaticPods(config.static_pod_path, config.node_name, self.client, self.start_static,
                                      self.stop_static, self._cached_pods)
        self.pods = Informer(self.client, "Pod", self._on_pod)
        self.pod_routes = PodRoutes(self.client, config.node_name, config.node_ip) \
            if config.pod_routes == "host-gw" else None
        self.service_informer = Informer(self.client, "Service")
        # volumes project ConfigMaps and Secrets: a change wakes the pods of that namespace (no polling needed)
        self.config_informers = [Informer(self.client, kind, self._on_config_object)
                                 for kind in ("ConfigMap", "Secret")]
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

    def _cached_pods(self) -> list[dict] | None:
        """The informer's pods, or None before its first full list (an empty cache is not "no pods")."""
        return self.pods.items() if self.pods.synced.is_set() else None

    def _mine(self, pod: dict | None) -> bool:
        return pod is not None and pod.get("spec", {}).get("nodeName") == self.config.node_name

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        if not self._mine(new) and not self._mine(old):
            return
        if is_mirror(new) or is_mirror(old):
            return   # mirrors of static pods: StaticPods.sync keeps them in place; the pod runs from its file
        uid = (new or old)["metadata"]["uid"]
        with self._workers_lock:
            worker = self.workers.get(uid)
            if worker is None:
                if new is None or not self._mine(new):
                    return
                self._start_worker(new)
                return
        worker.update(new if self._mine(new) else None)

    def _start_worker(self, pod: dict) -> None:
        """Caller holds _workers_lock. A pod the agent cannot run gets a Warning event; the others go on."""
        try:
            worker = PodWorker(self.worker_deps, pod)
        except Exception as exc:
            log.exception("pod %s/%s: cannot start its worker", pod["metadata"].get("namespace"),
                          pod["metadata"].get("name"))
            self.events.record(pod, "Warning", "FailedSync", f"error determining status: {exc}")
            return
        worker.adopt()
        self.workers[pod["metadata"]["uid"]] = worker
        worker.start()

    def _on_config_object(self, key: str, old: dict | None, new: dict | None) -> None:
        namespace = (new or old)["metadata"].get("namespace")
        with self._workers_lock:
            workers = [w for w in self.workers.values() if w.pod["metadata"]["namespace"] == namespace]
        for worker in workers:
            worker.wake()

    def _wake_pod(self, uid: str) -> None:
        with self._workers_lock:
            worker = self.workers.get(uid)
        if worker is not None:
            worker.wake()

    def pod_terminated(self, pod: dict) -> None:
        """A gracefully deleted pod has stopped: remove its object (if it is still the same pod)."""
        meta = pod["metadata"]
        live = self.client.get("Pod", meta["namespace"], meta["name"])
        if live is not None and live["metadata"].get("uid") == meta["uid"]:
            self.client.delete("Pod", meta["namespace"], meta["name"])

    def start_static(self, pod: dict) -> None:
        with self._workers_lock:
            if pod["metadata"]["uid"] not in self.workers:
                self._start_worker(pod)

    def stop_static(self, pod: dict) -> None:
        with self._workers_lock:
            worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.terminate(float(pod["spec"].get("terminationGracePeriodSeconds", 30)))

    # ---- node object -------------------------------------------------------------------------------------------
    def node_object(self) -> dict:
        cpu, memory = node_capacity()
        capacity = {"cpu": str(cpu), "memory": f"{memory // 1024}Ki", "pods": str(self.config.max_pods),
                    "ephemeral-storage": f"{shutil.disk_usage(self.config.state_dir).total // 1024}Ki"}
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.config.node_name, "labels": node_labels(self.config.node_name)},
                "spec": {"podCIDR": self.config.pod_cidr, "podCIDRs": [self.config.pod_cidr]}
                if self.config.pod_cidr else {},
                "status": {"capacity": capacity, "allocatable": dict(capacity),
                           "addresses": [{"type": "InternalIP", "address": self.config.node_ip},
                                         {"type": "Hostname", "address": self.config.node_name}],
                           "nodeInfo": node_info(self.config.node_name),
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": self.server.port}},   # node server
                           "conditions": self._conditions({})}}

    def _conditions(self, old: dict) -> list[dict]:
        """Ready, MemoryPressure, DiskPressure, PIDPressure with kubelet's reasons and messages."""
        now = now_rfc3339()
        previous = {c["type"]: c for c in old.get("conditions") or []}
        disk = shutil.disk_usage(self.config.state_dir)
        checks = [  # (type, under pressure, reason if fine, reason if not, message if fine, message if not)
            ("MemoryPressure", psutil.virtual_memory().available < 100 * 1024 * 1024,
             "KubeletHasSufficientMemory", "KubeletHasInsufficientMemory",
             "kubelet has sufficient memory available", "kubelet has memory pressure"),
            ("DiskPressure", disk.free < 0.1 * disk.total, "KubeletHasNoDiskPressure", "KubeletHasDiskPressure",
             "kubelet has no disk pressure", "kubelet has disk pressure"),
            ("PIDPressure", len(psutil.pids()) > 0.9 * _pid_max(), "KubeletHasSufficientPID",
             "KubeletHasInsufficientPID", "kubelet has sufficient PID available", "kubelet has PID pressure"),
            ("Ready", False, "KubeletReady", "KubeletNotReady", "kubelet is posting ready status", "")]
        out = []
        for ctype, bad, ok_reason, bad_reason, ok_msg, bad_msg in checks:
            status = ("False" if bad else "True") if ctype == "Ready" else ("True" if bad else "False")
            prev = previous.get(ctype)
            out.append({"type": ctype, "status": status, "reason": bad_reason if bad else ok_reason,
                        "message": bad_msg if bad else ok_msg, "lastHeartbeatTime": now,
                        "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] == status
                        else now})
        return out

    def register(self) -> None:
        node = self.node_object()
        existing = self.client.get("Node", None, self.config.node_name)
        if existing is None:
            self.client.create(node)
        self.heartbeat()
        self._warn_oom_floor()

    def _warn_oom_floor(self) -> None:
        """Once per start: say on the Node when the host will not let Guaranteed pods have their oom_score_adj
        (the runtime falls back to the lowest allowed; their QoS class stays Guaranteed)."""
        floor = qos.oom_score_floor()
        if floor > qos.GUARANTEED_OOM_SCORE_ADJ:
            node = self.client.get("Node", None, self.config.node_name)
            if node is not None:
                self.events.record(node, "Warning", "OOMScoreAdjustLimited",
                                   f"this host does not allow oom_score_adj below {floor} (no CAP_SYS_RESOURCE): "
                                   f"containers of Guaranteed pods run with {floor} instead of "
                                   f"{qos.GUARANTEED_OOM_SCORE_ADJ}; their QoS class is unchanged")

    def heartbeat(self) -> None:
        fresh = self.node_object()

        def mutate(node: dict) -> None:
            node["spec"].update(fresh["spec"])
            old = node.get("status") or {}
            node["status"] = dict(fresh["status"], conditions=self._conditions(old))
        self.client.mutate("Node", None, self.config.node_name, mutate)

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.server.start()   # node server: before registering, so the Node advertises its port
        self.register()
        for informer in [self.service_informer, *self.config_informers]:
            informer.start()
        if self.pod_routes is not None:
            self.pod_routes.start()
        for informer in [self.service_informer, *self.config_informers]:
            informer.synced.wait(10)
        self.pods.start()
        self.pods.synced.wait(10)
        self.static_pods.sync()
        self.garbage_collect()
        last_beat = time.monotonic()
        while not self._stop.wait(0.5):
            try:      # nothing in one turn (a store hiccup, an object it cannot read) may stop the agent
                reap()
                self.static_pods.sync()
            except Exception:
                log.exception("reaping or static pod sync failed")
            if time.monotonic() - last_beat >= self.config.node_status_update_frequency:
                last_beat = time.monotonic()
                try:
                    self.heartbeat()
                    self.garbage_collect()
                    self.backoff.gc()
                except Exception:
                    log.exception("heartbeat or garbage collection failed; retrying next period")
            with self._workers_lock:
                for uid in [u for u, w in self.workers.items() if w.finished.is_set()]:
                    del self.workers[uid]
                    self.prober.remove_pod(uid)
                    self.status.forget(uid)
        self.server.stop()   # node server

    def stop(self) -> None:
        self._stop.set()

    def garbage_collect(self) -> None:
        """Remove what belongs to pods that no longer exist: processes, sandboxes, IPs, cgroups, files."""
        if not self.pods.synced.is_set():
            return   # an empty cache is not "no pods": never collect before the first full list
        live = {o["metadata"]["uid"] for o in self.pods.items()}
        with self._workers_lock:
            live |= set(self.workers)
        for entry in self.runtime.known_pod_dirs():
            uid = entry.rsplit("_", 1)[-1]
            if uid in live:
                continue
            log.info("garbage-collecting pod dir %s", entry)
            if self.runtime.remove_pod_dir(entry) is None:
                log.warning("pod dir %s had no sandbox config: removed its mounts and files only", entry)


def node_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def node_capacity() -> tuple[int, int]:
    """(CPUs, memory bytes) the node can give pods: the machine's, bounded by the agent's own cgroup limits."""
    cpu = len(os.sched_getaffinity(0)) or os.cpu_count() or 1
    memory = psutil.virtual_memory().total
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value.isdigit():
            memory = min(memory, int(value))
    return cpu, memory


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


def node_info(node_name: str) -> dict:
    """status.nodeInfo as kubelet reports it (every field set: typed clients require them). Nodes of one lab share
    the host's kernel and boot, but each has its own machine and system UUID, derived from its name."""
    def read(path: str, default: str = "") -> str:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return default
    os_release = dict(line.split("=", 1) for line in read("/etc/os-release").splitlines() if "=" in line)
    node_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{node_name}.kemu")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {"machineID": node_uuid.hex, "systemUUID": str(node_uuid),
            "bootID": read("/proc/sys/kernel/random/boot_id", str(uuid.uuid4())),
            "kernelVersion": os.uname().release, "osImage": os_release.get("PRETTY_NAME", "Linux").strip('"'),
            "containerRuntimeVersion": f"kemu://{KEMU_VERSION}", "kubeletVersion": KUBERNETES_VERSION,
            "kubeProxyVersion": KUBERNETES_VERSION, "operatingSystem": "linux", "architecture": arch}
