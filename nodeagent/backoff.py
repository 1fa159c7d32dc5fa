"""Restart back-off exactly as kubelet's (flowcontrol.Backoff as used by kuberuntime's doBackOff).

The first restart after an exit is immediate; each later one waits `initial`, then doubles, capped at `max`,
measured from the container's finish time. An entry not updated for 2 × max (the container ran that long) resets.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = 10.0, maximum: float = 300.0, clock=time.time) -> None:
        self.initial = initial
        self.max = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        """Stable: the container finished more than 2 × max after the last restart (it ran that long)."""
        return event_time - entry.last_update > 2 * self.max

    def next(self, key: str, finished_at: float) -> None:
        """Record a restart now of a container that finished at `finished_at`: the next waits twice as long."""
        with self._lock:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is None or self._expired(finished_at, entry):
                self._entries[key] = _Entry(self.initial, now)
            else:
                entry.backoff = min(entry.backoff * 2, self.max)
                entry.last_update = now

    def remaining(self, key: str, finished_at: float) -> float:
        """Seconds still to wait before restarting a container that finished at `finished_at` (0: go now)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self._expired(finished_at, entry):
                return 0.0
            return max(0.0, finished_at + entry.backoff - self.clock())

    def current(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def forget(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k.startswith(prefix)]:
                del self._entries[key]

    def gc(self) -> None:
        with self._lock:
            now = self.clock()
            for key in [k for k, e in self._entries.items() if self._expired(now, e)]:
                del self._entries[key]
