"""Informer: list once, then watch, keeping a local cache and calling handlers, like client-go's. It works over
either client (kemu.client.Client on a store, kemu.client.rest.RestClient over HTTPS): both offer `list(kind)` and
`watch(kind, after_revision)` (kemu.client.watchsource); a compacted/expired revision (410) means relist."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from kemu.api.kinds import Kind, resolve_kind
from kemu.api.meta import REGISTRY
from kemu.client import Client
from kemu.client.watchsource import object_key
from kemu.store import Compacted

log = logging.getLogger(__name__)
Handler = Callable[[str, dict | None, dict | None], None]   # (key, old, new); new None = deleted


class Informer:
    """Keeps `cache` (store key → object) in step with the cluster for one kind and calls `handler` on each change.
    `client`: a Client or a RestClient."""

    def __init__(self, client: Client, kind: str | Kind, handler: Handler | None = None) -> None:
        self.client = client
        self.kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        self.prefix = f"{REGISTRY}{self.kind.registry_path}/"
        self.cache: dict[str, dict] = {}
        self.handlers: list[Handler] = [handler] if handler else []
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = threading.RLock()

    def start(self) -> "Informer":
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind.plural}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def items(self) -> list[dict]:
        with self.lock:
            return list(self.cache.values())

    def _dispatch(self, key: str, old: dict | None, new: dict | None) -> None:
        for handler in self.handlers:
            try:
                handler(key, old, new)
            except Exception:  # a handler bug must not stop the informer
                log.exception("handler for %s failed", key)

    def _relist(self) -> int:
        items, rev = self.client.list(self.kind)
        fresh = {object_key(self.kind, obj): obj for obj in items}
        with self.lock:
            old_cache, self.cache = self.cache, fresh
        for key, old in old_cache.items():
            if key not in fresh:
                self._dispatch(key, old, None)
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None or old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._dispatch(key, old, obj)
        self.synced.set()
        return rev

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rev = self._relist()
                watcher = self.client.watch(self.kind, rev)
                try:
                    while not self._stop.is_set():
                        for ev in watcher.next_batch(timeout=0.5):
                            with self.lock:
                                old = self.cache.get(ev.key)
                                if ev.type == "PUT":
                                    new = ev.obj
                                    self.cache[ev.key] = new
                                else:
                                    new = None
                                    self.cache.pop(ev.key, None)
                            self._dispatch(ev.key, old, new)
                finally:
                    watcher.close()
            except Compacted:
                log.info("watch on %s compacted; relisting", self.prefix)
            except Exception:
                log.exception("informer %s failed; relisting", self.prefix)
                self._stop.wait(1.0)
