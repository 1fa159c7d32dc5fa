"""`kemu proxy`: the node's service proxy daemon. Informers feed the Proxier; a sync follows every burst of
changes; every DRIFT_CHECK_SECONDS the live table's chains are compared with what the Proxier applied and a full
resync repairs any drift (someone deleting a chain by hand); /metrics is served on :10249."""
from __future__ import annotations

import logging
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kemu.api.nodeconfig import NodeConfig
from kemu.client import Client
from kemu.client.informer import Informer
from kemu.store import open_store
from proxy.nft import LibNftBackend
from proxy.proxier import Proxier
from proxy.ruleset import ProxyNode

log = logging.getLogger("kemu.proxy")
METRICS_PORT = 10249   # kube-proxy's metrics port
DRIFT_CHECK_SECONDS = 10.0


def live_chains(table: str) -> set[str] | None:
    """Chain names in the node's `ip <table>` (None if the table is gone). Cheap: no rules or elements listed."""
    import json as _json

    import nftables
    nft = nftables.Nftables()
    nft.set_json_output(True)
    rc, out, _ = nft.cmd("list chains ip")
    if rc != 0:
        return None
    chains = [item["chain"] for item in _json.loads(out).get("nftables", []) if "chain" in item]
    names = {c["name"] for c in chains if c.get("table") == table}
    return names or None


def _key(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def serve_metrics(proxier: Proxier, port: int = METRICS_PORT) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = proxier.metrics_text().encode() if self.path == "/metrics" else b"not found\n"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass
    server = ThreadingHTTPServer(("", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()


def main(config: NodeConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = Client(open_store(config.store_url))
    node = ProxyNode(name=config.node_name, node_ips=[config.node_ip], cluster_cidr=config.cluster_cidr,
                     service_cidr=config.service_cidr)
    proxier = Proxier(node, LibNftBackend())
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
        serve_metrics(proxier)
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
                live = live_chains(node.table)
                if live is None or not proxier.expected_chains() <= live:
                    log.warning("nftables table %s drifted (missing chains); full resync", node.table)
                    result = proxier.full_resync()
                else:
                    result = proxier.sync()   # also runs the Proxier's own periodic full sync
        if result.error:
            log.warning("sync failed (%s); retrying", result.error)
            stop.wait(1.0)
            changed.set()
