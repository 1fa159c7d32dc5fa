"""The cluster's shared state: a key-value store with etcd's semantics.

Every component talks to a `Store`: revisions, prefix range, compare-and-swap transactions and prefix watch.
`SQLiteStore` is the embedded default (one node, like k3s on kine); an etcd backend fills the same interface.
"""
from kemu.store.base import (
    Compacted,
    Compare,
    Delete,
    Event,
    KeyValue,
    Put,
    RequestTooLarge,
    Store,
    TxnResult,
    Watcher,
)
from kemu.store.etcd import EtcdStore
from kemu.store.sqlite import SQLiteStore


def open_store(url: str) -> Store:
    """Open a store from a URL: `sqlite:///path/to/db` (or a bare path), `etcd://HOST:PORT[,HOST:PORT]`,
    `etcds://HOST:PORT?ca=F&cert=F&key=F` (TLS) or `etcd+unix:///path/to/etcd.sock`."""
    if url.startswith(("etcd://", "etcds://", "etcd+unix://")):
        return EtcdStore(url)
    if url.startswith("sqlite://"):
        return SQLiteStore(url[len("sqlite://"):])
    if "://" not in url:
        return SQLiteStore(url)
    raise ValueError(f"store URL {url!r}: unsupported scheme; use sqlite:///PATH or etcd://HOST:PORT")


__all__ = ["Compacted", "Compare", "Delete", "Event", "KeyValue", "Put", "RequestTooLarge", "Store", "TxnResult",
           "Watcher", "SQLiteStore", "EtcdStore", "open_store"]
