"""The NetworkPolicy enforcer of one node: keeps the desired table incrementally as policies, pods and namespaces
change, and applies the difference as one nftables transaction per sync.

    e = Enforcer(NetpolNode("node1", ("192.168.56.11",), "10.244.1.0/24"), LibNftBackend())
    e.on_policy(key, obj); e.on_pod(key, obj); e.on_namespace(key, obj)   # obj None = deleted
    e.sync()          # -> SyncResult(kind="full"|"partial"|"noop"|"failed", ops, duration_s)

The change tracker: each pod's contribution to each policy's sets is remembered (``contrib``), elements are
refcounted, and every touched set key, chain and set definition is marked dirty; a partial sync diffs only the dirty
things against what was last applied. A failed transaction changes nothing; the next sync recreates the table.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

from kemu import nft
from netpol.ruleset import (
    EGRESS,
    EGRESS_PODS,
    FAMILY,
    INGRESS,
    INGRESS_PODS,
    UNKNOWN,
    CompiledPolicy,
    Element,
    NetpolNode,
    PodInfo,
    Ruleset,
    chain_object,
    compile_policy,
    full_transaction,
    pod_info,
    pod_verdict,
    set_chain_name,
    set_chain_rules,
    skeleton,
    unknown_rules,
)

log = logging.getLogger("kemu.netpol")
PODS_MAPS = {INGRESS: INGRESS_PODS, EGRESS: EGRESS_PODS}


@dataclass
class SyncResult:
    kind: str                 # full, partial, noop, failed
    ops: int = 0
    duration_s: float = 0.0
    error: str | None = None


class Enforcer:
    """Desired state kept incrementally; ``sync`` applies it (see module doc)."""

    def __init__(self, node: NetpolNode, backend: nft.NftBackend, full_sync_period: float = 3600.0) -> None:
        self.node = node
        self.nft = backend
        self.full_sync_period = full_sync_period
        self.policies: dict[str, CompiledPolicy] = {}
        self.by_pid: dict[str, CompiledPolicy] = {}
        self.policies_by_ns: dict[str, set[str]] = {}
        self.cluster_wide: set[str] = set()
        self.pods: dict[str, PodInfo] = {}
        self.pods_by_ns: dict[str, set[str]] = {}
        self.ns_labels: dict[str, dict[str, str]] = {}
        self.contrib: dict[str, dict[str, frozenset[Element]]] = {}   # pod key -> policy key -> elements
        self.refs: dict[Element, int] = {}
        self.assigned: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {}   # pod -> (ip, in pids, eg pids)
        self.ip_owner: dict[str, str] = {}
        self.chain_refs: dict[str, int] = {}
        self.chain_pids: dict[str, tuple[str, frozenset[str]]] = {}
        self.pid_chains: dict[str, set[str]] = {}
        self.set_refs: dict[str, int] = {}
        self.pending: set[str] = set()
        sets, chains, elements = skeleton(node)
        self.desired = Ruleset(node.table, sets, chains, elements)
        self.applied: Ruleset | None = None
        self.dirty_elems: dict[str, set[str]] = {}
        self.dirty_chains: set[str] = set()
        self.dirty_sets: set[str] = set()
        self.last_full = 0.0
        self.force_full = True
        self.changes = 0

    # ------------------------------------------------------------------------------------------ events
    def on_policy(self, key: str, obj: dict | None) -> None:
        old = self.policies.pop(key, None)
        new = compile_policy(obj) if obj is not None else None
        self.changes += 1
        old_sets = {s.name: s for s in old.sets()} if old is not None else {}
        new_sets = {s.name: s for s in new.sets()} if new is not None else {}
        for name, s in new_sets.items():          # sets kept by name keep their elements (refs drive them)
            if name not in old_sets:
                self.set_refs[name] = self.set_refs.get(name, 0) + 1
                if self.set_refs[name] == 1:
                    self.desired.sets[name] = s
                    self.desired.elements.setdefault(name, {})
                    self.dirty_sets.add(name)
        if old is not None:
            self.by_pid.pop(old.pid, None)
            self.policies_by_ns.get(old.namespace, set()).discard(key)
            self.cluster_wide.discard(key)
        if new is not None:
            self.policies[key] = new
            self.by_pid[new.pid] = new
            self.policies_by_ns.setdefault(new.namespace, set()).add(key)
            if new.cluster_wide:
                self.cluster_wide.add(key)
        self._contribute(f"policy:{key}", "", frozenset(new.static_elements()) if new is not None else frozenset())
        ns = (new or old).namespace
        spaces = self._namespaces_of(old) | self._namespaces_of(new) if "*" not in \
            (self._namespaces_of(old) | self._namespaces_of(new)) else set(self.pods_by_ns)
        pod_keys = [pk for n in spaces for pk in self.pods_by_ns.get(n, ())]
        for pk in pod_keys:
            pod = self.pods[pk]
            elems = new.pod_elements(pod, self.ns_labels.get(pod.namespace, {}), self._local(pod)) \
                if new is not None else frozenset()
            self._contribute(pk, key, elems)
        # rules of shared chains holding this policy
        pid = (new or old).pid
        for chain in list(self.pid_chains.get(pid, ())):
            self._set_chain(chain, *self.chain_pids[chain])
        for pk in list(self.pods_by_ns.get(ns, ())):
            self._assign(pk, (old, new))
        for name in old_sets.keys() - new_sets.keys():   # after the pods' contributions are gone
            self.set_refs[name] -= 1
            if self.set_refs[name] == 0:          # peers sets are shared by slots with the same peers
                del self.set_refs[name]
                self.desired.sets.pop(name, None)
                self.desired.elements.pop(name, None)
                self.dirty_sets.add(name)
        self._update_unknown()

    def on_pod(self, key: str, obj: dict | None) -> None:
        old = self.pods.get(key)
        new = pod_info(obj) if obj is not None else None
        if old == new:
            return
        self.changes += 1
        was_pending = key in self.pending
        if new is None:
            self.pods.pop(key, None)
            self.pods_by_ns.get(old.namespace, set()).discard(key)
        else:
            self.pods[key] = new
            self.pods_by_ns.setdefault(new.namespace, set()).add(key)
        ns = (new or old).namespace
        relevant = set(self.policies_by_ns.get(ns, ())) | self.cluster_wide | set(self.contrib.get(key, ()))
        for pkey in relevant:
            cp = self.policies.get(pkey)
            elems = cp.pod_elements(new, self.ns_labels.get(ns, {}), self._local(new)) \
                if cp is not None and new is not None else frozenset()
            self._contribute(key, pkey, elems)
        if new is None:
            self.contrib.pop(key, None)
        self._assign(key)
        if was_pending or key in self.pending:
            self._update_unknown()

    def on_namespace(self, name: str, obj: dict | None) -> None:
        labels = dict(((obj or {}).get("metadata") or {}).get("labels") or {}) if obj is not None else {}
        if obj is None:
            self.ns_labels.pop(name, None)
        elif self.ns_labels.get(name) == labels:
            return
        else:
            self.ns_labels[name] = labels
        self.changes += 1
        for pk in list(self.pods_by_ns.get(name, ())):
            pod = self.pods[pk]
            for pkey in self.cluster_wide:
                self._contribute(pk, pkey, self.policies[pkey].pod_elements(pod, labels, self._local(pod)))

    # ------------------------------------------------------------------------------------------ tracking
    def _namespaces_of(self, cp: CompiledPolicy | None) -> set[str]:
        """Namespaces whose pods may contribute to ``cp``'s sets ("*": all)."""
        if cp is None:
            return set()
        if not cp.cluster_wide:
            return {cp.namespace}
        if any(s.direction == EGRESS and s.any_peer and s.named for s in cp.slots):
            return {"*"}
        selectors = [p.ns for s in cp.slots for p in s.peers if p.ns is not None]
        return {cp.namespace} | {n for n, labels in self.ns_labels.items() if any(sel(labels) for sel in selectors)}

    def _local(self, pod: PodInfo | None) -> bool:
        return pod is not None and pod.node == self.node.name

    def _is_pending(self, pod: PodInfo) -> bool:
        return self._local(pod) and pod.active and not pod.ip

    def _contribute(self, owner: str, pkey: str, elems: frozenset[Element]) -> None:
        """Replace what ``owner`` (a pod, or a policy's static part) contributes for policy ``pkey``."""
        per = self.contrib.setdefault(owner, {})
        old = per.get(pkey, frozenset())
        if old == elems:
            return
        if elems:
            per[pkey] = elems
        else:
            per.pop(pkey, None)
        for e in old - elems:
            n = self.refs.get(e, 0) - 1
            if n <= 0:
                self.refs.pop(e, None)
                set_elems = self.desired.elements.get(e[0])
                if set_elems is not None:
                    set_elems.pop(e[1], None)
                self.dirty_elems.setdefault(e[0], set()).add(e[1])
            else:
                self.refs[e] = n
        for e in elems - old:
            n = self.refs.get(e, 0)
            self.refs[e] = n + 1
            if n == 0 and e[0] in self.desired.elements:
                self.desired.elements[e[0]][e[1]] = None
                self.dirty_elems.setdefault(e[0], set()).add(e[1])
        if not per:
            self.contrib.pop(owner, None)

    def _assign(self, key: str, changed: tuple[CompiledPolicy | None, CompiledPolicy | None] | None = None) -> None:
        """The local pod's entries in ingress-pods/egress-pods (and the refs of its shared chains); ``changed`` =
        (old, new) of the one policy that changed, when only that one needs evaluating."""
        pod = self.pods.get(key)
        new = None
        old = self.assigned.get(key)
        if pod is not None and self._local(pod) and pod.enforceable:
            if changed is not None and old is not None and old[0] == pod.ip:
                was, now = changed
                drop = {was.pid} if was is not None else set()
                sets = [set(old[1]) - drop, set(old[2]) - drop]
                if now is not None and now.selects(pod):
                    for i, direction in enumerate((INGRESS, EGRESS)):
                        if direction in now.types:
                            sets[i].add(now.pid)
                new = (pod.ip, frozenset(sets[0]), frozenset(sets[1]))
            else:
                pols = [self.policies[k] for k in self.policies_by_ns.get(pod.namespace, ())
                        if self.policies[k].selects(pod)]
                new = (pod.ip, frozenset(cp.pid for cp in pols if INGRESS in cp.types),
                       frozenset(cp.pid for cp in pols if EGRESS in cp.types))
        if pod is not None and self._is_pending(pod):
            self.pending.add(key)
        else:
            self.pending.discard(key)
        if old == new:
            return
        if old is not None:
            ip = old[0]
            for direction, pids in ((INGRESS, old[1]), (EGRESS, old[2])):
                if pids:
                    self._unref_chain(set_chain_name(direction, pids))
            if self.ip_owner.get(ip) == key:
                del self.ip_owner[ip]
                for m in PODS_MAPS.values():
                    self.desired.elements[m].pop(ip, None)
                    self.dirty_elems.setdefault(m, set()).add(ip)
            del self.assigned[key]
        if new is not None:
            ip = new[0]
            for direction, pids in ((INGRESS, new[1]), (EGRESS, new[2])):
                if pids:
                    self._ref_chain(direction, pids)
                self.desired.elements[PODS_MAPS[direction]][ip] = pod_verdict(direction, pids)
                self.dirty_elems.setdefault(PODS_MAPS[direction], set()).add(ip)
            self.ip_owner[ip] = key
            self.assigned[key] = new

    def _ref_chain(self, direction: str, pids: frozenset[str]) -> None:
        name = set_chain_name(direction, pids)
        n = self.chain_refs.get(name, 0)
        self.chain_refs[name] = n + 1
        if n == 0:
            self.chain_pids[name] = (direction, pids)
            for pid in pids:
                self.pid_chains.setdefault(pid, set()).add(name)
            self._set_chain(name, direction, pids)

    def _unref_chain(self, name: str) -> None:
        n = self.chain_refs.get(name, 0) - 1
        if n > 0:
            self.chain_refs[name] = n
            return
        self.chain_refs.pop(name, None)
        for pid in self.chain_pids.pop(name, ("", frozenset()))[1]:
            self.pid_chains.get(pid, set()).discard(name)
        self.desired.chains.pop(name, None)
        self.dirty_chains.add(name)

    def _set_chain(self, name: str, direction: str, pids: frozenset[str]) -> None:
        rules = set_chain_rules(direction, (self.by_pid[p] for p in pids if p in self.by_pid))
        if self.desired.chains.get(name) != rules:
            self.desired.chains[name] = rules
            self.dirty_chains.add(name)

    def _update_unknown(self) -> None:
        """ingress-unknown/egress-unknown: reject while a pending local pod is isolated in that direction."""
        for direction in (INGRESS, EGRESS):
            isolated = any(direction in self.policies[k].types and self.policies[k].selects(self.pods[pk])
                           for pk in self.pending for k in self.policies_by_ns.get(self.pods[pk].namespace, ()))
            rules = unknown_rules(isolated)
            if self.desired.chains.get(UNKNOWN[direction]) != rules:
                self.desired.chains[UNKNOWN[direction]] = rules
                self.dirty_chains.add(UNKNOWN[direction])

    # ------------------------------------------------------------------------------------------ syncing
    def pending_changes(self) -> bool:
        return bool(self.dirty_elems or self.dirty_chains or self.dirty_sets or self.force_full)

    def sync(self) -> SyncResult:
        """Apply pending changes: a full sync first (or after a failure / every full_sync_period), else partial."""
        if self.force_full or self.applied is None or time.monotonic() - self.last_full > self.full_sync_period:
            return self.full_sync()
        t0 = time.perf_counter()
        tx = self._partial_transaction()
        if not tx.ops:
            self._clear_dirty()
            return SyncResult("noop")
        try:
            self.nft.run(tx)
        except nft.NftError as exc:
            log.warning("partial sync failed (%s); next sync recreates the table", exc)
            self.force_full = True
            return SyncResult("failed", len(tx), time.perf_counter() - t0, str(exc))
        self._commit_dirty()
        return SyncResult("partial", len(tx), time.perf_counter() - t0)

    def full_sync(self) -> SyncResult:
        """Delete and recreate the table from the desired state (one transaction)."""
        t0 = time.perf_counter()
        tx = full_transaction(self.desired, recreate=True)
        try:
            self.nft.run(tx)
        except nft.NftError as exc:
            log.warning("full sync failed: %s", exc)
            self.force_full = True
            return SyncResult("failed", len(tx), time.perf_counter() - t0, str(exc))
        self.applied = copy.deepcopy(self.desired)
        self._clear_dirty()
        self.force_full = False
        self.last_full = time.monotonic()
        return SyncResult("full", len(tx), time.perf_counter() - t0)

    def expected_chains(self) -> set[str]:
        return set((self.applied or self.desired).chains)

    def drifted(self) -> bool:
        """Whether the live table lacks chains we applied (someone deleted them); cheap: lists chain names only."""
        live = self.nft.chain_names(FAMILY, self.node.table)
        return live is None or not self.expected_chains() <= live

    def _clear_dirty(self) -> None:
        self.dirty_elems, self.dirty_chains, self.dirty_sets = {}, set(), set()

    def _partial_transaction(self) -> nft.Transaction:
        d, a = self.desired, self.applied
        assert a is not None
        tx = nft.Transaction(FAMILY, d.table)
        new_sets = [n for n in sorted(self.dirty_sets) if n in d.sets and n not in a.sets]
        gone_sets = [n for n in sorted(self.dirty_sets) if n not in d.sets and n in a.sets]
        for n in new_sets:
            tx.add(d.sets[n])
        new_chains = [c for c in sorted(self.dirty_chains) if c in d.chains and c not in a.chains]
        gone_chains = [c for c in sorted(self.dirty_chains) if c not in d.chains and c in a.chains]
        for c in new_chains:
            tx.add(chain_object(c))
        for c in sorted(self.dirty_chains):
            if c in d.chains and d.chains[c] != a.chains.get(c):
                if c in a.chains:
                    tx.flush(nft.Chain(c))
                for r in d.chains[c]:
                    tx.add(nft.Rule(c, r))
        adds: list[tuple[str, list[tuple[str, str | None]]]] = []
        for s, keys in sorted(self.dirty_elems.items()):
            if s not in d.sets:
                continue
            want, have = d.elements.get(s, {}), a.elements.get(s, {}) if s in a.sets else {}
            dels = [k for k in keys if k in have and (k not in want or want[k] != have[k])]
            add = [(k, want[k]) for k in keys if k in want and (k not in have or want[k] != have[k])]
            for k in sorted(dels):
                tx.delete(nft.Element(s, k))
            if add:
                adds.append((s, sorted(add)))
        for s, items in adds:
            tx.add(nft.Elements(s, items))
        for c in gone_chains:
            tx.flush(nft.Chain(c))
        for c in gone_chains:
            tx.delete(nft.Chain(c))
        for n in gone_sets:
            tx.delete(a.sets[n])
        return tx

    def _commit_dirty(self) -> None:
        d, a = self.desired, self.applied
        assert a is not None
        for n in self.dirty_sets:
            if n in d.sets:
                a.sets[n] = d.sets[n]
                a.elements.setdefault(n, {})
            else:
                a.sets.pop(n, None)
                a.elements.pop(n, None)
        for c in self.dirty_chains:
            if c in d.chains:
                a.chains[c] = list(d.chains[c])
            else:
                a.chains.pop(c, None)
        for s, keys in self.dirty_elems.items():
            if s not in d.sets:
                continue
            want, have = d.elements.get(s, {}), a.elements.setdefault(s, {})
            for k in keys:
                if k in want:
                    have[k] = want[k]
                else:
                    have.pop(k, None)
        self._clear_dirty()

    # ------------------------------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        return self.desired.counts()
