"""A deduplicating work queue with one worker thread, as client-go's workqueue is used by controllers: a key whose
sync fails is retried with per-key exponential back-off (client-go's rate-limiting queue), and `on_error` is told,
so that one object the controller cannot handle is reported on that object and never stops the others."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kemu.controllers import metrics

log = logging.getLogger(__name__)
RETRY_INITIAL, RETRY_MAX = 1.0, 60.0      # seconds: a failing key waits 1, 2, 4 ... 60 s between attempts
ErrorHandler = Callable[[str, Exception], None]


class WorkQueue:
    def __init__(self, name: str, handler: Callable[[str], None], on_error: ErrorHandler | None = None) -> None:
        self.name = name
        self.handler = handler
        self.on_error = on_error
        self.failures: dict[str, int] = {}     # key -> consecutive failed syncs
        self._pending: dict[str, None] = {}
        self._added: dict[str, float] = {}       # key -> when it was queued (workqueue_queue_duration_seconds)
        for family in (metrics.adds, metrics.depth, metrics.retries):      # reported from creation, as client-go
            family.labels(name)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"queue-{name}", daemon=True)

    def start(self) -> "WorkQueue":
        self._thread.start()
        return self

    def add(self, key: str) -> None:
        with self._cond:
            metrics.adds.labels(self.name).inc()
            if key not in self._pending:
                self._added[key] = time.monotonic()
            self._pending[key] = None
            metrics.depth.labels(self.name).set(len(self._pending))
            self._cond.notify()

    def retry_delay(self, key: str) -> float:
        """The back-off before the next attempt of a key that failed `failures[key]` times in a row."""
        return min(RETRY_INITIAL * 2 ** max(self.failures.get(key, 1) - 1, 0), RETRY_MAX)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                key = next(iter(self._pending))
                del self._pending[key]
                metrics.depth.labels(self.name).set(len(self._pending))
                started = time.monotonic()
                metrics.queue_duration.labels(self.name).observe(started - self._added.pop(key, started))
            try:
                self.handler(key)
            except Exception as exc:   # one object must never stop the loop: report it, retry it later
                self.failures[key] = self.failures.get(key, 0) + 1
                delay = self.retry_delay(key)
                log.exception("%s: syncing %s failed; retrying in %.0fs", self.name, key, delay)
                if self.on_error is not None:
                    try:
                        self.on_error(key, exc)
                    except Exception:
                        log.exception("%s: reporting the failure of %s failed", self.name, key)
                timer = threading.Timer(delay, self.add, args=(key,))
                timer.daemon = True
                timer.start()
                metrics.retries.labels(self.name).inc()
            else:
                self.failures.pop(key, None)
            finally:
                metrics.work_duration.labels(self.name).observe(time.monotonic() - started)
