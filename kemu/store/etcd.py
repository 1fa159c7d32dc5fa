"""EtcdStore: the Store interface on a real etcd v3 server, spoken over etcd's JSON gateway (`/v3/kv/*`, `/v3/watch`).

No gRPC stack: one keep-alive HTTP/1.1 connection per thread for unary calls (range, txn, compaction) and one
streaming connection per watch. Endpoints are `http://` and `https://` (TLS, optional client certificate) or a
unix socket (what the CLI uses to reach a lab's etcd without any route into the lab). While etcd is unreachable,
calls retry for up to `retry_timeout` seconds and watches reconnect from their next revision, so a restart of
etcd is a pause, not an error; a compacted start revision raises `Compacted` (informers relist).
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

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
    check_request,
)

log = logging.getLogger(__name__)
API = "/v3"                     # etcd 3.4 serves /v3 (and /v3beta); 3.3 only /v3beta
RETRYABLE_CODES = {4, 14}       # gRPC DEADLINE_EXCEEDED, UNAVAILABLE (no leader, stopping, ...)


class EtcdError(RuntimeError):
    """etcd refused a request (not a connection problem: those are retried)."""


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def prefix_end(prefix: str) -> bytes:
    """etcd's range_end for a prefix: the prefix with its last byte incremented ("\\0" = all keys)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"


@dataclass(frozen=True)
class Endpoint:
    """Where etcd listens: scheme http|https|unix, host:port or socket path, TLS files."""
    scheme: str
    address: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return _UnixConnection(self.address, timeout)
        host, _, port = self.address.rpartition(":")
        if self.scheme == "https":
            return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=self.ssl_context())
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


CERT_ALERTS = ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED")   # TLS alerts (reasons) about a certificate


def tls_rejection(endpoint: Endpoint, exc: BaseException) -> str | None:
    """Why a TLS connection failed for good, or None when retrying may help. An untrusted server certificate fails
    our own handshake; a client certificate etcd rejects (or none given) is reported by a TLS 1.3 server only after
    our handshake, usually as a bare EOF or reset: then one TLS 1.2 handshake, where the server's verdict comes
    before its Finished, tells which it is (it sends no request)."""
    if endpoint.scheme != "https":
        return None
    missing = [f for f in (endpoint.ca, endpoint.cert, endpoint.key) if f and not os.path.isfile(f)]
    if missing:
        return f"etcd at {endpoint}: TLS file {missing[0]} not found"
    try:
        endpoint.ssl_context()
    except (OSError, ssl.SSLError) as bad:      # a missing or unreadable file, a key that is not the cert's, ...
        return f"etcd at {endpoint}: cannot load ca=/cert=/key= ({bad})"
    if not isinstance(exc, (ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        return None
    if not (isinstance(exc, ssl.SSLError) and any(a in (exc.reason or "") for a in CERT_ALERTS)):
        exc = _probe_tls12(endpoint) or exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"etcd at {endpoint}: its server certificate is not trusted ({exc.verify_message}); check ca="
    if isinstance(exc, ssl.SSLError) and any(a in (exc.reason or "") for a in CERT_ALERTS):
        if not endpoint.cert:
            return f"etcd at {endpoint} requires a TLS client certificate ({exc.reason}); add cert= and key="
        return f"etcd at {endpoint} rejected the TLS client certificate {endpoint.cert} ({exc.reason}); " \
               "check cert= and key="
    return None


def _probe_tls12(endpoint: Endpoint) -> ssl.SSLError | None:
    host, _, port = endpoint.address.rpartition(":")
    try:
        ctx = endpoint.ssl_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3.0) as raw:
            ctx.wrap_socket(raw, server_hostname=host.strip("[]")).close()
    except ssl.SSLError as exc:
        return exc
    except OSError:
        return None
    return None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def parse_url(url: str) -> list[Endpoint]:
    """`etcd://H:P[,H:P]`, `etcds://H:P?ca=F&cert=F&key=F` (TLS) or `etcd+unix:///path/to/etcd.sock`."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"ca", "cert", "key"}
    if unknown:
        raise ValueError(f"store URL {url!r}: unknown parameter {sorted(unknown)[0]!r}; use ca, cert, key")
    if parts.scheme == "etcd+unix":
        return [Endpoint("unix", parts.path)]
    scheme = {"etcd": "http", "etcds": "https"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"store URL {url!r}: use etcd://HOST:PORT, etcds://HOST:PORT?ca=&cert=&key= or "
                         "etcd+unix:///PATH")
    return [Endpoint(scheme, a if ":" in a else f"{a}:2379", query.get("ca"), query.get("cert"), query.get("key"))
            for a in parts.netloc.split(",")]


class EtcdStore(Store):
    def __init__(self, url: str, retry_timeout: float = 60.0, request_timeout: float = 3.0) -> None:
        self.url = url
        self.endpoints = parse_url(url)
        self.retry_timeout = retry_timeout
        self.request_timeout = request_timeout
        self._current = 0
        self._local = threading.local()
        self._watchers: weakref.WeakSet[_EtcdWatcher] = weakref.WeakSet()

    # ---- transport ---------------------------------------------------------------------------------------------
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.endpoints[self._current].connect(self.request_timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def call(self, path: str, body: dict) -> dict:
        """POST one JSON request; retries while etcd is unreachable or leaderless, up to retry_timeout."""
        data = json.dumps(body).encode()
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.05
        lost = False
        while True:
            try:
                conn = self._conn()
                conn.request("POST", API + path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = json.loads(resp.read() or b"{}")
                if resp.status == 200:
                    if lost:       # etcd was unreachable: watch streams may be stuck behind TCP backoff
                        for watcher in list(self._watchers):
                            watcher.reconnect()
                    return payload
                code = payload.get("code")
                if "request is too large" in str(payload.get("error") or payload.get("message")):
                    raise RequestTooLarge(f"etcdserver: request is too large ({path})")
                if code not in RETRYABLE_CODES:
                    raise EtcdError(f"etcd {path}: {payload.get('error') or payload.get('message') or resp.status}")
                problem: Exception = EtcdError(payload.get("error") or f"HTTP {resp.status}")
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
                if isinstance(exc, PermissionError):   # a root-only unix socket: waiting cannot help
                    self._drop()
                    raise EtcdError(f"etcd at {self.endpoints[self._current]}: permission denied ({exc.strerror}); "
                                    "its socket is root-only: run as root") from None
                rejected = tls_rejection(self.endpoints[self._current], exc)
                if rejected:           # a TLS configuration error: retrying cannot fix it
                    self._drop()
                    raise EtcdError(rejected) from exc
                problem = exc
                lost = True
                self._drop()
                self._current = (self._current + 1) % len(self.endpoints)
            if time.monotonic() + delay > deadline:
                raise EtcdError(f"etcd at {self.url} unreachable for {self.retry_timeout:.0f}s: {problem}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # ---- Store -------------------------------------------------------------------------------------------------
    @staticmethod
    def _kv(raw: dict) -> KeyValue:
        return KeyValue(_unb64(raw["key"]).decode(), _unb64(raw.get("value")), int(raw.get("create_revision", 0)),
                        int(raw.get("mod_revision", 0)), int(raw.get("version", 0)))

    def get(self, key: str) -> KeyValue | None:
        kvs = self.call("/kv/range", {"key": _b64(key)}).get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        resp = self.call("/kv/range", {"key": _b64(prefix or "\0"), "range_end": _b64(prefix_end(prefix))})
        return [self._kv(kv) for kv in resp.get("kvs") or []], int(resp["header"]["revision"])

    def revision(self) -> int:
        return int(self.call("/kv/range", {"key": _b64("\0"), "count_only": True})["header"]["revision"])

    @staticmethod
    def _op(op: Put | Delete) -> dict:
        if isinstance(op, Put):
            return {"request_put": {"key": _b64(op.key), "value": _b64(op.value)}}
        return {"request_delete_range": {"key": _b64(op.key)}}

    def txn(self, compares: list[Compare], success: list[Put | Delete],
            failure: list[Put | Delete] | None = None) -> TxnResult:
        check_request(success + (failure or []))
        body = {"compare": [{"key": _b64(c.key), "target": "MOD", "result": "EQUAL",
                             "mod_revision": str(c.mod_revision)} for c in compares],
                "success": [self._op(op) for op in success], "failure": [self._op(op) for op in failure or []]}
        resp = self.call("/kv/txn", body)
        ok = bool(resp.get("succeeded")) or not compares
        rev = int(resp["header"]["revision"])
        ops = success if ok else (failure or [])
        return TxnResult(ok, rev, {op.key: rev if isinstance(op, Put) else 0 for op in ops})

    def compact(self, revision: int) -> None:
        """Forget history before `revision` (what etcd's auto-compaction does periodically)."""
        try:
            self.call("/kv/compaction", {"revision": str(revision), "physical": True})
        except EtcdError as exc:
            if "compacted" not in str(exc):
                raise

    def watch(self, prefix: str, start_revision: int) -> Watcher:
        watcher = _EtcdWatcher(self, prefix, start_revision)
        self._watchers.add(watcher)
        return watcher

    def close(self) -> None:
        self._drop()


class _EtcdWatcher(Watcher):
    """One streaming /v3/watch request, read by a thread into a queue; reconnects from the next revision."""

    def __init__(self, store: EtcdStore, prefix: str, start_revision: int) -> None:
        self._store = store
        self._prefix = prefix
        self._next_rev = max(start_revision, 1)
        self._queue: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._established = False
        self._tls_warned = False
        self._thread = threading.Thread(target=self._run, name=f"etcd-watch{prefix}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = 0.05
        index = 0
        while not self._closed.is_set():
            endpoint = self._store.endpoints[index % len(self._store.endpoints)]
            try:
                if self._stream(endpoint):
                    return
            except Exception as exc:   # noqa: BLE001 - any stream failure: reconnect (or stop when closed)
                if self._closed.is_set():
                    return
                rejected = None if self._tls_warned else tls_rejection(endpoint, exc)
                if rejected:
                    self._tls_warned = True
                    log.warning("watch %s: %s (retrying)", self._prefix, rejected)
                log.debug("watch %s on %s: %s; reconnecting from %d", self._prefix, endpoint, exc, self._next_rev)
                index += 1
            if self._established:    # it worked until now: retry at once, back off only while refused
                self._established, delay = False, 0.05
            self._closed.wait(delay)
            delay = min(delay * 2, 1.0)

    def _stream(self, endpoint: Endpoint) -> bool:
        """Read one watch stream until it ends; True when the watcher is finished (closed or compacted)."""
        conn = self._conn = endpoint.connect(None)
        if self._closed.is_set():
            return True
        conn.connect()
        if conn.sock.family in (socket.AF_INET, socket.AF_INET6):   # notice a silently dead peer in ~10 s
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 4)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        body = {"create_request": {"key": _b64(self._prefix or "\0"), "range_end": _b64(prefix_end(self._prefix)),
                                   "start_revision": str(self._next_rev), "prev_kv": True}}
        conn.request("POST", API + "/watch", json.dumps(body).encode(), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise http.client.HTTPException(f"watch: HTTP {resp.status}")
        self._established = True
        while not self._closed.is_set():
            line = resp.readline()
            if not line:
                raise ConnectionError("watch stream ended")
            result = json.loads(line).get("result") or {}
            if result.get("compact_revision") and int(result["compact_revision"]) > 0:
                self._queue.put(Compacted(f"revision {self._next_rev} is compacted "
                                          f"(at {result['compact_revision']})"))
                return True
            if result.get("canceled"):
                raise ConnectionError(f"watch canceled: {result.get('cancel_reason', '')}")
            events = [self._event(e) for e in result.get("events") or []]
            if events:
                self._next_rev = events[-1].revision + 1
                self._queue.put(events)
        return True

    @staticmethod
    def _event(raw: dict) -> Event:
        kv = raw["kv"]
        prev = raw.get("prev_kv")
        deleted = raw.get("type") == "DELETE"
        return Event(type="DELETE" if deleted else "PUT", key=_unb64(kv["key"]).decode(),
                     value=None if deleted else _unb64(kv.get("value")), revision=int(kv["mod_revision"]),
                     prev_value=_unb64(prev.get("value")) if prev else None)

    def next_batch(self, timeout: float) -> list[Event]:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        out: list[Event] = []
        while True:
            if isinstance(item, Compacted):
                if out:                      # deliver what came before; raise on the next call
                    self._queue.put(item)
                    return out
                raise item
            out.extend(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out

    def reconnect(self) -> None:
        """Drop the stream; the reader reconnects at once from the next revision (nothing lost or repeated)."""
        self._shutdown()

    def close(self) -> None:
        self._closed.set()
        self._shutdown()

    def _shutdown(self) -> None:
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def server_argv(name: str, data_dir: str, client_urls: list[str], auto_compaction_revisions: int = 10000,
                tls: tuple[str, str, str] | None = None) -> list[str]:
    """argv for a one-member etcd whose peer port is a unix socket in its working directory (run it with
    cwd=data_dir's parent): it opens no TCP port beyond `client_urls`. `unix://NAME:0` URLs become socket files
    named `NAME:0` in the working directory. Revision auto-compaction keeps the last N revisions. `tls` = (ca, cert,
    key): `https://` client URLs serve that certificate and accept only clients with a certificate the CA signed
    (etcd ignores TLS on `unix://` URLs, so keep those in a root-only directory)."""
    tls_flags = ["--cert-file", tls[1], "--key-file", tls[2], "--trusted-ca-file", tls[0],
                 "--client-cert-auth"] if tls else []
    return ["etcd", "--name", name, "--data-dir", data_dir, *tls_flags,
            "--listen-client-urls", ",".join(client_urls), "--advertise-client-urls", client_urls[0],
            "--listen-peer-urls", "unix://peer.sock:0", "--initial-advertise-peer-urls", "unix://peer.sock:0",
            "--initial-cluster", f"{name}=unix://peer.sock:0", "--initial-cluster-state", "new",
            "--auto-compaction-mode", "revision", "--auto-compaction-retention", str(auto_compaction_revisions),
            "--snapshot-count", "10000", "--log-level", "warn", "--logger", "zap"]


def remove_stale_sockets(workdir: str) -> None:
    """A killed etcd leaves its unix sockets behind, and a new one then fails to bind them: remove them first."""
    for name in os.listdir(workdir):
        if name.endswith(".sock:0"):
            os.unlink(os.path.join(workdir, name))


def wait_ready(store: EtcdStore, timeout: float = 10.0) -> None:
    """Block until etcd answers a read (or raise EtcdError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            quick = EtcdStore(store.url, retry_timeout=0.0, request_timeout=1.0)
            quick.revision()
            quick.close()
            return
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
