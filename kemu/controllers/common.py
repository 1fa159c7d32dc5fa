"""What the workload controllers share: shared informers, owner references, pods from templates, expectations,
and the controller skeleton (informer handlers → WorkQueue → level-triggered `sync(key)`)."""
from __future__ import annotations

import copy
import logging
import random
import threading
import time
from typing import Callable, Iterable

from kemu.api.timeutil import now_rfc3339, parse_time
from kemu.client import Client
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.controllers.queue import WorkQueue

log = logging.getLogger(__name__)
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # k8s.io/apimachinery/pkg/util/rand: no vowels, no 0/1/3
API_VERSIONS = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1",
                "CronJob": "batch/v1", "Pod": "v1"}


class SharedInformers:
    """One informer per kind for all controllers of the process (client-go's SharedInformerFactory)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[str, Informer] = {}

    def get(self, kind: str) -> Informer:
        if kind not in self._informers:
            self._informers[kind] = Informer(self.client, kind)
        return self._informers[kind]

    def start(self, timeout: float = 10) -> None:
        for inf in self._informers.values():
            if inf._thread is None:
                inf.start()
        for inf in self._informers.values():
            inf.synced.wait(timeout)


# ---- object helpers ----------------------------------------------------------------------------------------------
def key_of(obj: dict) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def controller_ref(obj: dict) -> dict | None:
    """The ownerReference with controller: true, if any."""
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def owner_reference(owner: dict) -> dict:
    return {"apiVersion": API_VERSIONS.get(owner["kind"], owner.get("apiVersion", "v1")), "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": True,
            "blockOwnerDeletion": True}


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(SAFE_ALPHABET) for _ in range(n))


def pod_from_template(owner: dict, template: dict, name: str, labels: dict | None = None,
                      node_name: str | None = None) -> dict:
    """A Pod made from a controller's template, owned by `owner`."""
    meta = copy.deepcopy(template.get("metadata") or {})
    meta = {k: v for k, v in meta.items() if k in ("labels", "annotations")}
    meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
    meta.update(name=name, namespace=owner["metadata"]["namespace"], ownerReferences=[owner_reference(owner)])
    spec = copy.deepcopy(template["spec"])
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def pod_ready_since(pod: dict) -> float | None:
    """When the pod became Ready (None when it is not Ready)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready" and c["status"] == "True":
            return parse_time(c.get("lastTransitionTime")) or 0.0
    return None


def pod_active(pod: dict) -> bool:
    """Counted by controllers: not terminating and not finished (upstream's FilterActivePods)."""
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def pod_available(pod: dict, min_ready_seconds: int, now: float | None = None) -> bool:
    since = pod_ready_since(pod)
    return since is not None and (min_ready_seconds <= 0 or since + min_ready_seconds <= (now or time.time()))


def delete_pod(client: Client, pod: dict) -> None:
    """Delete as the API server does: a bound pod gets deletionTimestamp and its kubelet stops it gracefully."""
    meta = pod["metadata"]
    if not pod["spec"].get("nodeName"):
        client.delete("Pod", meta["namespace"], meta["name"])
        return

    def mark(live: dict) -> bool | None:
        if live["metadata"]["uid"] != meta["uid"] or live["metadata"].get("deletionTimestamp"):
            return False
        live["metadata"]["deletionTimestamp"] = now_rfc3339()
        live["metadata"]["deletionGracePeriodSeconds"] = live["spec"].get("terminationGracePeriodSeconds", 30)
        return None
    client.mutate("Pod", meta["namespace"], meta["name"], mark)


class Expectations:
    """Creations/deletions a controller made and its informer has not seen yet (client-go's expectations), so a
    sync does not act twice on a stale cache."""

    TTL = 5.0

    def __init__(self) -> None:
        self._pending: dict[str, tuple[set[str], set[str], float]] = {}
        self._lock = threading.Lock()

    def expect(self, key: str, created: set[str] = frozenset(), deleted: set[str] = frozenset()) -> None:
        with self._lock:
            c, d, _ = self._pending.get(key, (set(), set(), 0.0))
            self._pending[key] = (c | set(created), d | set(deleted), time.monotonic() + self.TTL)

    def satisfied(self, key: str, pods: list[dict]) -> bool:
        """True when every expected creation is in the cache and every expected deletion is observed there (the
        pod is gone or has its deletionTimestamp, as upstream's DeletionObserved)."""
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                return True
            created, deleted, deadline = entry
            names = {p["metadata"]["name"] for p in pods}
            live = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
            if (created <= names and not (deleted & live)) or time.monotonic() > deadline:
                del self._pending[key]
                return True
            log.debug("%s: waiting to observe creations %s, deletions %s", key, created - names, deleted & live)
            return False

    def forget(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def remaining(self, key: str) -> float:
        with self._lock:
            entry = self._pending.get(key)
            return max(entry[2] - time.monotonic(), 0.0) if entry else 0.0


class Controller:
    """Skeleton: subclasses set KIND, call `watch_owned(kind)` for what they own, and implement sync(key)."""

    KIND = ""

    def __init__(self, client: Client, informers: SharedInformers, name: str) -> None:
        self.client = client
        self.informers = informers
        self.events = EventRecorder(client, name)
        self.queue = WorkQueue(name, self.sync, self._sync_failed)
        self.expectations = Expectations()
        self.create_errors: dict[str, str] = {}     # key -> the last pod creation error (ReplicaFailure)
        self.own = informers.get(self.KIND)
        self.own.handlers.append(self._on_own)

    def _on_own(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is None:   # a new object of the same name must not inherit our expectations
            self.expectations.forget(key_of(old))
        self.queue.add(key_of(new or old))

    def watch_owned(self, kind: str, extra: Callable[[dict], None] | None = None) -> Informer:
        """Enqueue the controlling owner (of our kind) of every changed object of `kind`."""
        inf = self.informers.get(kind)

        def handler(key: str, old: dict | None, new: dict | None) -> None:
            for obj in (old, new):
                if obj is None:
                    continue
                ref = controller_ref(obj)
                if ref and ref.get("kind") == self.KIND:
                    self.queue.add(f"{obj['metadata']['namespace']}/{ref['name']}")
                elif extra:
                    extra(obj)
        inf.handlers.append(handler)
        return inf

    def start(self) -> None:
        self.queue.start()
        for obj in self.own.items():
            self.queue.add(key_of(obj))

    def enqueue_after(self, key: str, delay: float) -> None:
        timer = threading.Timer(max(delay, 0.05), self.queue.add, args=(key,))
        timer.daemon = True
        timer.start()

    def create_pods(self, owner: dict, key: str, pods: Iterable[dict], stop_on_error: bool = True) -> set[str]:
        """Create `pods` for `owner` with upstream's events (SuccessfulCreate / FailedCreate); a failure retries
        the owner's sync in a second (and stops the batch unless `stop_on_error` is False). Returns the names
        created, for the owner's expectations."""
        created: set[str] = set()
        for pod in pods:
            try:
                self.client.create(pod)
            except Exception as exc:   # a name clash or a store hiccup: the next sync tries again
                log.warning("creating pod for %s failed: %s", key, exc)
                self.events.record(owner, "Warning", "FailedCreate", f"Error creating: {exc}")
                self.create_errors[key] = str(exc)
                self.enqueue_after(key, 1.0)
                if stop_on_error:
                    break
                continue
            created.add(pod["metadata"]["name"])
            self.create_errors.pop(key, None)
            self.events.record(owner, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return created

    def _sync_failed(self, key: str, exc: Exception) -> None:
        """A sync of `key` raised: a Warning event on the object (the queue retries it with back-off)."""
        obj = self.get_own(key)
        if obj is not None:
            self.events.record(obj, "Warning", "FailedSync", f"Error syncing {self.KIND.lower()}: {exc}")

    def get_own(self, key: str) -> dict | None:
        ns, name = key.split("/", 1)
        return self.own.cache.get(f"/registry/{self.own.kind.plural}/{ns}/{name}")

    def may_adopt(self, owner: dict) -> bool:
        """Re-read the owner before adopting: a stale cache must not adopt for an owner being deleted
        (upstream's RecheckDeletionTimestamp)."""
        meta = owner["metadata"]
        live = self.client.get(self.KIND, meta["namespace"], meta["name"])
        return live is not None and live["metadata"]["uid"] == meta["uid"] and \
            not live["metadata"].get("deletionTimestamp")

    def owned(self, informer: Informer, owner: dict) -> list[dict]:
        uid, ns = owner["metadata"]["uid"], owner["metadata"]["namespace"]
        return [o for o in informer.items() if o["metadata"]["namespace"] == ns
                and (controller_ref(o) or {}).get("uid") == uid]

    def sync(self, key: str) -> None:
        raise NotImplementedError

    def update_status(self, obj: dict, status: dict) -> None:
        """Write status if it changed (status is the controller's; the spec is the user's)."""
        if obj.get("status") == status:
            return
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]

        def mutate(live: dict) -> bool | None:
            if live["metadata"]["uid"] != obj["metadata"]["uid"]:
                return False
            live["status"] = status
            return None
        self.client.mutate(self.KIND, ns, name, mutate)
