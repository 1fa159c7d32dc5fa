"""The API-server half of kemu: every read and write of cluster objects goes through `Client`.

It validates and defaults before anything is stored, allocates ClusterIPs and NodePorts with compare-and-swap
allocation keys (as the kube-apiserver's allocators do), applies many objects in one transaction, and keeps
`metadata.resourceVersion` equal to the store's mod_revision so updates are optimistic-concurrency safe.
"""
from __future__ import annotations

import copy
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable

from kemu.api.defaults import apply_defaults
from kemu.api.kinds import KINDS, Kind, resolve_kind
from kemu.api.meta import (
    MAX_OBJECT_BYTES,
    MAX_REQUEST_BYTES,
    REGISTRY,
    ManifestError,
    ObjectRef,
    key_for,
    ref_of,
)
from kemu.api.network import CLUSTER_DNS_IP, KUBERNETES_SERVICE_IP, NODEPORT_RANGE, SERVICE_NETWORK
from kemu.api.selectors import Selector
from kemu.api.timeutil import now_rfc3339
from kemu.api.validation import validate
from kemu.client.generation import set_generation
from kemu.store import Compare, Delete, Put, Store
from kemu.store.allocator import REGISTRY_RANGES

SERVICE_IPS = REGISTRY_RANGES + "serviceips/"
NODE_PORTS = REGISTRY_RANGES + "servicenodeports/"
RESERVED_IPS = {str(SERVICE_NETWORK.network_address), KUBERNETES_SERVICE_IP, CLUSTER_DNS_IP,
                str(SERVICE_NETWORK.broadcast_address)}
# fields the kube-apiserver lets `apply` change on a running Pod
POD_MUTABLE_SPEC = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}


class Conflict(Exception):
    """The object changed since it was read (resourceVersion mismatch)."""


class UIDConflict(Conflict, ManifestError):
    """An update or apply named a different metadata.uid than the stored object has (upstream: 409 Conflict,
    a failed precondition): it was written for another incarnation of the object."""


class NotFound(KeyError):
    pass


class Invalid(ManifestError):
    """Validation refused the object; `problems` are kemu.api.validation's (field, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class AlreadyExists(ManifestError):
    """create() of an object that exists."""


class NamespaceNotFound(ManifestError):
    """The object's namespace does not exist."""


def uid_precondition(ref: ObjectRef, given: object, stored: str, source: str = "") -> None:
    """metadata.uid belongs to the server: an update may leave it out or repeat it, never change it."""
    if given not in (None, "", stored):
        where = f"{source}: " if source and source != "-" else ""
        raise UIDConflict(f"{where}Operation cannot be fulfilled on {ref}: Precondition failed: UID in precondition: "
                          f"{given}, UID in object meta: {stored} (leave metadata.uid out; the server sets it)")


def check_size(ref: ObjectRef, encoded: bytes, source: str = "") -> None:
    """etcd refuses a request over --max-request-bytes (1.5 MiB by default); say so before the store does."""
    if len(encoded) > MAX_OBJECT_BYTES:
        where = f"{source}: " if source and source != "-" else ""
        raise ManifestError(f"{where}{ref}: etcdserver: request is too large ({len(encoded)} bytes; an object may "
                            f"have at most {MAX_OBJECT_BYTES}); keep large data out of the object")



def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def decode(value: bytes, mod_revision: int) -> dict:
    obj = json.loads(value)
    obj["metadata"]["resourceVersion"] = str(mod_revision)
    return obj


@dataclass
class ApplyResult:
    ref: ObjectRef
    action: str          # created | configured | unchanged

    def __str__(self) -> str:
        kind = KINDS[self.ref.kind]
        prefix = kind.name.lower() if not kind.group else f"{kind.name.lower()}.{kind.group}"
        return f"{prefix}/{self.ref.name} {self.action}"


class Client:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- reads -------------------------------------------------------------------------------------------------
    def get(self, kind: str | Kind, namespace: str | None, name: str) -> dict | None:
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        kv = self.store.get(key_for(kind, namespace or "default", name))
        return decode(kv.value, kv.mod_revision) if kv else None

    def list(self, kind: str | Kind, namespace: str | None = None, selector: Selector | None = None,
             where: Callable[[dict], bool] | None = None) -> tuple[list[dict], int]:
        """Objects of `kind` (in `namespace`, or all when None) and the revision they were read at."""
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        prefix = key_for(kind, namespace, "") if namespace else f"{REGISTRY}{kind.registry_path}/"
        kvs, rev = self.store.range(prefix)
        items = [decode(kv.value, kv.mod_revision) for kv in kvs]
        if selector:
            items = [o for o in items if selector(o["metadata"].get("labels") or {})]
        if where:
            items = [o for o in items if where(o)]
        return items, rev

    def watch(self, kind: str | Kind, after_revision: int):
        """Changes to `kind`'s objects after `after_revision` (a revision from `list`): an ObjectWatcher
        (kemu.client.watchsource; RestClient.watch is the same over HTTP)."""
        from kemu.client.watchsource import StoreObjectWatcher
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        return StoreObjectWatcher(self.store.watch(f"{REGISTRY}{kind.registry_path}/", after_revision + 1), decode)

    # ---- writes ------------------------------------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        self._admit(obj, "-", 0)
        return self._write([obj], create_only=True)[0]

    def apply(self, objs: Iterable[dict], source: str | list[str] = "-",
              expect_revision: int | None = None) -> list[ApplyResult]:
        """Create or update every object in one transaction; any problem raises ManifestError and stores nothing.
        `source` names where the objects came from (one name, or one per object) for error messages;
        `expect_revision`: the (single) object must exist at that resourceVersion, else Conflict."""
        objs = [copy.deepcopy(o) for o in objs]
        sources = [source] * len(objs) if isinstance(source, str) else list(source)
        seen: dict[ObjectRef, int] = {}
        for i, obj in enumerate(objs):
            self._admit(obj, sources[i], i)
            ref = ref_of(obj)
            if ref in seen:
                raise ManifestError(f"{sources[i]}: {ref}: metadata.name: duplicate object in one apply "
                                    f"(documents {seen[ref] + 1} and {i + 1}); give each a unique name")
            seen[ref] = i
        actions: list[str] = []
        self._write(objs, actions=actions, source=sources[0] if len(set(sources)) == 1 else "apply",
                    expect_revision=expect_revision)
        return [ApplyResult(ref_of(o), a) for o, a in zip(objs, actions)]

    def update(self, obj: dict) -> dict:
        """Replace obj (whole object incl. status) if its resourceVersion is current; raises Conflict."""
        ref = ref_of(obj)
        if KINDS[ref.kind].custom:      # a custom object's status is checked against its schema too
            obj = copy.deepcopy(obj)
            self._admit(obj, "-", 0)
        kv = self.store.get(ref.key)
        if kv is None:
            raise NotFound(str(ref))
        version = str(obj["metadata"].get("resourceVersion") or kv.mod_revision)
        if not version.isdigit():
            raise Invalid(f"{ref}: metadata.resourceVersion: Invalid value: \"{version}\": strconv.ParseUint: "
                          f'parsing "{version}": invalid syntax', [("metadata.resourceVersion", "invalid syntax")])
        expect = int(version)
        stored_uid = json.loads(kv.value)["metadata"].get("uid")
        uid_precondition(ref, obj["metadata"].get("uid"), stored_uid)
        stored = dict(obj, metadata={k: v for k, v in obj["metadata"].items() if k != "resourceVersion"})
        set_generation(json.loads(kv.value), stored)
        if stored_uid:
            stored["metadata"]["uid"] = stored_uid
        check_size(ref, encode(stored))
        result = self.store.txn([Compare(ref.key, expect)], [Put(ref.key, encode(stored))])
        if not result.succeeded:
            raise Conflict(str(ref))
        return decode(encode(stored), result.revisions[ref.key])

    def mutate(self, kind: str, namespace: str | None, name: str, fn: Callable[[dict], bool | None],
               retries: int = 50) -> dict | None:
        """Read-modify-write with retry on conflict. `fn` edits in place; returning False skips the write."""
        for _ in range(retries):
            obj = self.get(kind, namespace, name)
            if obj is None:
                return None
            before = encode(obj)
            if fn(obj) is False or encode(obj) == before:
                return obj
            try:
                return self.update(obj)
            except Conflict:
                continue
            except NotFound:
                return None
        raise Conflict(f"{kind} {namespace}/{name}: too many conflicting writers")

    def delete(self, kind: str | Kind, namespace: str | None, name: str) -> bool:
        """Remove the object now (and release what it had allocated); False if it was not there."""
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        key = key_for(kind, namespace or "default", name)
        for _ in range(50):
            kv = self.store.get(key)
            if kv is None:
                return False
            obj = decode(kv.value, kv.mod_revision)
            if obj["metadata"].get("finalizers"):     # kept, Terminating, until its finalizers are removed
                if obj["metadata"].get("deletionTimestamp"):
                    return True
                obj["metadata"] = dict(_without_rv(obj["metadata"]), deletionTimestamp=now_rfc3339(),
                                       deletionGracePeriodSeconds=0)
                ops = [Put(key, encode(obj))]
            else:
                ops = [Delete(key)] + [Delete(k) for k in _allocation_keys(obj)]
            if self.store.txn([Compare(key, kv.mod_revision)], ops).succeeded:
                return True
        raise Conflict(key)

    # ---- internals ---------------------------------------------------------------------------------------------
    def _admit(self, obj: dict, source: str, index: int) -> None:
        if not isinstance(obj, dict):
            raise ManifestError(f"{source}: document {index + 1}: must be a mapping with apiVersion, kind, metadata")
        try:
            size = len(encode(obj))
        except (TypeError, ValueError) as exc:     # not JSON: a key that is not a string, a value JSON has not
            raise ManifestError(f"{source}: document {index + 1}: cannot be encoded as JSON ({exc}): mapping keys "
                                "must be strings") from None
        if size > MAX_REQUEST_BYTES:
            raise ManifestError(f"{source}: document {index + 1}: Request entity too large: limit is "
                                f"{MAX_REQUEST_BYTES} bytes; split it into smaller objects")
        apply_defaults(obj)
        kind = KINDS.get(obj.get("kind", ""))
        if kind and kind.namespaced and isinstance(obj.get("metadata"), dict):
            obj["metadata"].setdefault("namespace", "default")
        problems = validate(obj)
        if not problems and kind and kind.custom:
            obj["apiVersion"] = kind.api_version    # stored at the storage version (conversion strategy None)
        if problems:
            name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
            what = f"{obj.get('kind', 'document')}/{name}" if name else f"document {index + 1}"
            # one line per problem, each naming the object and the field (nothing is stored)
            raise Invalid("\n".join(f"{source}: {what}: {field}: {message}" if field else
                                    f"{source}: {what}: {message}" for field, message in problems), problems)

    def _write(self, objs: list[dict], create_only: bool = False, actions: list[str] | None = None,
               source: str = "-", expect_revision: int | None = None) -> list[dict]:
        for attempt in range(20):
            compares: list[Compare] = []
            puts: list[Put | Delete] = []
            out: list[dict] = []
            acts: list[str] = []
            taken: set[str] = set()
            for obj in objs:
                ref = ref_of(obj)
                self._check_namespace(ref, objs, source)
                kv = self.store.get(ref.key)
                if kv is not None and create_only:
                    raise AlreadyExists(f"{source}: {ref}: already exists")
                old = decode(kv.value, kv.mod_revision) if kv else None
                if ref.kind == "PersistentVolumeClaim" and old is None:
                    self._storage_class_admission(obj, ref, objs, source)
                if old is None and KINDS[ref.kind].namespaced:    # LimitRanger and ResourceQuota admission
                    quota_ops = self._policy_admission(obj, ref, out)
                    compares.extend(quota_ops[0])
                    puts.extend(quota_ops[1])
                if expect_revision is not None and (kv is None or kv.mod_revision != expect_revision):
                    raise Conflict(str(ref))
                new = self._merge(old, obj, source) if old else self._new(obj)
                set_generation(old, new)
                allocs = self._allocate(new, old, taken)
                compares.append(Compare(ref.key, kv.mod_revision if kv else 0))
                compares.extend(Compare(k, 0) for k in allocs)
                puts.extend(Put(k, ref.key.encode()) for k in allocs)
                if old is not None:
                    released = set(_allocation_keys(old)) - set(_allocation_keys(new))
                    puts.extend(Delete(k) for k in released)
                stored_old = encode({**old, "metadata": _without_rv(old["metadata"])}) if old else None
                encoded = encode(new)
                check_size(ref, encoded, source)
                acts.append("created" if old is None else "unchanged" if encoded == stored_old else "configured")
                if encoded != stored_old:
                    puts.append(Put(ref.key, encoded))
                out.append(new)
            if not puts:
                break
            result = self.store.txn(compares, puts)
            if result.succeeded:
                out = [decode(encode(o), result.revision) for o in out]
                break
            time.sleep(0.005 * (attempt + 1))
        else:
            raise Conflict("apply: the objects kept changing underneath; try again")
        if actions is not None:
            actions.extend(acts)
        return out

    def _check_namespace(self, ref: ObjectRef, batch: list[dict], source: str) -> None:
        if not KINDS[ref.kind].namespaced:
            return
        if any(o.get("kind") == "Namespace" and o["metadata"]["name"] == ref.namespace for o in batch):
            return
        if self.store.get(key_for(KINDS["Namespace"], None, ref.namespace)) is None:
            raise NamespaceNotFound(f'{source}: {ref}: metadata.namespace: namespaces "{ref.namespace}" not found; '
                                "create it first (kind: Namespace)")

    def _storage_class_admission(self, claim: dict, ref: ObjectRef, batch: list[dict], source: str) -> None:
        """A new claim without a class gets the default StorageClass (the DefaultStorageClass admission plugin);
        a class that does not exist is refused, so nothing waits forever for it."""
        spec = claim.setdefault("spec", {})
        classes = {o["metadata"]["name"]: o for o in batch if o.get("kind") == "StorageClass"}
        for kv in self.store.range(f"{REGISTRY}{KINDS['StorageClass'].registry_path}/")[0]:
            sc = json.loads(kv.value)
            classes.setdefault(sc["metadata"]["name"], sc)
        name = spec.get("storageClassName")
        if name is None:
            default = sorted((c for c in classes.values() if (c["metadata"].get("annotations") or {})
                              .get("storageclass.kubernetes.io/is-default-class") == "true"),
                             key=lambda c: c["metadata"].get("creationTimestamp") or "")
            if default:
                spec["storageClassName"] = default[-1]["metadata"]["name"]
        elif name and name not in classes:
            raise Invalid(f'{source}: {ref}: spec.storageClassName: Not found: "{name}": '
                          f'storageclass.storage.k8s.io "{name}" not found',
                          [("spec.storageClassName", f'Not found: "{name}"')])

    def _policy_admission(self, obj: dict, ref: ObjectRef, earlier: list[dict]) -> tuple[list[Compare], list[Put]]:
        """A new object in a namespace: its LimitRanges fill and check a pod's resources; each ResourceQuota that
        tracks it must have room (else Forbidden), and its status.used is raised in the same transaction
        (compare-and-swap on the quota, as upstream's quota admission does)."""
        from kemu.client import quota as policy
        ns = ref.namespace
        if ref.kind == "Pod":
            ranges = [json.loads(kv.value) for kv in self.store.range(key_for(KINDS["LimitRange"], ns, ""))[0]]
            if ranges:
                policy.limit_pod(obj, ranges)
            classes = self.store.range(f"{REGISTRY}{KINDS['PriorityClass'].registry_path}/")[0]
            if classes or obj["spec"].get("priorityClassName"):
                policy.admit_priority(obj, [json.loads(kv.value) for kv in classes])
        quota_kvs = self.store.range(key_for(KINDS["ResourceQuota"], ns, ""))[0]
        if not quota_kvs:
            return [], []
        candidate = self._new(obj)
        usage = policy.object_usage(candidate)
        compares, puts = [], []
        siblings = None
        for kv in quota_kvs:
            quota = json.loads(kv.value)
            hard = quota["spec"].get("hard") or {}
            if not set(hard) & set(usage) and not (ref.kind == "Pod" and set(hard) & set(policy.COMPUTE.values())):
                continue
            if siblings is None:
                siblings = [json.loads(k.value) for k in self.store.range(key_for(KINDS[ref.kind], ns, ""))[0]] + \
                    [o for o in earlier if o["kind"] == ref.kind and o["metadata"].get("namespace") == ns]
            new_used = policy.check_quota(quota, candidate, policy.used(quota, siblings))
            status = dict(quota.get("status") or {}, hard=dict(hard))
            status["used"] = dict(status.get("used") or {}, **policy.used_status(new_used))
            quota["status"] = status
            compares.append(Compare(kv.key.decode() if isinstance(kv.key, bytes) else kv.key, kv.mod_revision))
            puts.append(Put(kv.key.decode() if isinstance(kv.key, bytes) else kv.key, encode(quota)))
        return compares, puts

    @staticmethod
    def _new(obj: dict) -> dict:
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        meta.pop("resourceVersion", None)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):   # set by deletion only (BeforeCreate)
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())              # the server's, whatever the client sent (as upstream)
        meta["creationTimestamp"] = meta.get("creationTimestamp") or now_rfc3339()   # clients send null
        custom = KINDS[new["kind"]].custom
        if custom is not None and custom.storage.status:
            new.pop("status", None)         # create cannot set what the status subresource owns (as upstream)
        return new

    @staticmethod
    def _merge(old: dict, obj: dict, source: str) -> dict:
        """apply onto a live object: user-owned fields from obj, server-owned (uid, status, allocations) kept."""
        uid_precondition(ref_of(obj), obj["metadata"].get("uid"), old["metadata"].get("uid"), source)
        new = copy.deepcopy(old)
        new["metadata"] = _without_rv(new["metadata"])
        for field in ("labels", "annotations"):
            if field in obj["metadata"]:
                new["metadata"][field] = copy.deepcopy(obj["metadata"][field])
            else:
                new["metadata"].pop(field, None)
        custom = KINDS[obj["kind"]].custom
        server_owned = {"metadata", "apiVersion", "kind"} | \
            ({"status"} if custom is None or custom.storage.status else set())
        if custom is not None:      # replaced whole: its status too, unless the status subresource owns it
            for field in set(new) - set(obj) - server_owned:
                del new[field]
        for field, value in obj.items():
            if field in server_owned:
                continue
            if field == "spec" and obj["kind"] == "Pod":
                _check_pod_update(old["spec"], value, source, ref_of(obj))
                merged = copy.deepcopy(old["spec"])
                merged.update({k: v for k, v in value.items() if k in POD_MUTABLE_SPEC})
                new["spec"] = merged
            elif field == "spec" and obj["kind"] == "Service":
                spec = copy.deepcopy(value)
                for keep in ("clusterIP", "clusterIPs"):
                    if keep in old["spec"] and not spec.get(keep):
                        spec[keep] = old["spec"][keep]
                old_ports = {(p.get("port"), p.get("protocol")): p for p in old["spec"].get("ports") or []}
                for port in spec.get("ports") or []:
                    prev = old_ports.get((port.get("port"), port.get("protocol")))
                    if prev and "nodePort" in prev and "nodePort" not in port and spec.get("type") != "ClusterIP":
                        port["nodePort"] = prev["nodePort"]
                new["spec"] = spec
            else:
                new[field] = copy.deepcopy(value)
        if obj["kind"] in ("ConfigMap", "Secret"):
            for field in ("data", "binaryData", "stringData"):
                if field not in obj:
                    new.pop(field, None)
        return new

    def _allocate(self, svc: dict, old: dict | None, taken: set[str]) -> list[str]:
        """Allocation keys `svc` newly needs; fills spec.clusterIP(s) and nodePorts in place."""
        if svc.get("kind") != "Service":
            return []
        spec = svc["spec"]
        keys: list[str] = []
        have = set(_allocation_keys(old)) if old else set()
        if spec["type"] == "ExternalName":
            spec.pop("clusterIP", None)
            return []
        ip = spec.get("clusterIP") or ""
        if ip == "None":
            spec["clusterIPs"] = ["None"]
        else:
            if not ip:
                ip = self._free(SERVICE_IPS, _random_service_ip, taken)
            key = SERVICE_IPS + ip
            if key not in have:
                owner = self.store.get(key)
                if owner is not None or key in taken:
                    raise ManifestError(f"{ref_of(svc)}: spec.clusterIP: {ip} is already allocated; pick another or "
                                        "leave it empty")
                keys.append(key)
                taken.add(key)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        if spec["type"] in ("NodePort", "LoadBalancer"):
            for port in spec["ports"]:
                if not port.get("nodePort"):
                    port["nodePort"] = int(self._free(NODE_PORTS, lambda: str(random.choice(NODEPORT_RANGE)), taken))
                key = NODE_PORTS + f"{port['nodePort']}-{port['protocol']}"
                if key in have:
                    continue
                if self.store.get(key) is not None or key in taken:
                    raise ManifestError(f"{ref_of(svc)}: spec.ports.nodePort: {port['nodePort']} is already "
                                        "allocated; pick another or leave it empty")
                keys.append(key)
                taken.add(key)
        return keys

    def _free(self, prefix: str, pick: Callable[[], str], taken: set[str]) -> str:
        for _ in range(1000):
            value = pick()
            key = prefix + value
            if prefix == NODE_PORTS:
                key += "-"
                if any(k.startswith(key) for k in taken) or self.store.range(key)[0]:
                    continue
                return value
            if key not in taken and self.store.get(key) is None:
                return value
        raise ManifestError(f"range {prefix} is full")


def _random_service_ip() -> str:
    while True:
        ip = str(SERVICE_NETWORK[random.randrange(16, SERVICE_NETWORK.num_addresses - 1)])
        if ip not in RESERVED_IPS:
            return ip


def _allocation_keys(obj: dict | None) -> list[str]:
    if not obj or obj.get("kind") != "Service":
        return []
    spec = obj.get("spec") or {}
    keys = []
    if spec.get("clusterIP") not in (None, "", "None"):
        keys.append(SERVICE_IPS + spec["clusterIP"])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        keys += [NODE_PORTS + f"{p['nodePort']}-{p['protocol']}" for p in spec.get("ports") or [] if p.get("nodePort")]
    return keys


def _without_rv(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "resourceVersion"}


def _check_pod_update(old: dict, new: dict, source: str, ref: ObjectRef) -> None:
    for key in set(old) | set(new):
        if key in POD_MUTABLE_SPEC:
            continue
        if old.get(key) != new.get(key):
            raise ManifestError(f"{source}: {ref}: spec.{key}: Forbidden: pod updates may not change fields other "
                                f"than {', '.join(sorted(POD_MUTABLE_SPEC))}; delete and re-create the pod")

