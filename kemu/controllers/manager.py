"""`kemu controller-manager`: runs the scheduler and the controllers of one cluster against its store."""
from __future__ import annotations

import logging
import signal
import threading

from kemu.client import Client
from kemu.controllers.endpoints import EndpointsController
from kemu.controllers.loadbalancer import LoadBalancerController
from kemu.controllers.nodelifecycle import NodeLifecycleController
from kemu.controllers.scheduler import Scheduler
from kemu.controllers.workloads import start_workload_controllers
from kemu.store import open_store


def main(store_url: str, node_monitor_grace_period: float = 40.0) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = Client(open_store(store_url))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Scheduler(client).start()
    EndpointsController(client).start()
    LoadBalancerController(client).start()
    NodeLifecycleController(client, node_monitor_grace_period).start()
    start_workload_controllers(client)
    stop.wait()
