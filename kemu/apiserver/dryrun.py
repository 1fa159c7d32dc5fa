"""`dryRun=All`: the whole admission path (validation, defaults, allocation checks) against a store that never
writes, so the answer is what would have been stored and nothing is."""
from __future__ import annotations

from kemu.store import Compare, Delete, KeyValue, Put, Store, TxnResult, Watcher


class DryRunStore(Store):
    """Reads from `store`; transactions are evaluated but not applied."""

    def __init__(self, store: Store) -> None:
        self.inner = store

    def get(self, key: str) -> KeyValue | None:
        return self.inner.get(key)

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        return self.inner.range(prefix)

    def revision(self) -> int:
        return self.inner.revision()

    def watch(self, prefix: str, start_revision: int) -> Watcher:
        return self.inner.watch(prefix, start_revision)

    def txn(self, compares: list[Compare], success: list[Put | Delete],
            failure: list[Put | Delete] | None = None) -> TxnResult:
        ok = all((kv.mod_revision if (kv := self.inner.get(c.key)) else 0) == c.mod_revision for c in compares)
        ops = success if ok else (failure or [])
        rev = self.inner.revision() + (1 if ops else 0)
        return TxnResult(ok, rev, {op.key: rev if isinstance(op, Put) else 0 for op in ops})
