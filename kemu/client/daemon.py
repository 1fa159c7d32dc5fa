"""What every kemu daemon does first: one log format, a client of the cluster, and SIGTERM/SIGINT as a stop event."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

from kemu.client import Client
from kemu.store import open_store

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def start_daemon(store_url: str, on_stop: Callable[[], None] | None = None) -> tuple[Client, threading.Event]:
    """Set up logging and signals (call from the main thread); returns the cluster client and the stop event,
    which SIGTERM or SIGINT sets (then `on_stop` runs, e.g. to wake a loop)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()

    def handle(*_: object) -> None:
        stop.set()
        if on_stop is not None:
            on_stop()
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return Client(open_store(store_url)), stop
