"""The Proxier: keeps the node's ``ip kemu-proxy`` table in line with Services.

Feed it Services and EndpointSlices (``on_service`` / ``on_endpoint_slice``) and
call ``sync()``. The first sync, a sync after a failure and a periodic one
(``full_sync_period``) rewrite the whole table in one transaction; the others
only touch the changed Services' chains and map elements.
"""
from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

from kemu import nft
from kemu.nft import NftBackend, NftError, Op

from .metrics import ProxyMetrics
from .ruleset import (
    Chain,
    Fragment,
    ProxyNode,
    Ruleset,
    SequentialAllocator,
    UdpPort,
    base_ruleset,
    build_fragment,
    full_transaction,
    service_key,
)

log = logging.getLogger("kemu.proxy")


@dataclass
class SyncResult:
    """What one sync did."""

    kind: str                    # "full", "partial", "noop", "skipped", "failed"
    duration_s: float = 0.0
    build_s: float = 0.0         # computing the transaction
    apply_s: float = 0.0         # nftables commit
    ops: int = 0
    services_changed: int = 0
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def run_conntrack(args: list[str]) -> None:
    """Run the conntrack tool (no shell); "no entries" is not an error."""
    try:
        subprocess.run(["conntrack", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:  # pragma: no cover - tool missing
        log.warning("conntrack %s failed: %s", args, e)


def _delete_order(chain: str) -> tuple[int, str]:
    """Delete chains that jump to others first (ext/np/sep users before svc targets)."""
    return (0 if chain.startswith(("ext-", "np-")) else 1 if chain.startswith("svc-local") else 2, chain)


class _ReuseAllocator:
    """Allocator for rebuilding one Service: reuses its old blocks when sizes match."""

    def __init__(self, base: SequentialAllocator, old_blocks: list[tuple[str, int, int]]) -> None:
        self.base = base
        self.old = {(s, n): o for s, o, n in old_blocks}
        self.reused: set[tuple[str, int, int]] = set()

    def __call__(self, shard: str, size: int) -> int:
        off = self.old.pop((shard, size), None)
        if off is not None:
            self.reused.add((shard, off, size))
            return off
        return self.base(shard, size)


class Proxier:
    """Service proxy for one node (runs in the node's network namespace)."""

    def __init__(self, node: ProxyNode, nft: NftBackend, min_sync_interval: float = 0.0,
                 full_sync_period: float = 3600.0,
                 conntrack: Callable[[list[str]], None] | None = run_conntrack) -> None:
        self.node = node
        self.nft = nft
        self.min_sync_interval = min_sync_interval
        self.full_sync_period = full_sync_period
        self.conntrack = conntrack
        self.services: dict[str, dict] = {}
        self.slices: dict[str, dict] = {}
        self.slice_owner: dict[str, str] = {}          # slice key -> service key
        self.slices_of_service: dict[str, set[str]] = {}
        self.dirty: set[str] = set()
        self.fragments: dict[str, Fragment] = {}       # as applied
        self.elem_refs: dict[tuple[str, str], list] = {}  # (set, key) -> [value, refcount]
        self.shared_refs: dict[str, int] = {}           # shared chain -> Services using it
        self.shared_defs: dict[str, Chain] = {}
        self.alloc = SequentialAllocator()
        self.base = base_ruleset(node)
        self.needs_full = True
        self.recreate = True
        self.last_sync = 0.0
        self.last_full = 0.0
        self.last_success_ts = 0.0
        self.failures = 0
        self.counts: dict[str, int] = {}
        self.metrics = ProxyMetrics(pending=lambda: len(self.dirty))
        # a Service whose rules cannot be built is left out (its key → why) and reported; the others are programmed
        self.broken: dict[str, str] = {}
        self.on_service_error: Callable[[str, Exception], None] | None = None

    # ------------------------------------------------------------ inputs
    def on_service(self, svc: dict | None, key: str) -> None:
        """Upsert (svc dict) or delete (None) a Service; key = "ns/name"."""
        if svc is None:
            self.services.pop(key, None)
            self.broken.pop(key, None)
        else:
            self.services[key] = svc
        self.dirty.add(key)
        self.metrics.service_changes.inc()

    def on_endpoint_slice(self, es: dict | None, key: str) -> None:
        """Upsert or delete an EndpointSlice; key = "ns/name" of the slice."""
        self.metrics.endpoint_changes.inc()
        old_owner = self.slice_owner.pop(key, None)
        if old_owner:
            self.dirty.add(old_owner)
            owned = self.slices_of_service.get(old_owner)
            if owned is not None:
                owned.discard(key)
                if not owned:
                    del self.slices_of_service[old_owner]
        self.slices.pop(key, None)
        if es is not None:
            md = es.get("metadata") or {}
            svc_name = (md.get("labels") or {}).get("kubernetes.io/service-name")
            if svc_name:
                owner = f"{md.get('namespace', key.split('/', 1)[0])}/{svc_name}"
                self.slices[key] = es
                self.slice_owner[key] = owner
                self.slices_of_service.setdefault(owner, set()).add(key)
                self.dirty.add(owner)

    def _slices_of(self, svc_key: str) -> list[dict]:
        return [self.slices[k] for k in sorted(self.slices_of_service.get(svc_key, ()))]

    # ------------------------------------------------------------ syncing
    def sync(self) -> SyncResult:
        """Apply pending changes: incremental when possible, full when needed."""
        now = time.monotonic()
        if self.min_sync_interval and now - self.last_sync < self.min_sync_interval:
            return SyncResult("skipped")
        if self.needs_full or (self.full_sync_period and now - self.last_full >= self.full_sync_period):
            return self.full_resync()
        if not self.dirty:
            return SyncResult("noop")
        return self._partial_sync()

    def full_resync(self) -> SyncResult:
        """Rewrite the whole table in one transaction (repairs drift)."""
        t0 = time.perf_counter()
        self.last_sync = time.monotonic()
        alloc = SequentialAllocator()
        rs = base_ruleset(self.node)
        grouped: dict[str, list[dict]] = {}
        for k, owner in self.slice_owner.items():
            grouped.setdefault(owner, []).append(self.slices[k])
        frags: dict[str, Fragment] = {}
        refs: dict[tuple[str, str], list] = {}
        for key in sorted(self.services):
            prev = self.fragments.get(key)
            if prev is not None and not prev.blocks and key not in self.dirty and not self.recreate:
                frag = prev          # unchanged, and owns no endpoint-map blocks: reuse as is
            else:
                frag = self._build(key, grouped.get(key, []), alloc)
                if frag is None:
                    continue
            frags[key] = frag
            rs.add_fragment(frag)
            for sk, v in frag.elements.items():
                if sk in refs:
                    refs[sk][1] += 1
                else:
                    refs[sk] = [v, 1]
        shared: dict[str, int] = {}
        for frag in frags.values():
            for c in frag.shared_chains:
                shared[c] = shared.get(c, 0) + 1
        old_chains = {c for f in self.fragments.values() for c in f.chains} | set(self.shared_refs)
        old_sets = {n: s for f in self.fragments.values() for n, s in f.sets.items()}
        stale_chains = tuple(sorted(old_chains - set(rs.chains), key=_delete_order))
        stale_sets = tuple(s for n, s in sorted(old_sets.items()) if n not in rs.sets)
        # Recreating is cheaper for the kernel than flushing and refilling ~100k map elements,
        # but it forgets affinity state: refill in place only when there is such state to keep.
        recreate = self.recreate or not any(s.dynamic for s in rs.sets.values())
        tx = full_transaction(rs, recreate, stale_chains, stale_sets)
        t1 = time.perf_counter()
        try:
            self.nft.run(tx)
        except NftError as e:
            self.failures += 1
            self.metrics.sync_failures.inc()
            log.error("full sync failed (%s); will recreate the table next time", e)
            self.needs_full = True
            self.recreate = True
            return SyncResult("failed", time.perf_counter() - t0, t1 - t0, time.perf_counter() - t1,
                              len(tx), len(self.services), str(e))
        t2 = time.perf_counter()
        old_frags = self.fragments
        self.fragments, self.elem_refs, self.alloc, self.shared_refs = frags, refs, alloc, shared
        self.shared_defs = {c: rs.chains[c] for c in shared}
        self.needs_full = self.recreate = False
        changed = set(self.dirty)
        self.dirty.clear()
        self.last_full = time.monotonic()
        self.counts = rs.counts()
        self._record("full", t2 - t0)
        # only Services whose previous state we know: after a restart nothing is flushed in bulk
        self._conntrack_cleanup({k: (old_frags[k], frags.get(k)) for k in changed if k in old_frags})
        return SyncResult("full", time.perf_counter() - t0, t1 - t0, t2 - t1, len(tx),
                          len(changed), counts=dict(self.counts))

    def _partial_sync(self) -> SyncResult:
        t0 = time.perf_counter()
        self.last_sync = time.monotonic()
        dirty = sorted(self.dirty)
        new_frags: dict[str, Fragment | None] = {}
        reused: set[tuple[str, int, int]] = set()
        for key in dirty:
            svc = self.services.get(key)
            old = self.fragments.get(key)
            if svc is None:
                new_frags[key] = None
                continue
            alloc = _ReuseAllocator(self.alloc, old.blocks if old else [])
            frag = self._build(key, self._slices_of(key), alloc)
            new_frags[key] = frag
            reused |= alloc.reused

        add_sets: list[nft.Set] = []
        del_sets: list[nft.Set] = []
        add_chains: list[str] = []
        rule_ops: list[Op] = []
        del_chains: list[str] = []
        touched: dict[tuple[str, str], list | None] = {}   # working copy of elem_refs entries
        decs: list[tuple[tuple[str, str], str | None]] = []
        incs: list[tuple[tuple[str, str], str | None]] = []
        for key in dirty:
            old, new = self.fragments.get(key), new_frags[key]
            oc = old.chains if old else {}
            nc = new.chains if new else {}
            os_ = old.sets if old else {}
            ns_ = new.sets if new else {}
            add_sets += [s for n, s in ns_.items() if n not in os_]
            del_sets += [s for n, s in os_.items() if n not in ns_]
            for name, chain in nc.items():
                if name not in oc:
                    add_chains.append(name)
                    rule_ops += [Op("add", nft.Rule(name, r)) for r in chain.rules]
                elif oc[name].rules != chain.rules:
                    rule_ops.append(Op("flush", nft.Chain(name)))
                    rule_ops += [Op("add", nft.Rule(name, r)) for r in chain.rules]
            del_chains += [n for n in oc if n not in nc]
            oe = old.elements if old else {}
            ne = new.elements if new else {}
            decs += [(k, v) for k, v in oe.items() if k not in ne or ne[k] != v]
            incs += [(k, v) for k, v in ne.items() if k not in oe or oe[k] != v]
        shared_after = dict(self.shared_refs)
        shared_defs: dict[str, Chain] = {}
        for key in dirty:
            old, new = self.fragments.get(key), new_frags[key]
            for c in (old.shared_chains if old else {}):
                shared_after[c] -= 1
            for c, chain in (new.shared_chains if new else {}).items():
                shared_after[c] = shared_after.get(c, 0) + 1
                shared_defs[c] = chain
        shared_new = sorted((c for c, n in shared_after.items() if n > 0 and not self.shared_refs.get(c)),
                            key=lambda c: not c.startswith("svc-"))     # targets before their users
        shared_gone = sorted((c for c, n in shared_after.items() if n <= 0 and self.shared_refs.get(c)),
                             key=_delete_order)
        for k, _v in decs + incs:
            if k not in touched:
                cur = self.elem_refs.get(k)
                touched[k] = list(cur) if cur else None
        for k, _v in decs:
            ent = touched[k]
            if ent:
                ent[1] -= 1
                if ent[1] <= 0:
                    touched[k] = None
        for k, v in incs:
            ent = touched[k]
            if ent:
                ent[1] += 1
            else:
                touched[k] = [v, 1]
        elem_dels: list[Op] = []
        elem_adds: list[Op] = []
        for k, ent in touched.items():
            before = self.elem_refs.get(k)
            bval = before[0] if before else None
            aval = ent[0] if ent else None
            if before and (not ent or bval != aval):
                elem_dels.append(Op("delete", nft.Element(k[0], k[1])))
            if ent and (not before or bval != aval):
                elem_adds.append(Op("add", nft.Element(k[0], k[1], aval)))

        tx = nft.Transaction("ip", self.node.table)
        for s in add_sets:
            tx.add(s)
        for name in shared_new:
            tx.add(nft.Chain(name))
            for r in shared_defs[name].rules:
                tx.add(nft.Rule(name, r))
        for name in add_chains:
            tx.add(nft.Chain(name))
        tx.ops += rule_ops
        elem_dels.sort(key=lambda o: o.obj.set)
        elem_adds.sort(key=lambda o: o.obj.set)
        tx.ops += elem_dels + elem_adds
        del_chains += shared_gone
        for name in del_chains:
            tx.flush(nft.Chain(name))
        for name in sorted(del_chains, key=_delete_order):
            tx.delete(nft.Chain(name))
        for s in del_sets:
            tx.delete(s)
        t1 = time.perf_counter()
        if tx.ops:
            try:
                self.nft.run(tx)
            except NftError as e:
                self.failures += 1
                self.metrics.sync_failures.inc()
                log.error("partial sync failed (%s); next sync is a full one", e)
                self.needs_full = True
                return SyncResult("failed", time.perf_counter() - t0, t1 - t0, time.perf_counter() - t1,
                                  len(tx), len(dirty), str(e))
        t2 = time.perf_counter()
        # commit the model
        before = {k: self.fragments.get(k) for k in dirty}
        self._update_counts(before, new_frags)
        for key in dirty:
            old = self.fragments.get(key)
            if old:
                for b in old.blocks:
                    if b not in reused:
                        self.alloc.release(*b)
            if new_frags[key] is None:
                self.fragments.pop(key, None)
            else:
                self.fragments[key] = new_frags[key]
        self.shared_refs = {c: n for c, n in shared_after.items() if n > 0}
        for k, ent in touched.items():
            if ent:
                self.elem_refs[k] = ent
            else:
                self.elem_refs.pop(k, None)
        self.counts["elements"] = len(self.elem_refs)
        self.counts["chains"] = self.counts.get("chains", 0) + len(shared_new) - len(shared_gone)
        self.counts["rules"] = (self.counts.get("rules", 0) + sum(len(shared_defs[c].rules) for c in shared_new)
                                - sum(len(self.shared_defs[c].rules) for c in shared_gone if c in self.shared_defs))
        for c in shared_new:
            self.shared_defs[c] = shared_defs[c]
        for c in shared_gone:
            self.shared_defs.pop(c, None)
        self.dirty.clear()
        self._record("partial", t2 - t0)
        self._conntrack_cleanup({k: (before[k], new_frags[k]) for k in dirty})
        return SyncResult("partial", time.perf_counter() - t0, t1 - t0, t2 - t1, len(tx), len(dirty),
                          counts=dict(self.counts))

    # ------------------------------------------------------------ helpers
    def _build(self, key: str, slices: list[dict], alloc: Callable[[str, int], int]) -> Fragment | None:
        """The Service's rules, or None when they cannot be built from it (reported once per distinct reason):
        one Service the proxy cannot read must never stop it programming the others."""
        try:
            frag = build_fragment(self.services[key], slices, self.node, alloc)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self.broken.get(key) != reason:
                self.broken[key] = reason
                log.error("service %s: cannot build its rules (%s); leaving it out", key, reason)
                if self.on_service_error is not None:
                    self.on_service_error(key, exc)
            return None
        self.broken.pop(key, None)
        return frag

    def _update_counts(self, before: dict[str, Fragment | None], after: dict[str, Fragment | None]) -> None:
        """Adjust object counts by the difference between Services' old and new fragments."""
        def size(f: Fragment | None) -> tuple[str, int, int]:
            if f is None:
                return 0, 0, 0
            return len(f.chains), sum(len(c.rules) for c in f.chains.values()), len(f.sets)
        for k in before:
            b, a = size(before[k]), size(after[k])
            self.counts["chains"] = self.counts.get("chains", 0) + a[0] - b[0]
            self.counts["rules"] = self.counts.get("rules", 0) + a[1] - b[1]
            self.counts["sets"] = self.counts.get("sets", 0) + a[2] - b[2]

    def _conntrack_cleanup(self, changes: dict[str, tuple[Fragment | None, Fragment | None]]) -> None:
        """Flush UDP conntrack entries pointing at removed endpoints (and at newly served frontends)."""
        if not self.conntrack:
            return
        for old, new in changes.values():
            old_ports = old.udp_ports if old else []
            new_ports = {(p.frontends, p.node_port): p for p in (new.udp_ports if new else [])}
            for op in old_ports:
                np = new_ports.get((op.frontends, op.node_port))
                removed = op.endpoint_ips - (np.endpoint_ips if np else frozenset())
                for ip in sorted(removed):
                    for fe in op.frontends:
                        self.conntrack(["-D", "-p", "udp", "--orig-dst", fe, "--reply-src", ip])
                    if op.node_port:
                        self.conntrack(["-D", "-p", "udp", "--orig-port-dst", str(op.node_port),
                                        "--reply-src", ip])
            old_map = {(p.frontends, p.node_port): p for p in old_ports}
            for k, np in new_ports.items():
                op = old_map.get(k)
                if np.endpoint_ips and (op is None or not op.endpoint_ips):
                    for fe in np.frontends:
                        self.conntrack(["-D", "-p", "udp", "--orig-dst", fe])

    def _record(self, kind: str, seconds: float) -> None:
        self.last_success_ts = time.time()
        self.metrics.synced(kind, seconds, self.counts)

    # ------------------------------------------------------------ outputs
    def expected_chains(self) -> set[str]:
        """Names of the chains the table should hold now (base, shared and per-Service chains)."""
        names = set(self.base.chains) | set(self.shared_defs)
        for frag in self.fragments.values():
            names |= set(frag.chains)
        return names

    def metrics_text(self) -> str:
        """Prometheus text exposition (kube-proxy metric names and types)."""
        return self.metrics.text()

    def close(self) -> None:
        """Delete the table (tests/teardown)."""
        tx = nft.Transaction("ip", self.node.table)
        tx.add(nft.Table())
        tx.delete(nft.Table())
        self.nft.run(tx)
        self.fragments.clear()
        self.elem_refs.clear()
        self.needs_full = self.recreate = True


def ruleset_of(proxier: Proxier) -> Ruleset:
    """The desired ruleset the proxier currently holds (for debugging)."""
    rs = base_ruleset(proxier.node)
    for key in sorted(proxier.fragments):
        rs.add_fragment(proxier.fragments[key])
    return rs


__all__ = ["Proxier", "SyncResult", "service_key", "UdpPort"]
