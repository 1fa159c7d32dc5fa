"""The cluster client over HTTPS: `RestClient` talks to a Kubernetes API server (kemu's, or any) with the interface
kemu's components use on `kemu.client.Client` — get, list, create, update, mutate (conflict retry), delete, apply,
watch — and the same exceptions (NotFound, Conflict, AlreadyExists, Invalid, NamespaceNotFound), so node agents,
proxies and DNS servers run unchanged on a machine that has only an API address and a credential.

Credentials come from a kubeconfig (`RestClient.from_kubeconfig`): the cluster's server and CA, and a client
certificate/key or a bearer token (kubelet's `--kubeconfig`). Only the stdlib: one keep-alive `http.client`
connection per thread; each watch streams on its own connection, read by a thread into a queue.

Upstream semantics followed: a write to an object's `status` goes to the `/status` subresource (a PUT of the
object leaves status alone); `delete` removes at once (`gracePeriodSeconds: 0`, as kubelet's final delete);
a watch is `?watch=1&resourceVersion=RV` with bookmarks, and an ERROR event with code 410 is `Compacted` (the
informer relists). Connection failures are retried for `retry_for` seconds (an API server restart or a cut cable
blocks callers, as the store client does); a keep-alive connection closed by the server is retried at once.
"""
from __future__ import annotations

import base64
import copy
import http.client
import json
import logging
import os
import queue
import random
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import quote, urlencode, urlsplit

import yaml

from kemu.api.kinds import KINDS, Kind, resolve_kind
from kemu.api.meta import ManifestError, ref_of
from kemu.api.selectors import Selector
from kemu.client import AlreadyExists, ApplyResult, Conflict, Invalid, NamespaceNotFound, NotFound, encode
from kemu.client.watchsource import ObjectEvent, object_key
from kemu.store import Compacted

log = logging.getLogger(__name__)
WATCH_TIMEOUT = (240, 480)           # seconds; client-go asks for a random 5-10 minutes, then re-watches
KEEPALIVE = (5, 2, 3)                # TCP keepalive idle, interval, probes: a dead peer noticed in ~11 s


class APIError(RuntimeError):
    """An answer the client has no better exception for (401, 403, 5xx...): the server's Status."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message


class Forbidden(APIError, PermissionError):
    """403: the credential may not do this (RBAC)."""


class Unauthorized(APIError, PermissionError):
    """401: the server does not accept the credential."""


@dataclass
class Credentials:
    """Where the API server is and how to prove who we are (one kubeconfig context)."""
    server: str                       # https://HOST:PORT
    ca_data: bytes = b""              # PEM; empty: the system's trust store
    cert_data: bytes = b""            # client certificate (PEM) ...
    key_data: bytes = b""             # ... and its key
    token: str = ""                   # or a bearer token
    insecure: bool = False            # insecure-skip-tls-verify (never set by kemu)

    def ssl_context(self) -> ssl.SSLContext | None:
        if urlsplit(self.server).scheme != "https":
            return None
        ctx = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_data and self.key_data:
            # ssl loads a key pair from files only: a private temporary file, removed at once
            fd, path = tempfile.mkstemp(prefix="kemu-cred-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(self.cert_data.rstrip(b"\n") + b"\n" + self.key_data)
                ctx.load_cert_chain(path)
            finally:
                os.unlink(path)
        return ctx


def _file_or_data(entry: dict, name: str, base: str) -> bytes:
    """`<name>-data` (base64) or `<name>` (a path, relative to the kubeconfig's directory) of a kubeconfig entry."""
    if entry.get(f"{name}-data"):
        return base64.b64decode(entry[f"{name}-data"])
    if entry.get(name):
        with open(os.path.join(base, os.path.expanduser(entry[name])), "rb") as f:
            return f.read()
    return b""


def load_kubeconfig(path: str, context: str | None = None) -> Credentials:
    """The credentials of `context` (default: current-context) in the kubeconfig at `path`."""
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    base = os.path.dirname(os.path.abspath(path))
    name = context or config.get("current-context")

    def named(section: str, wanted: str | None) -> dict:
        entries = config.get(section) or []
        for entry in entries:
            if entry.get("name") == wanted:
                return entry
        if wanted is None and len(entries) == 1:
            return entries[0]
        raise ValueError(f"{path}: no {section[:-1]} {wanted!r}")
    ctx = named("contexts", name).get("context") or {}
    cluster = named("clusters", ctx.get("cluster")).get("cluster") or {}
    user = named("users", ctx.get("user")).get("user") or {} if ctx.get("user") or config.get("users") else {}
    if not cluster.get("server"):
        raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        with open(os.path.join(base, user["tokenFile"])) as f:
            token = f.read().strip()
    return Credentials(server=cluster["server"].rstrip("/"),
                       ca_data=_file_or_data(cluster, "certificate-authority", base),
                       cert_data=_file_or_data(user, "client-certificate", base),
                       key_data=_file_or_data(user, "client-key", base), token=token,
                       insecure=bool(cluster.get("insecure-skip-tls-verify")))


def api_path(kind: Kind, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
    """`/api/v1/namespaces/NS/pods/NAME/status`, `/apis/apps/v1/deployments`, ..."""
    group_version = kind.api_version
    path = f"/apis/{group_version}" if kind.group else f"/api/{group_version}"
    if kind.namespaced and namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{kind.plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


def _status_of(data: bytes) -> dict:
    try:
        status = json.loads(data)
        return status if isinstance(status, dict) else {}
    except ValueError:
        return {}


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in zip(("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"), KEEPALIVE):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


class RestClient:
    """A cluster client over the Kubernetes REST API; drop-in for `kemu.client.Client` where node components use
    it (no `store` attribute: nothing here reaches around the API)."""

    def __init__(self, credentials: Credentials, timeout: float = 30.0, retry_for: float = 60.0,
                 user_agent: str = "kemu") -> None:
        self.credentials = credentials
        parts = urlsplit(credentials.server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"API server {credentials.server!r}: use https://HOST:PORT")
        self.host, self.port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = credentials.ssl_context()
        self.timeout, self.retry_for = timeout, retry_for
        self.headers = {"Accept": "application/json", "User-Agent": user_agent}
        if credentials.token:
            self.headers["Authorization"] = f"Bearer {credentials.token}"
        self._local = threading.local()

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None, **kwargs) -> "RestClient":
        return cls(load_kubeconfig(path, context), **kwargs)

    def __repr__(self) -> str:
        return f"RestClient({self.credentials.server})"

    # ---- transport ---------------------------------------------------------------------------------------------
    def connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.ssl is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                                                           context=self.ssl)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        _keepalive(conn.sock)
        return conn

    def request(self, method: str, path: str, body: object = None, query: dict | None = None,
                content_type: str = "application/json") -> tuple[int, bytes]:
        """One request on this thread's keep-alive connection; (status, body). Connection failures are retried
        with back-off for `retry_for` seconds; a dropped idle keep-alive connection at once."""
        url = path + ("?" + urlencode(query, doseq=True) if query else "")
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = dict(self.headers, **({"Content-Type": content_type} if data is not None else {}))
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            try:
                if conn is None:
                    conn = self._local.conn = self.connection(self.timeout)
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self._drop()
                if resp.status in (429, 503) and time.monotonic() < deadline:   # busy: come back later
                    time.sleep(float(resp.getheader("Retry-After") or delay))
                    continue
                return resp.status, payload
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if isinstance(exc, ssl.SSLCertVerificationError):
                    raise APIError(0, "TLS", f"{self.credentials.server}: {exc}") from None
                if reused and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                               ConnectionResetError)):
                    continue              # the server closed an idle keep-alive connection: a fresh one
                if time.monotonic() > deadline:
                    raise
                log.warning("%s %s: %s; retrying", method, path, exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _call(self, method: str, path: str, body: object = None, query: dict | None = None,
              ok: tuple[int, ...] = (200, 201)) -> dict:
        status, data = self.request(method, path, body, query)
        if status in ok:
            return json.loads(data) if data else {}
        raise self._error(status, data, body)

    @staticmethod
    def _error(status: int, data: bytes, body: object = None) -> Exception:
        """The Client exception for a failed request's Status."""
        st = _status_of(data)
        reason, message = st.get("reason") or "", st.get("message") or data.decode(errors="replace")[:200]
        if status == 404:
            if (st.get("details") or {}).get("kind") == "namespaces" and isinstance(body, dict) and \
                    (body.get("metadata") or {}).get("namespace") == (st.get("details") or {}).get("name"):
                return NamespaceNotFound(message)
            return NotFound(message)
        if status == 409:
            return AlreadyExists(message) if reason == "AlreadyExists" else Conflict(message)
        if status == 422:
            causes = (st.get("details") or {}).get("causes") or []
            return Invalid(message, [(c.get("field", ""), c.get("message", "")) for c in causes])
        if status == 401:
            return Unauthorized(status, reason or "Unauthorized", message)
        if status == 403:
            return Forbidden(status, reason or "Forbidden", message)
        if status == 400:
            return ManifestError(message)
        return APIError(status, reason, message)

    # ---- reads -------------------------------------------------------------------------------------------------
    def get(self, kind: str | Kind, namespace: str | None, name: str) -> dict | None:
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        status, data = self.request("GET", api_path(kind, namespace or "default", name))
        if status == 404:
            return None
        if status != 200:
            raise self._error(status, data)
        return json.loads(data)

    def list(self, kind: str | Kind, namespace: str | None = None, selector: Selector | None = None,
             where: Callable[[dict], bool] | None = None) -> tuple[list[dict], int]:
        """Objects of `kind` (in `namespace`, or all) and the resourceVersion of the list; `selector` and `where`
        filter here, as on Client (they are Python callables, not selector strings)."""
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        answer = self._call("GET", api_path(kind, namespace))
        items = answer.get("items") or []
        for obj in items:        # list items may leave out kind and apiVersion (upstream does)
            obj.setdefault("kind", kind.name)
            obj.setdefault("apiVersion", kind.api_version)
        if selector:
            items = [o for o in items if selector(o["metadata"].get("labels") or {})]
        if where:
            items = [o for o in items if where(o)]
        return items, int(answer.get("metadata", {}).get("resourceVersion") or 0)

    def watch(self, kind: str | Kind, after_revision: int) -> "RestWatcher":
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        return RestWatcher(self, kind, after_revision)

    # ---- writes ------------------------------------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        kind = KINDS[obj["kind"]]
        meta = obj.get("metadata") or {}
        return self._call("POST", api_path(kind, meta.get("namespace") or "default"), obj)

    def update(self, obj: dict, before: dict | None = None) -> dict:
        """Replace the object if its resourceVersion is current (Conflict otherwise), status included: the
        object through a PUT, its status through the status subresource. `before` (the object as read) lets
        a write skip the part that did not change."""
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        status_sub = kind.custom is None or bool(kind.custom.storage.status)
        rest_changed = before is None or not status_sub or _without_status(before) != _without_status(obj)
        status_changed = status_sub and "status" in obj and (before is None or before.get("status") != obj["status"])
        current = obj
        if rest_changed:
            current = self._call("PUT", api_path(kind, ns, meta["name"]), obj)
            if not status_changed or current.get("status") == obj.get("status"):
                return current
        if status_changed:
            body = dict(obj, metadata=dict(meta, resourceVersion=current["metadata"].get("resourceVersion")))
            return self._call("PUT", api_path(kind, ns, meta["name"], "status"), body)
        return current

    def mutate(self, kind: str, namespace: str | None, name: str, fn: Callable[[dict], bool | None],
               retries: int = 50) -> dict | None:
        """Read-modify-write with retry on conflict. `fn` edits in place; returning False skips the write."""
        for _ in range(retries):
            obj = self.get(kind, namespace, name)
            if obj is None:
                return None
            before = copy.deepcopy(obj)
            if fn(obj) is False or encode(obj) == encode(before):
                return obj
            try:
                return self.update(obj, before)
            except Conflict:
                time.sleep(random.uniform(0, 0.01))
                continue
            except NotFound:
                return None
        raise Conflict(f"{kind} {namespace}/{name}: too many conflicting writers")

    def delete(self, kind: str | Kind, namespace: str | None, name: str) -> bool:
        """Remove the object now (DeleteOptions gracePeriodSeconds 0); False if it was not there."""
        kind = kind if isinstance(kind, Kind) else resolve_kind(kind)
        status, data = self.request("DELETE", api_path(kind, namespace or "default", name),
                                    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                     "propagationPolicy": "Background"})
        if status == 404:
            return False
        if status not in (200, 202):
            raise self._error(status, data)
        return True

    def apply(self, objs: Iterable[dict], source: str | list[str] = "-",
              expect_revision: int | None = None) -> list[ApplyResult]:
        """Create or update each object (one request each: not one transaction, unlike Client.apply);
        `expect_revision`: the (single) object must exist at that resourceVersion, else Conflict."""
        results = []
        for obj in objs:
            obj = copy.deepcopy(obj)
            ref = ref_of(obj)
            kind = KINDS[ref.kind]
            path = api_path(kind, ref.namespace or "default", ref.name)
            live = self.get(kind, ref.namespace, ref.name) if expect_revision is None else None
            if expect_revision is None and live is None:
                try:
                    self.create(obj)
                    results.append(ApplyResult(ref, "created"))
                    continue
                except AlreadyExists:
                    live = self.get(kind, ref.namespace, ref.name)
            if expect_revision is not None:
                obj["metadata"]["resourceVersion"] = str(expect_revision)
            else:
                obj["metadata"].pop("resourceVersion", None)
            stored = self._call("PUT", path, obj)
            same = live is not None and live["metadata"].get("resourceVersion") == \
                stored["metadata"].get("resourceVersion")
            results.append(ApplyResult(ref, "unchanged" if same else "configured"))
        return results


def _without_status(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "status"}


class RestWatcher:
    """`GET ...?watch=1&resourceVersion=RV` read by a thread into a queue; re-watches from the last revision seen
    when the server ends the stream (its timeout) and reports 410 as Compacted, a broken stream as an error."""

    def __init__(self, client: RestClient, kind: Kind, after_revision: int) -> None:
        self.client, self.kind, self.revision = client, kind, after_revision
        self.events: queue.Queue[ObjectEvent | Exception] = queue.Queue()
        self._closed = threading.Event()
        self._failed: Exception | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{kind.plural}", daemon=True)
        self._thread.start()

    def next_batch(self, timeout: float) -> list[ObjectEvent]:
        if self._failed is not None:
            raise self._failed
        try:
            item: ObjectEvent | Exception | None = self.events.get(timeout=timeout)
        except queue.Empty:
            return []
        batch: list[ObjectEvent] = []
        while item is not None:
            if isinstance(item, Exception):
                if batch:                  # deliver what came before; raise on the next call
                    self._failed = item
                    return batch
                raise item
            batch.append(item)
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                item = None
        return batch

    def close(self) -> None:
        self._closed.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        """Watch until closed: a broken connection re-watches from the last revision (with back-off, for up to
        the client's retry_for); anything else goes to the reader (the informer relists)."""
        failing_since, delay = None, 0.05
        while not self._closed.is_set():
            try:
                self._stream()
                failing_since, delay = None, 0.05
            except (OSError, http.client.HTTPException) as exc:
                if self._closed.is_set():
                    return
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.client.retry_for:
                    self.events.put(exc)
                    return
                log.warning("watch %s: %s; re-watching from %d", self.kind.plural, exc, self.revision)
                self._closed.wait(delay)
                delay = min(delay * 2, 2.0)
            except Exception as exc:   # noqa: BLE001 - Compacted, a refusal: handed to the informer
                if not self._closed.is_set():
                    self.events.put(exc)
                return

    def _stream(self) -> None:
        query = {"watch": "1", "resourceVersion": str(self.revision), "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(random.randint(*WATCH_TIMEOUT))}
        path = api_path(self.kind) + "?" + urlencode(query)
        conn = self._conn = self.client.connection(timeout=None)
        try:
            conn.request("GET", path, headers=self.client.headers)
            resp = conn.getresponse()
            if resp.status != 200:
                data = resp.read()
                if resp.status == 410:
                    raise Compacted(_status_of(data).get("message", "expired"))
                raise RestClient._error(resp.status, data)
            while not self._closed.is_set():
                line = resp.readline()
                if not line:
                    return             # the server ended the watch (timeoutSeconds): watch again from here
                if line.strip():
                    self._event(json.loads(line))
        finally:
            self._conn = None
            conn.close()

    def _event(self, event: dict) -> None:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise Compacted(obj.get("message", "expired"))
            raise APIError(obj.get("code") or 500, obj.get("reason") or "", obj.get("message") or str(obj))
        rv = int((obj.get("metadata") or {}).get("resourceVersion") or 0)
        if etype == "BOOKMARK":
            self.revision = max(self.revision, rv)
            return
        obj.setdefault("kind", self.kind.name)
        obj.setdefault("apiVersion", self.kind.api_version)
        self.revision = max(self.revision, rv)
        self.events.put(ObjectEvent("DELETE" if etype == "DELETED" else "PUT", object_key(self.kind, obj),
                                    obj, rv))
