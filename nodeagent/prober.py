"""Probes, kubelet style: a ProbeManager with one ProbeWorker (thread + timer) per container and probe type.

Workers run exec / httpGet / tcpSocket probes, apply initialDelaySeconds, periodSeconds, timeoutSeconds and the
success/failure thresholds, and publish results; a changed result wakes the pod worker, which acts on it (restart
on liveness/startup failure, Ready condition from readiness). Network probes are sent by the agent, which runs in
the node's network namespace, to the pod IP; exec probes run inside the container through the runtime's exec.
"""
from __future__ import annotations

import enum
import http.client
import logging
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)

PROBE_TYPES = ("startup", "liveness", "readiness")
OUTPUT_LIMIT = 10 * 1024   # kubelet keeps at most 10 KiB of probe output


class Result(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


# ---- running one probe ---------------------------------------------------------------------------------------------
ExecFn = Callable[[list[str], float], "tuple[int, str]"]   # (argv, timeout) -> (exit code, output)


@dataclass
class Target:
    """What a probe is aimed at: the container (its spec and a way to exec in it, like `runc exec`) and the pod
    IP."""
    container: dict
    exec: ExecFn
    pod_ip: str


def resolve_port(port: int | str, container: dict) -> int:
    """A port number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container['name']}")


def run_probe(probe: dict, target: Target) -> tuple[Result, str]:
    """Run one probe once: (result, message for events)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "exec" in probe:
            code, output = target.exec(list(probe["exec"].get("command") or []), timeout)
            return (Result.SUCCESS if code == 0 else Result.FAILURE), output.strip()[-OUTPUT_LIMIT:]
        if "httpGet" in probe:
            return http_get(probe["httpGet"], target, timeout)
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            host, port = spec.get("host") or target.pod_ip, resolve_port(spec["port"], target.container)
            with socket.create_connection((host, port), timeout=timeout):
                return Result.SUCCESS, ""
        if "grpc" in probe:
            spec = probe["grpc"]
            return grpc_health_check(target.pod_ip, int(spec["port"]), spec.get("service") or "", timeout)
    except (OSError, ValueError, http.client.HTTPException, subprocess.SubprocessError) as exc:
        return Result.FAILURE, str(exc) or type(exc).__name__
    return Result.UNKNOWN, "probe has no handler (exec, httpGet, tcpSocket or grpc)"


def http_get(spec: dict, target: Target, timeout: float) -> tuple[Result, str]:
    """kubelet's HTTP prober: GET from the node, 200-399 is success."""
    host = spec.get("host") or target.pod_ip
    port = resolve_port(spec.get("port", 80), target.container)
    path = spec.get("path") or "/"
    path = path if path.startswith("/") else "/" + path
    headers = {"User-Agent": "kube-probe/1.31", "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in spec.get("httpHeaders") or []})
    if spec.get("scheme", "HTTP").upper() == "HTTPS":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl._create_unverified_context())  # kubelet skips verification
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(OUTPUT_LIMIT).decode(errors="replace")
    finally:
        conn.close()
    if 200 <= resp.status < 400:
        return Result.SUCCESS, ""
    return Result.FAILURE, f"HTTP probe failed with statuscode: {resp.status}" + (f" {body.strip()}" if body else "")


# ---- gRPC health checking over cleartext HTTP/2, stdlib only -------------------------------------------------------
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_RST_STREAM, H2_SETTINGS, H2_PING, H2_GOAWAY = 0, 1, 3, 4, 6, 7
H2_END_STREAM, H2_ACK, H2_END_HEADERS = 0x1, 0x1, 0x4
SERVING_STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_literal(name_index: int | None, name: str, value: str) -> bytes:
    """A header as 'literal without indexing' (no Huffman): with a static-table name index or a new name."""
    def string(text: str) -> bytes:
        raw = text.encode()
        assert len(raw) < 127, "short header values only"
        return bytes([len(raw)]) + raw
    if name_index is None:
        return b"\x00" + string(name) + string(value)
    prefix = bytes([name_index]) if name_index < 15 else bytes([15, name_index - 15])
    return prefix + string(value)


def _grpc_request(authority: str, service: str) -> bytes:
    """Preface, SETTINGS and one Health/Check call on stream 1."""
    headers = (b"\x83\x86"                                 # :method POST, :scheme http (static table 3, 6)
               + _hpack_literal(4, ":path", "/grpc.health.v1.Health/Check")
               + _hpack_literal(1, ":authority", authority)
               + _hpack_literal(31, "content-type", "application/grpc")
               + _hpack_literal(None, "te", "trailers"))
    message = (b"\x0a" + bytes([len(service.encode())]) + service.encode()) if service else b""
    body = b"\x00" + len(message).to_bytes(4, "big") + message   # uncompressed, length-prefixed
    return (H2_PREFACE + _h2_frame(H2_SETTINGS, 0, 0) + _h2_frame(H2_HEADERS, H2_END_HEADERS, 1, headers)
            + _h2_frame(H2_DATA, H2_END_STREAM, 1, body))


def _serving_status(data: bytes) -> int:
    """HealthCheckResponse.status (field 1, varint) from a length-prefixed gRPC message; 0 when absent."""
    message = data[5:5 + int.from_bytes(data[1:5], "big")] if len(data) >= 5 else b""
    i = 0
    while i < len(message):
        tag, i = message[i], i + 1
        value, shift = 0, 0
        while i < len(message):
            byte, i = message[i], i + 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag == 0x08:
            return value
        if tag & 7 != 0:
            break   # not a varint field: HealthCheckResponse has no such fields
    return 0


def grpc_health_check(host: str, port: int, service: str, timeout: float) -> tuple[Result, str]:
    """grpc.health.v1.Health/Check as kubelet's gRPC prober: success only when the answer is SERVING. The
    response is read from its DATA frame, so header decoding (HPACK) is not needed: an error has no DATA."""
    deadline = time.monotonic() + timeout
    data = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_grpc_request(f"{host}:{port}", service))
        buf = b""
        done = False
        while not done:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                length, kind, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + length], buf[9 + length:]
                if kind == H2_SETTINGS and not flags & H2_ACK:
                    sock.sendall(_h2_frame(H2_SETTINGS, H2_ACK, 0))
                elif kind == H2_PING and not flags & H2_ACK:
                    sock.sendall(_h2_frame(H2_PING, H2_ACK, 0, payload))
                elif kind == H2_DATA and stream == 1:
                    data += payload
                if (stream == 1 and flags & H2_END_STREAM and kind in (H2_DATA, H2_HEADERS)) or \
                        kind == H2_GOAWAY or (kind == H2_RST_STREAM and stream == 1):
                    done = True
    if not data:
        return Result.FAILURE, f"rpc error: no health status from {host}:{port} (service {service!r} unknown?)"
    status = _serving_status(data)
    if status == 1:
        return Result.SUCCESS, ""
    return Result.FAILURE, f"service unhealthy (responded with {SERVING_STATUSES.get(status, status)})"


# ---- workers and results -------------------------------------------------------------------------------------------
@dataclass
class ProbeStatus:
    """Published results of one container attempt's probes."""
    results: dict[str, Result] = field(default_factory=dict)   # probe type -> result
    messages: dict[str, str] = field(default_factory=dict)     # last failure message per type


class ProbeWorker:
    """Periodically runs one probe of one container attempt and publishes results past the thresholds."""

    def __init__(self, manager: "ProbeManager", key: tuple[str, str], kind: str, probe: dict, target: Target,
                 started_at: float, pod: dict) -> None:
        self.manager, self.key, self.kind, self.probe, self.target = manager, key, kind, probe, target
        self.started_at, self.pod = started_at, pod
        self.stop_event = threading.Event()
        self.last: Result | None = None
        self.run_length = 0
        self.thread = threading.Thread(target=self._run, name=f"probe-{kind}-{target.container['name']}",
                                       daemon=True)

    def _run(self) -> None:
        period = max(1.0, float(self.probe.get("periodSeconds", 10)))
        tick = time.time()
        while not self.stop_event.is_set():
            try:
                if not self._probe_once():
                    return
            except Exception:  # a prober bug must not leave the container unwatched silently
                log.exception("%s probe of %s failed", self.kind, self.key)
            tick += period
            self.stop_event.wait(max(0.0, tick - time.time()))

    def _probe_once(self) -> bool:
        """One tick; False stops the worker (liveness/startup failed, or startup succeeded)."""
        if time.time() - self.started_at < float(self.probe.get("initialDelaySeconds", 0)):
            return True
        if self.kind != "startup" and not self.manager.started(self.key):
            return True
        result, message = run_probe(self.probe, self.target)
        if self.stop_event.is_set():
            return False
        if result is Result.UNKNOWN:
            self.manager.warn_once(self.pod, self.key, self.kind, message)
            return True
        if result is Result.FAILURE:
            self.manager.unhealthy(self.pod, self.kind, message)
        self.run_length = self.run_length + 1 if result == self.last else 1
        self.last = result
        threshold = int(self.probe.get("failureThreshold" if result is Result.FAILURE else "successThreshold", 1))
        if self.run_length < threshold:
            return True
        self.manager.publish(self.key, self.kind, result, message)
        if self.kind in ("liveness", "startup") and result is Result.FAILURE:
            return False   # on hold until the next attempt of the container
        return not (self.kind == "startup" and result is Result.SUCCESS)


Wake = Callable[[str], None]                       # pod uid
Recorder = Callable[[dict, str, str, str], None]   # (pod, type, reason, message)


class ProbeManager:
    """Owns the probe workers of every container attempt on the node and their latest results."""

    def __init__(self, wake: Wake, record: Recorder) -> None:
        self.wake = wake
        self.record = record
        self._status: dict[tuple[str, str], ProbeStatus] = {}
        self._workers: dict[tuple[str, str], list[ProbeWorker]] = {}
        self._warned: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def add_container(self, pod: dict, container: dict, exec_fn: ExecFn, pod_ip: str, started_at: float,
                      was_ready: bool = False, was_started: bool = False) -> None:
        """Start probing a freshly started container attempt, or a re-adopted one (keeping what the previous agent
        published: a container that was started and ready stays so until a probe says otherwise)."""
        key = (pod["metadata"]["uid"], container["name"])
        self.remove_container(*key)
        initial = {"liveness": Result.SUCCESS, "startup": Result.SUCCESS if was_started else Result.UNKNOWN,
                   "readiness": Result.SUCCESS if was_ready else Result.FAILURE}
        status = ProbeStatus({k: initial[k] for k in PROBE_TYPES if container.get(f"{k}Probe")})
        workers = [ProbeWorker(self, key, kind, container[f"{kind}Probe"], Target(container, exec_fn, pod_ip),
                               started_at, pod) for kind in PROBE_TYPES if container.get(f"{kind}Probe")
                   and not (kind == "startup" and was_started)]
        with self._lock:
            self._status[key] = status
            self._workers[key] = workers
        for w in workers:
            w.thread.start()

    def remove_container(self, uid: str, name: str) -> None:
        with self._lock:
            workers = self._workers.pop((uid, name), [])
            self._status.pop((uid, name), None)
        for w in workers:
            w.stop_event.set()

    def remove_pod(self, uid: str) -> None:
        with self._lock:
            keys = [k for k in self._workers if k[0] == uid]
        for key in keys:
            self.remove_container(*key)
        self._warned = {w for w in self._warned if w[0] != uid}

    # ---- results, read by the pod worker -------------------------------------------------------------------------
    def _result(self, key: tuple[str, str], kind: str) -> Result | None:
        with self._lock:
            status = self._status.get(key)
            return status.results.get(kind) if status else None

    def started(self, key: tuple[str, str]) -> bool:
        """No startup probe, or it succeeded (liveness and readiness wait for this)."""
        result = self._result(key, "startup")
        return result is None or result is Result.SUCCESS

    def ready(self, key: tuple[str, str]) -> bool:
        """Readiness: without a probe, ready once started."""
        result = self._result(key, "readiness")
        return self.started(key) and (result is None or result is Result.SUCCESS)

    def failed(self, key: tuple[str, str]) -> str | None:
        """Why the container must be restarted (liveness or startup failure), else None."""
        for kind in ("liveness", "startup"):
            if self._result(key, kind) is Result.FAILURE:
                return kind
        return None

    # ---- called by workers -----------------------------------------------------------------------------------------
    def publish(self, key: tuple[str, str], kind: str, result: Result, message: str) -> None:
        with self._lock:
            status = self._status.get(key)
            if status is None or status.results.get(kind) is result:
                return
            status.results[kind] = result
            status.messages[kind] = message
        self.wake(key[0])

    def unhealthy(self, pod: dict, kind: str, message: str) -> None:
        self.record(pod, "Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {message}")

    def warn_once(self, pod: dict, key: tuple[str, str], kind: str, message: str) -> None:
        if (key[0], key[1], kind) not in self._warned:
            self._warned.add((key[0], key[1], kind))
            self.record(pod, "Warning", "ProbeWarning", f"{kind.capitalize()} probe warning: {message}")
