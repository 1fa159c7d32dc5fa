"""Store interface: what etcd v3 offers and Kubernetes relies on, nothing more."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


@dataclass(frozen=True)
class Event:
    type: Literal["PUT", "DELETE"]
    key: str
    value: bytes | None          # new value (PUT) or None (DELETE)
    revision: int                # the revision of this change
    prev_value: bytes | None = None


@dataclass(frozen=True)
class Compare:
    """Succeeds when `key`'s mod_revision equals `mod_revision` (0: the key must not exist)."""
    key: str
    mod_revision: int


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes


@dataclass(frozen=True)
class Delete:
    key: str


@dataclass
class TxnResult:
    succeeded: bool
    revision: int
    # mod_revision of every key the transaction wrote (0 for deleted keys)
    revisions: dict[str, int] = field(default_factory=dict)


MAX_VALUE_BYTES = 3 * 1024 * 1024 // 2      # etcd's default --max-request-bytes: no value may be larger


class RequestTooLarge(ValueError):
    """A write carried a value larger than the store takes (etcd: "etcdserver: request is too large")."""


def check_request(ops: list[Put | Delete]) -> None:
    """Refuse, as etcd does, a transaction with a value over MAX_VALUE_BYTES (before anything is written)."""
    for op in ops:
        if isinstance(op, Put) and len(op.key) + len(op.value) > MAX_VALUE_BYTES:
            raise RequestTooLarge(f"etcdserver: request is too large ({op.key}: {len(op.value)} bytes, at most "
                                  f"{MAX_VALUE_BYTES})")


class Compacted(Exception):
    """The requested watch revision is older than the store keeps history for: relist."""


class Watcher(abc.ABC):
    """A prefix watch that yields events after a start revision, in revision order."""

    @abc.abstractmethod
    def next_batch(self, timeout: float) -> list[Event]:
        """Block up to `timeout` seconds for events; an empty list means none arrived."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Store(abc.ABC):
    @abc.abstractmethod
    def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under `prefix` and the store revision they were read at."""

    @abc.abstractmethod
    def txn(self, compares: list[Compare], success: list[Put | Delete],
            failure: list[Put | Delete] | None = None) -> TxnResult:
        """Atomically: if every compare holds apply `success`, else apply `failure`."""

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> Watcher:
        """Events under `prefix` with revision >= start_revision."""

    @abc.abstractmethod
    def revision(self) -> int: ...

    def close(self) -> None:
        pass

    # conveniences built on txn
    def put(self, key: str, value: bytes, expect_mod_revision: int | None = None) -> TxnResult:
        compares = [] if expect_mod_revision is None else [Compare(key, expect_mod_revision)]
        return self.txn(compares, [Put(key, value)])

    def delete(self, key: str, expect_mod_revision: int | None = None) -> TxnResult:
        compares = [] if expect_mod_revision is None else [Compare(key, expect_mod_revision)]
        return self.txn(compares, [Delete(key)])
