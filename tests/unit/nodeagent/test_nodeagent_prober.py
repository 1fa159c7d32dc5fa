"""Prober logic without root: handlers against loopback servers and a fake exec, thresholds, startup gating."""
import http.server
import socket
import threading
import time

import pytest

from nodeagent import prober
from nodeagent.prober import ProbeManager, ProbeWorker, Result, Target, resolve_port, run_probe

CONTAINER = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}


def target(exec_result=(0, "")):
    calls = []

    def fake_exec(argv, timeout):
        calls.append((argv, timeout))
        return exec_result
    t = Target(CONTAINER, fake_exec, "127.0.0.1")
    t.calls = calls
    return t


def test_exec_probe_success_failure_and_output():
    t = target((0, ""))
    assert run_probe({"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 3}, t)[0] is Result.SUCCESS
    assert t.calls == [(["cat", "/tmp/healthy"], 3.0)]
    result, message = run_probe({"exec": {"command": ["cat", "x"]}}, target((1, "cat: x: No such file\n")))
    assert (result, message) == (Result.FAILURE, "cat: x: No such file")


@pytest.fixture
def http_server():
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["headers"] = dict(self.headers)
            code = {"/ok": 200, "/redirect": 302, "/bad": 500}.get(self.path, 404)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"body")

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()


def test_http_probe_status_codes_and_headers(http_server):
    port, seen = http_server
    t = target()
    probe = {"httpGet": {"path": "/ok", "port": port, "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}
    assert run_probe(probe, t)[0] is Result.SUCCESS
    assert seen["headers"]["X-Probe"] == "1" and seen["headers"]["User-Agent"].startswith("kube-probe/")
    assert run_probe({"httpGet": {"path": "/redirect", "port": port}}, t)[0] is Result.SUCCESS   # 3xx counts
    result, message = run_probe({"httpGet": {"path": "/bad", "port": port}}, t)
    assert result is Result.FAILURE and "statuscode: 500" in message


def test_tcp_probe_open_and_closed_port():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert run_probe({"tcpSocket": {"port": port}}, target())[0] is Result.SUCCESS
    listener.close()
    assert run_probe({"tcpSocket": {"port": port}}, target())[0] is Result.FAILURE


def test_named_ports_and_missing_handlers():
    assert resolve_port("http", CONTAINER) == 8080 and resolve_port(81, CONTAINER) == 81
    result, message = run_probe({"tcpSocket": {"port": "nope"}}, target())
    assert result is Result.FAILURE and "named port" in message
    assert run_probe({"periodSeconds": 1}, target())[0] is Result.UNKNOWN


class Recorder:
    def __init__(self):
        self.woken, self.events = [], []

    def wake(self, uid):
        self.woken.append(uid)

    def record(self, pod, type_, reason, message):
        self.events.append((reason, message))


POD = {"metadata": {"uid": "u1", "name": "p"}}


def worker(manager, kind, probe, script, monkeypatch):
    results = iter(script)
    monkeypatch.setattr(prober, "run_probe", lambda p, t: next(results))
    return ProbeWorker(manager, ("u1", "web"), kind, probe, target(), 0.0, POD)


def test_failure_threshold_then_liveness_goes_on_hold(monkeypatch):
    rec = Recorder()
    m = ProbeManager(rec.wake, rec.record)
    m.add_container(POD, {"name": "web"}, target().exec, "127.0.0.1", 0.0)   # no probes: no threads
    m._status[("u1", "web")].results["liveness"] = Result.SUCCESS            # as if it had a liveness probe
    fail = (Result.FAILURE, "boom")
    w = worker(m, "liveness", {"exec": {}, "failureThreshold": 3},
               [fail, fail, (Result.SUCCESS, ""), fail, fail, fail], monkeypatch)
    assert [w._probe_once() for _ in range(5)] == [True] * 5
    assert m.failed(("u1", "web")) is None           # the success in between reset the run
    assert w._probe_once() is False                  # third consecutive failure: published, worker stops
    assert m.failed(("u1", "web")) == "liveness" and rec.woken == ["u1"]
    assert rec.events.count(("Unhealthy", "Liveness probe failed: boom")) == 5


def test_readiness_starts_false_and_startup_gates_the_others(monkeypatch):
    rec = Recorder()
    m = ProbeManager(rec.wake, rec.record)
    key = ("u1", "web")
    m.add_container(POD, {"name": "web"}, target().exec, "127.0.0.1", 0.0)
    m._status[key].results.update(readiness=Result.FAILURE, startup=Result.UNKNOWN)
    assert not m.started(key) and not m.ready(key)
    ready = worker(m, "readiness", {"exec": {}, "successThreshold": 1}, [(Result.SUCCESS, "")], monkeypatch)
    assert ready._probe_once() is True and not m.ready(key)     # not probed before startup succeeded
    startup = worker(m, "startup", {"exec": {}, "successThreshold": 1}, [(Result.SUCCESS, "")], monkeypatch)
    assert startup._probe_once() is False                       # startup probing ends at its first success
    assert m.started(key) and not m.ready(key)
    ready = worker(m, "readiness", {"exec": {}, "successThreshold": 1}, [(Result.SUCCESS, "")], monkeypatch)
    assert ready._probe_once() is True and m.ready(key)


def test_initial_delay_skips_probing(monkeypatch):
    rec = Recorder()
    m = ProbeManager(rec.wake, rec.record)
    m.add_container(POD, {"name": "web"}, target().exec, "127.0.0.1", 0.0)
    w = worker(m, "liveness", {"exec": {}, "initialDelaySeconds": 10 ** 12}, [], monkeypatch)
    assert w._probe_once() is True    # would raise StopIteration if it probed


def test_no_probes_means_ready_and_readopted_containers_keep_readiness():
    m = ProbeManager(lambda uid: None, lambda *a: None)
    m.add_container(POD, {"name": "web"}, target().exec, "127.0.0.1", 0.0)
    assert m.ready(("u1", "web")) and m.started(("u1", "web"))
    probed = {"name": "web", "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 3600,
                                                 "initialDelaySeconds": 3600}}
    now = time.time()   # the initial delay keeps the workers from probing during the test
    m.add_container(POD, probed, target().exec, "127.0.0.1", now, was_ready=True)
    assert m.ready(("u1", "web"))
    m.add_container(POD, probed, target().exec, "127.0.0.1", now)
    assert not m.ready(("u1", "web"))
    m.remove_pod("u1")
    assert m.ready(("u1", "web"))     # nothing tracked any more


def fake_grpc_server(status: int | None):
    """A loopback HTTP/2 peer answering one Health/Check the way grpc servers frame it (verified against grpcio's
    health servicer by hand: SERVING, NOT_SERVING)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    got = {}

    def serve():
        conn, _ = listener.accept()
        with conn:
            buf = b""
            while prober.H2_PREFACE not in buf or b"/grpc.health.v1.Health/Check" not in buf:
                buf += conn.recv(4096)
            got["request"] = buf
            out = prober._h2_frame(prober.H2_SETTINGS, 0, 0) + prober._h2_frame(prober.H2_HEADERS, 4, 1, b"\x88")
            if status is not None:
                msg = b"\x08" + bytes([status])
                out += prober._h2_frame(prober.H2_DATA, 0, 1, b"\x00" + len(msg).to_bytes(4, "big") + msg)
            out += prober._h2_frame(prober.H2_HEADERS, 5, 1, b"\x00\x0bgrpc-status\x010")
            conn.sendall(out)
            got["ack"] = conn.recv(4096)
        listener.close()
    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], got


@pytest.mark.parametrize("status, result, message", [
    (1, Result.SUCCESS, ""),
    (2, Result.FAILURE, "service unhealthy (responded with NOT_SERVING)"),
    (None, Result.FAILURE, "rpc error: no health status"),
])
def test_grpc_health_check(status, result, message):
    port, got = fake_grpc_server(status)
    res, msg = run_probe({"grpc": {"port": port, "service": "db"}}, target())
    assert res is result and msg.startswith(message)
    assert got["request"].startswith(prober.H2_PREFACE) and b"\x0a\x02db" in got["request"]
