"""`kemu netpol`: the node's NetworkPolicy enforcer daemon. Informers for NetworkPolicy, Pod and Namespace feed the
Enforcer; a sync follows every burst of changes at once (changes arriving during a sync are coalesced into the next,
at most one sync per MIN_SYNC_INTERVAL); every DRIFT_CHECK_SECONDS the live table's chains are compared with what was
applied and a full resync repairs any drift."""
from __future__ import annotations

import logging
import threading
import time

from kemu.api.nodeconfig import NodeConfig
from kemu.client.daemon import start_daemon
from kemu.client.informer import Informer
from kemu.nft import LibNftBackend
from netpol.enforcer import Enforcer
from netpol.ruleset import NetpolNode

log = logging.getLogger("kemu.netpol")
DRIFT_CHECK_SECONDS = 10.0
MIN_SYNC_INTERVAL = 0.001


def _key(obj: dict) -> str:
    md = obj["metadata"]
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else md["name"]


def main(config: NodeConfig) -> None:
    changed = threading.Event()
    client, stop = start_daemon(config, on_stop=changed.set)
    node = NetpolNode(config.node_name, (config.node_ip,), config.pod_cidr)
    backend = LibNftBackend()
    enforcer = Enforcer(node, backend)
    lock = threading.Lock()

    def handler(method: str):
        def on_change(_key_: str, old: dict | None, new: dict | None) -> None:
            with lock:
                getattr(enforcer, method)(_key(new or old), new)
            changed.set()
        return on_change

    informers = [Informer(client, "Namespace", handler("on_namespace")).start(),
                 Informer(client, "NetworkPolicy", handler("on_policy")).start(),
                 Informer(client, "Pod", handler("on_pod")).start()]
    for inf in informers:
        inf.synced.wait(10)
    with lock:
        result = enforcer.full_sync()
    log.info("netpol enforcer on %s: table inet %s loaded (%s, %d ops, %.1f ms)", node.name, node.table,
             result.kind, result.ops, result.duration_s * 1000)
    last = 0.0
    while not stop.is_set():
        if changed.wait(DRIFT_CHECK_SECONDS):
            changed.clear()
            wait = MIN_SYNC_INTERVAL - (time.monotonic() - last)
            if wait > 0:
                stop.wait(wait)
            with lock:
                result = enforcer.sync()
            last = time.monotonic()
        else:
            with lock:
                if enforcer.drifted():
                    log.warning("nftables table %s drifted (missing chains); recreating it", node.table)
                    result = enforcer.full_sync()
                else:
                    result = enforcer.sync()
        if result.error:
            log.warning("sync failed (%s); retrying", result.error)
            stop.wait(1.0)
            changed.set()
    for inf in informers:
        inf.stop()
