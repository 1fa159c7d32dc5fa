"""What every kemu daemon does first: one log format, a client of the cluster, and SIGTERM/SIGINT as a stop event.

The client is the in-process one on a store (`Client(open_store(url))`, a lab's default: fastest) or, given a
kubeconfig, a `RestClient` through the API server (a node that joined with only an API address and a credential).
Both offer what the daemons call (get/list/create/update/mutate/delete/apply/watch) and informers work on either.
"""
from __future__ import annotations

import logging
import signal
import socketserver
import threading
from http.server import ThreadingHTTPServer
from typing import Callable, Union

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from kemu.api.nodeconfig import NodeConfig
from kemu.client import Client
from kemu.client.rest import RestClient
from kemu.store import open_store

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
ClusterClient = Union[Client, RestClient]


def connect(store_url: str = "", kubeconfig: str = "") -> ClusterClient:
    """The cluster client: through the API server when a kubeconfig is given, else on the store at `store_url`."""
    if kubeconfig:
        return RestClient.from_kubeconfig(kubeconfig)
    if not store_url:
        raise ValueError("no cluster to talk to: give a store URL or a kubeconfig")
    return Client(open_store(store_url))


def node_client(config: NodeConfig) -> ClusterClient:
    """The client a node component uses: NodeConfig.kubeconfig (the API) if set, else NodeConfig.store_url."""
    return connect(config.store_url, config.kubeconfig)


def start_daemon(cluster: str | NodeConfig, on_stop: Callable[[], None] | None = None) \
        -> tuple[ClusterClient, threading.Event]:
    """Set up logging and signals (call from the main thread); returns the cluster client (`cluster`: a store URL,
    or a node's config) and the stop event, which SIGTERM or SIGINT sets (then `on_stop` runs, e.g. to wake a
    loop)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()

    def handle(*_: object) -> None:
        stop.set()
        if on_stop is not None:
            on_stop()
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    client = node_client(cluster) if isinstance(cluster, NodeConfig) else connect(cluster)
    return client, stop


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> None:
    """Serve `registry` at http://addr:port/metrics from a daemon thread, with prometheus_client's own handler.

    prometheus_client's start_http_server binds through http.server, which first resolves the host's FQDN: inside a
    lab's namespaces no resolver answers, so every daemon waited ~10 s for the lookup to time out before serving (and
    before its next start-up step). This server binds without that lookup."""
    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self) -> None:
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = addr, self.server_address[1]
    httpd = Server((addr, port), MetricsHandler.factory(registry))
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
