"""The watch half of a cluster client, whatever the transport: events on one kind's objects after a revision.

`Client.watch` (the store, in-process) and `RestClient.watch` (the API server's `?watch=1` stream) both return an
`ObjectWatcher`; `kemu.client.informer.Informer` lists and watches through either, so there is one informer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Protocol

from kemu.api.kinds import Kind
from kemu.api.meta import key_for
from kemu.store import Watcher


@dataclass(frozen=True)
class ObjectEvent:
    type: Literal["PUT", "DELETE"]
    key: str                      # the object's store key, /registry/<plural>/[<ns>/]<name>, on either transport
    obj: dict | None              # the new object (PUT); the last state, if the transport knows it (DELETE)
    revision: int


class ObjectWatcher(Protocol):
    def next_batch(self, timeout: float) -> list[ObjectEvent]:
        """Block up to `timeout` seconds for events (an empty list: none). Raises kemu.store.Compacted when the
        start revision is no longer available (the informer relists), another exception when the watch broke."""

    def close(self) -> None: ...


def object_key(kind: Kind, obj: dict) -> str:
    """The store key of `obj` (what informers key their caches by)."""
    meta = obj["metadata"]
    return key_for(kind, meta.get("namespace") if kind.namespaced else None, meta["name"])


class StoreObjectWatcher:
    """A store prefix watch, decoded into objects (`decode(value, revision)`: kemu.client.decode)."""

    def __init__(self, watcher: Watcher, decode: Callable[[bytes, int], dict]) -> None:
        self.watcher, self.decode = watcher, decode

    def next_batch(self, timeout: float) -> list[ObjectEvent]:
        decode = self.decode
        return [ObjectEvent(ev.type, ev.key, decode(ev.value, ev.revision) if ev.type == "PUT" and ev.value else None,
                            ev.revision) for ev in self.watcher.next_batch(timeout)]

    def close(self) -> None:
        self.watcher.close()
