"""A deduplicating work queue with one worker thread, as client-go's workqueue is used by controllers."""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, name: str, handler: Callable[[str], None]) -> None:
        self.name = name
        self.handler = handler
        self._pending: dict[str, None] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"queue-{name}", daemon=True)

    def start(self) -> "WorkQueue":
        self._thread.start()
        return self

    def add(self, key: str) -> None:
        with self._cond:
            self._pending[key] = None
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                key = next(iter(self._pending))
                del self._pending[key]
            try:
                self.handler(key)
            except Exception:
                log.exception("%s: syncing %s failed; requeueing", self.name, key)
                threading.Timer(1.0, self.add, args=(key,)).start()
