"""`kemu proxy`: the node's service proxy daemon. Informers feed the Proxier; a sync follows every burst of
changes; every DRIFT_CHECK_SECONDS the live table's chains are compared with what the Proxier applied and a full
resync repairs any drift (someone deleting a chain by hand); /metrics is served on :10249."""
from __future__ import annotations

import logging
import signal
import threading

from kemu.api.nodeconfig import NodeConfig
from kemu.client import Client
from kemu.client.informer import Informer
from kemu.nft import LibNftBackend
from kemu.store import open_store
from proxy.metrics import METRICS_PORT
from proxy.proxier import Proxier
from proxy.ruleset import ProxyNode

log = logging.getLogger("kemu.proxy")
DRIFT_CHECK_SECONDS = 10.0


def _key(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def main(config: NodeConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = Client(open_store(config.store_url))
    node = ProxyNode(name=config.node_name, node_ips=[config.node_ip], cluster_cidr=config.cluster_cidr,
                     service_cidr=config.service_cidr)
    backend = LibNftBackend()
    proxier = Proxier(node, backend)
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
        if changed.wait(DRIFT_CHECK_SECONDS):
            changed.clear()
            with lock:
                result = proxier.sync()
        else:
            with lock:
                live = backend.chain_names("ip", node.table)   # cheap: no rules or elements listed
                if live is None or not proxier.expected_chains() <= live:
                    log.warning("nftables table %s drifted (missing chains); full resync", node.table)
                    result = proxier.full_resync()
                else:
                    result = proxier.sync()   # also runs the Proxier's own periodic full sync
        if result.error:
            log.warning("sync failed (%s); retrying", result.error)
            stop.wait(1.0)
            changed.set()
