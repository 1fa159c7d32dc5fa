"""Drive a Proxier over stdin/stdout JSON lines (used by tests and benchmarks).

Run inside the node's network namespace::

    nsenter --net=/run/netns/NODE -- python -m kemu.testing.proxydriver '{"name": "node-1", "node_ips": [...], "cluster_cidr": "10.244.0.0/16"}'

Each input line is a command; each gets one output line ``{"ok": bool, "result"|"error": ...}``:
``{"op": "service"|"slice", "key": "ns/name", "obj": {...}|null}``, ``{"op": "sync"}``,
``{"op": "full"}``, ``{"op": "list"}``, ``{"op": "metrics"}``, ``{"op": "close"}``,
``{"op": "serve_metrics", "port": 10249}`` (the daemon's /metrics endpoint, in this netns),
``{"op": "bulk", "items": [[kind, key, obj], ...]}``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from kemu.nft import LibNftBackend
from proxy.metrics import METRICS_PORT
from proxy.proxier import Proxier
from proxy.ruleset import ProxyNode


def main(argv: list[str]) -> int:
    node = ProxyNode(**json.loads(argv[0]))
    proxier = Proxier(node, LibNftBackend())
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.get("op")
        try:
            result: object = None
            if op == "service":
                proxier.on_service(cmd.get("obj"), cmd["key"])
            elif op == "slice":
                proxier.on_endpoint_slice(cmd.get("obj"), cmd["key"])
            elif op == "bulk":
                for kind, key, obj in cmd["items"]:
                    (proxier.on_service if kind == "service" else proxier.on_endpoint_slice)(obj, key)
            elif op == "sync":
                result = asdict(proxier.sync())
            elif op == "full":
                result = asdict(proxier.full_resync())
            elif op == "list":
                result = proxier.nft.list_table("ip", node.table)
            elif op == "metrics":
                result = proxier.metrics_text()
            elif op == "serve_metrics":
                proxier.metrics.serve(int(cmd.get("port", METRICS_PORT)))
            elif op == "close":
                proxier.close()
            else:
                raise ValueError(f"unknown op {op!r}")
            out = {"ok": True, "result": result}
        except Exception as e:  # noqa: BLE001 - reported to the caller
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
