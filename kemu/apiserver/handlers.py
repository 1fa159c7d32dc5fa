"""The REST verbs on resources: get, list, watch, create, update, patch, delete, and the `status` and `scale`
subresources. Every write goes through `kemu.client.Client` (validation, defaults, allocation); this module only
translates HTTP to Client calls and Client's exceptions to metav1.Status answers."""
from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import time

from aiohttp import web

from kemu.api.kinds import KINDS, Kind
from kemu.api.meta import ManifestError
from kemu.api.selectors import parse_selector
from kemu.apiserver import bodies
from kemu.apiserver import patch as patches
from kemu.apiserver import eviction, hpaversions, metrics, reviews, streams
from kemu.apiserver.admission import admit_pod
from kemu.apiserver.auth import AUTH, USER, authorize
from kemu.apiserver.crd import convert, convert_answer, custom_scale, with_replicas
from kemu.apiserver.dryrun import DryRunStore
from kemu.apiserver.errors import (
    APIError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    method_not_allowed,
    namespace_not_found,
    not_found,
)
from kemu.apiserver.fields import parse_field_selector
from kemu.apiserver.rbac import Attributes
from kemu.apiserver.resources import Target, has_subresource, resolve
from kemu.apiserver.watch import WatchHub, bookmark, encode_event, expired, translate
from kemu.client import AlreadyExists, Client, Conflict, Invalid, NamespaceNotFound, NotFound
from kemu.client.quota import Forbidden
from kemu.client.resourcemetrics import METRICS_KINDS
from kemu.store import Compacted, Store

GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"     # apimachinery's SimpleNameGenerator alphabet
DEFAULT_WATCH_TIMEOUT = 1800.0
PATCH_RETRIES = 5
VERB_OF = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
POD_ACTIONS = {"log": streams.log, "exec": streams.exec_, "attach": streams.attach,
               "portforward": streams.portforward, "eviction": eviction.evict}
CONNECT = ("exec", "attach", "portforward")


def _admission_error(exc: Exception, kind: Kind, name: str, namespace: str | None) -> APIError:
    """Client's refusal as the kube-apiserver words it."""
    if isinstance(exc, AlreadyExists):
        return already_exists(kind, name)
    if isinstance(exc, Forbidden):      # LimitRanger / ResourceQuota admission
        return APIError(403, str(exc), "Forbidden", {"name": name, "kind": kind.plural})
    if isinstance(exc, NamespaceNotFound):
        return namespace_not_found(namespace or "")
    if isinstance(exc, Invalid):
        return invalid(kind, name, exc.problems)
    if isinstance(exc, Conflict):
        why = str(exc).partition("Operation cannot be fulfilled on ")[2].partition(": ")[2]
        return conflict(kind, name, why) if why else conflict(kind, name)
    if isinstance(exc, NotFound):
        return not_found(kind, name)
    message = re.sub(r"^(-|api): ", "", str(exc))
    message = re.sub(r"^[a-z.]+/(?:[a-z0-9-]+/)?[a-z0-9.-]+: ", "", message)
    if "Request entity too large" in message:
        return bodies.too_large()
    if "request is too large" in message:
        return APIError(500, message.partition(" (")[0], "InternalError")
    field, _, detail = message.partition(": ")
    return invalid(kind, name, [(field, detail)] if detail and " " not in field else [("", message)])


def _selector_string(selector: dict | None) -> str:
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op = e.get("operator", "")
        parts.append({"Exists": e["key"], "DoesNotExist": f"!{e['key']}"}.get(
            op, f"{e['key']} {op.lower()} ({','.join(sorted(e.get('values') or []))})"))
    return ",".join(parts)


def scale_of(obj: dict) -> dict:
    """The autoscaling/v1 Scale of a Deployment, a ReplicaSet or a custom object (its CRD's scale paths)."""
    meta = obj["metadata"]
    custom = KINDS[obj["kind"]].custom
    if custom is not None:
        spec, status, selector = custom_scale(obj, custom)
    else:
        spec, status = obj["spec"].get("replicas", 1), (obj.get("status") or {}).get("replicas", 0)
        selector = _selector_string(obj["spec"].get("selector"))
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec}, "status": {"replicas": status, "selector": selector}}


class ResourceAPI:
    """aiohttp handlers for `/api/v1/...` and `/apis/<group>/<version>/...`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.client = Client(store)
        self.hub: WatchHub | None = None        # started with the first watch (it needs the running loop)

    def _client(self, request: web.Request) -> Client:
        dry = request.query.getall("dryRun", [])
        if dry and dry != ["All"]:
            raise bad_request(f'unsupported dry run value {dry[0]!r}; use "All"')
        return Client(DryRunStore(self.store)) if dry else self.client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        target = resolve(info.get("group", ""), info.get("version", "v1"), info["tail"])
        if target.api_version == hpaversions.V1 and target.kind.name == "HorizontalPodAutoscaler":
            return await hpaversions.handle(self, request, target)     # converted to the stored v2
        response = await self._handle(request, target)
        if target.kind.custom and target.api_version != target.kind.api_version and \
                isinstance(response, web.Response) and response.body:    # served at a non-storage version
            answer = convert_answer(json.loads(response.body), target.api_version)
            warning = response.headers.get("Warning")
            response = web.Response(status=response.status, body=json.dumps(answer, separators=(",", ":")).encode(),
                                    content_type="application/json", headers={"Warning": warning} if warning else None)
        return response

    async def _handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        verb = VERB_OF.get(method, "")
        if method == "GET" and not target.name:
            verb = "watch" if request.query.get("watch") in ("1", "true") else "list"
        if method == "DELETE" and not target.name:
            verb = "deletecollection"
        pod_action = POD_ACTIONS.get(target.subresource) if target.kind.name == "Pod" and target.name else None
        if target.subresource in CONNECT:
            verb = "create"     # a WebSocket GET needs create too, as upstream (AuthorizePodWebsocketUpgrade...)
        group, version = target.kind.group, target.kind.api_version.rpartition("/")[2]
        namespace = target.name if target.kind.name == "Namespace" and target.name else target.namespace or ""
        authorize(request, Attributes(request[USER], verb, True, group, version, target.kind.plural,
                                      target.subresource, namespace, target.name))
        if pod_action is not None:
            return await pod_action(request, self, target)
        if target.kind.name in METRICS_KINDS:          # metrics.k8s.io: scraped from node agents
            return await metrics.serve(request, self, target)
        if target.kind.name in reviews.REVIEW_KINDS or (target.kind.name, target.subresource) == \
                ("ServiceAccount", "token"):
            return await self.review(request, target)
        if target.subresource and not has_subresource(target.kind, target.api_version, target.subresource):
            raise APIError(404, "the server could not find the requested resource", "NotFound")
        if target.subresource and method in ("POST", "DELETE"):
            raise method_not_allowed()
        if verb == "watch":
            return await self.watch(request, target)
        if verb == "list":
            return self.list(request, target)
        if verb == "deletecollection":
            return await self.delete_collection(request, target)
        if method == "POST":
            if target.name:
                raise method_not_allowed()
            return await self.create(request, target)
        if method == "GET":
            return self.get(request, target)
        if method == "PUT":
            return await self.replace(request, target)
        if method == "PATCH":
            return await self.patch(request, target)
        if method == "DELETE":
            return await self.delete(request, target)
        raise method_not_allowed()

    # ---- reads -------------------------------------------------------------------------------------------------
    def _live(self, target: Target) -> dict:
        obj = self.client.get(target.kind, target.namespace, target.name)
        if obj is None:
            raise not_found(target.kind, target.name)
        return obj

    def get(self, request: web.Request, target: Target) -> web.Response:
        obj = self._live(target)
        if target.subresource == "scale":
            return bodies.respond(scale_of(obj))
        if bodies.wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            return bodies.respond(bodies.table(target.kind, [obj], obj["metadata"]["resourceVersion"], include))
        return bodies.respond(obj)

    def _filters(self, request: web.Request, target: Target):
        try:
            labels = parse_selector(request.query.get("labelSelector"))
        except ValueError as exc:
            raise bad_request(f"unable to parse requirement: {exc}") from None
        fields = parse_field_selector(request.query.get("fieldSelector"), target.kind.name)
        return labels, fields

    def list(self, request: web.Request, target: Target) -> web.Response:
        labels, fields = self._filters(request, target)
        if request.query.get("continue"):
            raise APIError(410, "The provided continue parameter is too old to display a consistent list result. "
                                "You can start a new list without the continue parameter.", "Expired")
        items, revision = self.client.list(target.kind, target.namespace, selector=labels, where=fields)
        if bodies.wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            return bodies.respond(bodies.table(target.kind, items, revision, include))
        return bodies.respond(bodies.list_object(target.kind, items, revision))

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Events after `resourceVersion` (or the current state as ADDED first), one JSON line each, flushed."""
        labels, fields = self._filters(request, target)

        def matches(obj: dict) -> bool:
            return labels(obj["metadata"].get("labels") or {}) and (fields is None or fields(obj))
        query = request.query
        kind = target.kind
        initial = query.get("sendInitialEvents") in ("true", "1")
        rv = query.get("resourceVersion", "")
        if initial and query.get("resourceVersionMatch") not in (None, "NotOlderThan"):
            raise bad_request("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise bad_request("timeoutSeconds: must be a number of seconds") from None
        as_table = bodies.wants_table(request)
        include = query.get("includeObject", "Metadata")
        prefix = f"/registry/{kind.registry_path}/" + (f"{target.namespace}/" if target.namespace else "")
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        def encode(event_type: str, obj: dict) -> bytes:
            if as_table and event_type != "ERROR":
                obj = bodies.table(kind, [obj], obj["metadata"].get("resourceVersion", ""), include)
            elif kind.custom and event_type != "ERROR":
                obj = convert(obj, target.api_version)
            return encode_event(event_type, obj)
        initial_rev = None
        if initial or rv in ("", "0"):
            items, initial_rev = self.client.list(kind, target.namespace, selector=labels, where=fields)
            start = initial_rev + 1
            if items:
                await response.write(b"".join(encode("ADDED", o) for o in items))
            if initial:
                await response.write(bookmark(kind.api_version, kind.name, initial_rev, initial_end=True))
        else:
            try:
                start = int(rv) + 1
            except ValueError:
                raise bad_request(f'invalid resource version: "{rv}"') from None
        if self.hub is None:
            self.hub = WatchHub(self.store)
        try:
            events = await self.hub.subscribe(prefix, start)
        except Compacted as exc:
            await response.write(encode_event("ERROR", expired(start - 1, str(exc))))
            return response
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch = await asyncio.wait_for(events.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if isinstance(batch, Compacted):
                    await response.write(encode_event("ERROR", expired(start - 1, str(batch))))
                    break
                if isinstance(batch, Exception):
                    break
                out = []
                for event in batch:
                    seen = translate(event, matches)
                    if seen:
                        out.append(encode(*seen))
                if out:
                    await response.write(b"".join(out))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            events.close()
        return response

    # ---- writes ------------------------------------------------------------------------------------------------
    async def review(self, request: web.Request, target: Target) -> web.Response:
        """POST of a never-stored authn/authz object, or of a TokenRequest (`serviceaccounts/NAME/token`)."""
        if request.method != "POST" or (target.name and target.subresource != "token"):
            raise method_not_allowed()
        obj = bodies.decode(await bodies.read_body(request), request.content_type)
        if not isinstance(obj, dict):
            raise bad_request("Object 'Kind' is missing in the request body")
        if target.subresource == "token":
            return bodies.respond(reviews.token_request(request, target.namespace or "", target.name, obj), 201)
        return bodies.respond(reviews.review(request.app[AUTH], target.kind, obj, request[USER],
                                             target.namespace), 201)

    async def _object_body(self, request: web.Request, target: Target, type_name: str | None = None) -> dict:
        obj = bodies.decode(await bodies.read_body(request), request.content_type)
        if not isinstance(obj, dict):
            raise bad_request("Object 'Kind' is missing in the request body")
        kind = target.kind
        want_kind, want_version = type_name or kind.name, "autoscaling/v1" if type_name == "Scale" else \
            target.api_version or kind.api_version
        if obj.get("kind") not in (None, want_kind):
            raise bad_request(f"the kind in the data ({obj.get('kind')}) does not match the expected kind "
                              f"({want_kind})")
        if obj.get("apiVersion") not in (None, want_version):
            raise bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match the expected "
                              f"API version ({want_version})")
        obj.setdefault("kind", want_kind)
        obj.setdefault("apiVersion", want_version)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata: must be an object")
        if kind.namespaced:
            if meta.get("namespace") not in (None, "", target.namespace):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = target.namespace
        if target.name and meta.get("name") not in (None, target.name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                              f"({target.name})")
        if target.name:
            meta["name"] = target.name
        return obj

    async def create(self, request: web.Request, target: Target) -> web.Response:
        if target.kind.namespaced and not target.namespace:
            raise method_not_allowed()
        obj = await self._object_body(request, target)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choice(GENERATE_CHARS) for _ in range(5))
        warnings = bodies.check_fields(obj, target.kind.name, request.query.get("fieldValidation", ""))
        if target.kind.name == "Pod":
            await admit_pod(self.client, obj)
        try:
            created = self._client(request).create(obj)
        except (ManifestError, Conflict) as exc:
            raise _admission_error(exc, target.kind, meta.get("name", ""), target.namespace) from None
        return bodies.respond(created, 201, warnings)

    def _write(self, client: Client, target: Target, obj: dict, current: dict, expect: int) -> dict:
        """Store `obj` (the whole new object, or its status/scale) if the live object is still at `expect`."""
        if target.subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = obj.get("status") or {}
            new["metadata"]["resourceVersion"] = str(expect)
            return client.update(new)
        if target.subresource == "scale":
            replicas = (obj.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(target.kind, target.name, [("spec.replicas", f"{replicas!r}: must be greater than "
                                                                           "or equal to 0")])
            if target.kind.custom:
                obj = with_replicas(current, target.kind.custom, replicas)
            else:
                obj = copy.deepcopy(current)
                obj["spec"]["replicas"] = replicas
        client.apply([obj], source="api", expect_revision=expect)
        stored = client.get(target.kind, target.namespace, target.name) if client is self.client else None
        return stored or obj

    def _answer(self, target: Target, obj: dict, warnings: list[str]) -> web.Response:
        return bodies.respond(scale_of(obj) if target.subresource == "scale" else obj, 200, warnings)

    async def replace(self, request: web.Request, target: Target) -> web.Response:
        obj = await self._object_body(request, target, "Scale" if target.subresource == "scale" else None)
        type_name = "Scale" if target.subresource == "scale" else target.kind.name
        warnings = bodies.check_fields(obj, type_name, request.query.get("fieldValidation", ""))
        client = self._client(request)
        given = obj["metadata"].get("resourceVersion")
        for _ in range(PATCH_RETRIES):
            current = self._live(target)
            expect = int(given) if given else int(current["metadata"]["resourceVersion"])
            answer = self._try_write(client, target, obj, current, expect, warnings, precondition=bool(given))
            if answer is not None:
                return answer
        raise conflict(target.kind, target.name)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        content_type = request.content_type
        if content_type not in patches.PATCH_TYPES:
            raise APIError(415, f"the body of the request was in an unknown format - accepted media types include: "
                                f"{', '.join(patches.PATCH_TYPES)}", "UnsupportedMediaType")
        if content_type == patches.STRATEGIC_PATCH and target.kind.custom and target.subresource != "scale":
            accepted = ", ".join(t for t in patches.PATCH_TYPES if t != patches.STRATEGIC_PATCH)
            raise APIError(415, f"the body of the request was in an unknown format - accepted media types include: "
                                f"{accepted}", "UnsupportedMediaType")
        body = bodies.decode(await bodies.read_body(request), content_type, (content_type,))
        type_name = "Scale" if target.subresource == "scale" else target.kind.name
        client = self._client(request)
        for _ in range(PATCH_RETRIES):
            current = self.client.get(target.kind, target.namespace, target.name)
            if current is None:
                if content_type == patches.APPLY_PATCH and not target.subresource:
                    return await self._apply_create(request, target, body, client)
                raise not_found(target.kind, target.name)
            view = scale_of(current) if target.subresource == "scale" else current
            try:
                if content_type == patches.JSON_PATCH:
                    patched = patches.json_patch(view, body)
                elif content_type == patches.STRATEGIC_PATCH:
                    patched = patches.strategic_merge_patch(view, body, type_name)
                else:
                    patched = patches.merge_patch(view, body)
            except patches.PatchError as exc:
                raise APIError(422, str(exc), "Invalid") from None
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise bad_request("the patch must leave an object with metadata")
            for field, want in (("name", target.name), ("namespace", target.namespace)):
                if want and patched["metadata"].get(field) != want:
                    raise bad_request(f"metadata.{field}: the patch may not change it")
            warnings = bodies.check_fields(patched, type_name, request.query.get("fieldValidation", ""))
            given = patched["metadata"].get("resourceVersion")
            precondition = given not in (None, view["metadata"].get("resourceVersion"))
            expect = int(given) if precondition else int(current["metadata"]["resourceVersion"])
            answer = self._try_write(client, target, patched, current, expect, warnings, precondition)
            if answer is not None:
                return answer
        raise conflict(target.kind, target.name)

    def _try_write(self, client: Client, target: Target, obj: dict, current: dict, expect: int,
                   warnings: list[str], precondition: bool) -> web.Response | None:
        """One compare-and-swap write (update or patch); None when another writer won and the caller may re-read
        and retry — unless the client named a resourceVersion, which makes the conflict its answer."""
        try:
            return self._answer(target, self._write(client, target, obj, current, expect), warnings)
        except Conflict as exc:
            if precondition:
                raise _admission_error(exc, target.kind, target.name, target.namespace) from None
            return None
        except (ManifestError, NotFound) as exc:
            raise _admission_error(exc, target.kind, target.name, target.namespace) from None

    async def _apply_create(self, request: web.Request, target: Target, body: object, client: Client) \
            -> web.Response:
        """Server-side apply of an object that does not exist yet: a create."""
        if not isinstance(body, dict):
            raise bad_request("the apply patch must be an object")
        body.setdefault("metadata", {})
        body["metadata"].setdefault("name", target.name)
        if target.kind.namespaced:
            body["metadata"].setdefault("namespace", target.namespace)
        warnings = bodies.check_fields(body, target.kind.name, request.query.get("fieldValidation", ""))
        if target.kind.name == "Pod":
            await admit_pod(self.client, body)
        try:
            return bodies.respond(client.create(body), 201, warnings)
        except (ManifestError, Conflict) as exc:
            raise _admission_error(exc, target.kind, target.name, target.namespace) from None

    async def _delete_options(self, request: web.Request) -> dict:
        data = await bodies.read_body(request)
        opts = bodies.decode(data, request.content_type or "application/json") if data.strip() else {}
        if not isinstance(opts, dict):
            raise bad_request("DeleteOptions: must be an object")
        for key in ("propagationPolicy", "gracePeriodSeconds"):
            if key in request.query:
                opts[key] = request.query[key]
        if "dryRun" in request.query:
            opts["dryRun"] = request.query.getall("dryRun")
        return opts

    def _delete_one(self, target: Target, obj: dict, opts: dict) -> dict:
        """Delete `obj` as DeleteOptions say; returns the answer (the object while it terminates, else Status)."""
        kind, meta = target.kind, obj["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(kind, meta["name"], f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                               f"object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(kind, meta["name"], f"Precondition failed: ResourceVersion in precondition: "
                                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                               f"{meta.get('resourceVersion')}")
        done = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], **({"group": kind.group} if kind.group else {}),
                            "kind": kind.plural, "uid": meta.get("uid")}}
        if opts.get("dryRun"):
            return done
        grace = opts.get("gracePeriodSeconds")
        grace = int(grace) if grace not in (None, "") else None
        if kind.name == "Pod" and obj["spec"].get("nodeName") and grace != 0:
            from kemu.api.timeutil import now_rfc3339
            seconds = grace if grace is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)

            def mark(pod: dict) -> bool | None:
                if pod["metadata"].get("uid") != meta.get("uid"):
                    return False
                pod["metadata"].setdefault("deletionTimestamp", now_rfc3339())
                pod["metadata"]["deletionGracePeriodSeconds"] = seconds
                return None
            marked = self.client.mutate("Pod", target.namespace, meta["name"], mark)
            return marked or done
        if opts.get("propagationPolicy") == "Orphan":
            from kemu.controllers.garbagecollector import delete_orphaning
            delete_orphaning(self.client, obj)
        else:       # Background (and Foreground): the garbage collector removes the dependents
            self.client.delete(kind, target.namespace, meta["name"])
        return done

    delete_object = _delete_one     # for pods/eviction

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        opts = await self._delete_options(request)
        self._client(request)       # validates dryRun
        return bodies.respond(self._delete_one(target, self._live(target), opts))

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        opts = await self._delete_options(request)
        labels, fields = self._filters(request, target)
        items, revision = self.client.list(target.kind, target.namespace, selector=labels, where=fields)
        for obj in items:
            one = Target(target.kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            self._delete_one(one, obj, opts)
        return bodies.respond(bodies.list_object(target.kind, items, revision))
