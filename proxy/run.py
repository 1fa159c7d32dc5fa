"""`kemu proxy`: the node's service proxy daemon. Informers feed the Proxier; a sync follows every burst of
changes; every DRIFT_CHECK_SECONDS the live table's chains are compared with what the Proxier applied and a full
resync repairs any drift (someone deleting a chain by hand); /metrics is served on :10249."""
from __future__ import annotations

import logging
import signal
import threading

from kemu.api.nodeconfig import NodeConfig
from kemu.client.daemon import node_client
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.nft import LibNftBackend
from proxy.metrics import METRICS_PORT
from proxy.proxier import Proxier, SyncResult
from proxy.ruleset import ProxyNode

log = logging.getLogger("kemu.proxy")
DRIFT_CHECK_SECONDS = 10.0


def _key(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def main(config: NodeConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = node_client(config)      # the store in-process, or the API server (config.kubeconfig)
    node = ProxyNode(name=config.node_name, node_ips=[config.node_ip], cluster_cidr=config.cluster_cidr,
                     service_cidr=config.service_cidr)
    backend = LibNftBackend()
    proxier = Proxier(node, backend)
    events = EventRecorder(client, "kube-proxy", config.node_name)

    def service_error(key: str, exc: Exception) -> None:
        svc = proxier.services.get(key)
        if svc is not None:
            events.record(svc, "Warning", "FailedToProgramService", f"kube-proxy on {config.node_name} left this "
                                                                    f"Service out of its rules: {exc}")
    proxier.on_service_error = service_error
    changed = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()

    def on_service(key: str, old: dict | None, new: dict | None) -> None:
        with lock:
            proxier.on_service(new, _key(new or old))
        changed.set()

    def on_slice(key: str, old: dict | None, new: dict | None) -> None:
        with lock:
            proxier.on_endpoint_slice(new, _key(new or old))
        changed.set()

    services = Informer(client, "Service", on_service).start()
    slices = Informer(client, "EndpointSlice", on_slice).start()
    services.synced.wait(10)
    slices.synced.wait(10)
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), changed.set()))
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), changed.set()))
    try:
        proxier.metrics.serve(METRICS_PORT)
    except OSError as exc:
        log.warning("metrics not served: %s", exc)
    with lock:
        proxier.full_resync()
    while not stop.is_set():
        try:
            result = _step(proxier, backend, node, changed, lock)
        except Exception as exc:   # never die on one bad sync: the next one is a full resync
            log.exception("sync raised; full resync next")
            with lock:
                proxier.needs_full = True
            result = SyncResult("failed", error=str(exc))
        if result.error:
            log.warning("sync failed (%s); retrying", result.error)
            stop.wait(1.0)
            changed.set()


def _step(proxier: Proxier, backend: LibNftBackend, node: ProxyNode, changed: threading.Event,
          lock: threading.Lock) -> SyncResult:
    """One turn of the loop: sync after changes, else check the live table for drift."""
    if changed.wait(DRIFT_CHECK_SECONDS):
        changed.clear()
        with lock:
            return proxier.sync()
    with lock:
        live = backend.chain_names("ip", node.table)   # cheap: no rules or elements listed
        if live is None or not proxier.expected_chains() <= live:
            log.warning("nftables table %s drifted (missing chains); full resync", node.table)
            return proxier.full_resync()
        return proxier.sync()   # also runs the Proxier's own periodic full sync
