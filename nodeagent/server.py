"""The node agent's own HTTPS server: what only the node can serve (kubelet's server on port 10250).

    GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&timestamps=   plain text
    GET /exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=   WebSocket, v5/v4.channel.k8s.io
    GET /portForward/{namespace}/{pod}?ports=N                                       WebSocket, v4.channel.k8s.io
    GET /stats/summary                                                               Summary API JSON
    GET /healthz

TLS with the node's serving certificate (tlsCertFile/tlsPrivateKeyFile); a client must present a certificate the
client CA (authentication.x509.clientCAFile) signed, or the handshake fails. The user is the certificate's CN and
the groups its O values (as the API server reads them); cluster admins (kubeadm:cluster-admins, system:masters) may
use every endpoint, anyone else gets 403, as kubelet's webhook authorizer answers for a user without nodes/proxy.
It listens on the node IP only, in the node's network namespace, and serves from an asyncio loop in one thread.
Exec runs the command through the container shim like probes and hooks do (the container's cgroup, namespaces,
root, user and capabilities); port-forward connects to localhost:PORT inside the pod's network namespace.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import pty
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone

import psutil
from aiohttp import WSMsgType, web

from kemu.api.nodeconfig import NodeConfig
from kemu.client import channels
from nodeagent.kuberuntime import container_security, sandbox_config, sandbox_metadata
from runtime.container import ContainerProcess, read_log
from runtime.linux import call_in_netns
from runtime.pods import PodRuntime, exec_spec
from runtime.process import SHIM
from nodeagent.metrics import AgentMetrics, resource_metrics_text

log = logging.getLogger(__name__)
ADMIN_GROUPS = ("kubeadm:cluster-admins", "system:masters")
SAMPLE_SECONDS = 10.0      # cgroup stats sampling period (cAdvisor's housekeeping interval)
MIN_RATE_WINDOW = 1.0      # a CPU rate spans at least this many seconds
MAX_SAMPLE_AGE = 60.0
FOLLOW_POLL = 0.1          # seconds between looks at a followed log
CLOSE_TIMEOUT = 5.0        # how long a finished exec waits for the client's close frame
EXEC_DRAIN = 1.0           # after the command exits, how long its output may still flow (a daemonized child keeps
                           # the pipe open; the shim gives a container's log the same second)


class NodeServer:
    """The HTTPS endpoint of one node agent. `pods` returns the pods the agent runs (the static pods' own objects,
    not their mirrors): the server reads their files through `runtime`, and serves nothing else."""

    def __init__(self, config: NodeConfig, runtime: PodRuntime, pods: Callable[[], list[dict]]) -> None:
        self.config = config
        self.runtime = runtime
        self.pods = pods
        self.port = 0                      # the port it serves on once started (status.daemonEndpoints)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._cpu_samples: dict[str, list[tuple[float, float]]] = {}   # key -> (time, cpu seconds), oldest first
        self.metrics = AgentMetrics(config.node_name, pods)

    @property
    def configured(self) -> bool:
        c = self.config
        return bool(c.tls_cert_file and c.tls_private_key_file and c.client_ca_file and c.port)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.config.client_ca_file)
        ctx.load_cert_chain(self.config.tls_cert_file, self.config.tls_private_key_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for method in ("GET", "POST"):
            app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", self.exec)
            app.router.add_route(method, "/portForward/{namespace}/{pod}", self.port_forward)
        app.router.add_get("/stats/summary", self.stats_summary)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/metrics/resource", self.resource_metrics)
        return app

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Serve on node_ip:port in a thread; False (logged) when there is no certificate or it cannot listen —
        the agent runs its pods either way."""
        if not self.configured:
            log.warning("node server off: NodeConfig has no tls_cert_file/tls_private_key_file/client_ca_file")
            return False
        self._thread = threading.Thread(target=self._serve, name="node-server", daemon=True)
        self._thread.start()
        self._started.wait(15)
        if self._error is not None or not self.port:
            log.error("node server off: cannot serve on %s:%s: %s", self.config.node_ip, self.config.port,
                      self._error)
            return False
        log.info("node server listening on https://%s:%d", self.config.node_ip, self.port)
        return True

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.config.node_ip, self.config.port, ssl_context=self.ssl_context(),
                               reuse_address=True)
            loop.run_until_complete(site.start())
            self.port = self.config.port
            self._loop = loop
            loop.call_soon(self._sample)
        except BaseException as exc:   # noqa: BLE001 - reported by start()
            self._error = exc
            self._started.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self.port = 0

    # ---- authentication and authorization ----------------------------------------------------------------------
    @web.middleware
    async def _authenticate(self, request: web.Request, handler):
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if not cert:
            return status_response(401, "Unauthorized", "Unauthorized: a client certificate is required")
        subject = [value for rdn in cert.get("subject", ()) for value in rdn]
        user = next((v for k, v in subject if k == "commonName"), "")
        groups = [v for k, v in subject if k == "organizationName"]
        if not any(g in ADMIN_GROUPS for g in groups):
            sub = request.path.strip("/").split("/", 1)[0]
            return status_response(403, "Forbidden", f"Forbidden (user={user}, verb=get, resource=nodes, "
                                                     f"subresource={sub or 'proxy'})")
        return await handler(request)

    # ---- targets -----------------------------------------------------------------------------------------------
    def _pod(self, request: web.Request) -> dict:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        for pod in self.pods():
            meta = pod["metadata"]
            if meta["namespace"] == ns and meta["name"] == name:
                return pod
        raise HTTPStatus(404, "NotFound", f'pod "{ns}/{name}" does not exist on node {self.config.node_name}')

    def _container(self, request: web.Request) -> tuple[dict, dict]:
        pod = self._pod(request)
        name = request.match_info["container"]
        container = next((c for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]
                          if c["name"] == name), None)
        if container is None:
            raise HTTPStatus(400, "BadRequest", f'container {name} is not valid for pod {pod["metadata"]["name"]}')
        return pod, container

    def _latest(self, pod: dict, name: str) -> ContainerProcess | None:
        return ContainerProcess.latest(self.runtime.container_dir(sandbox_metadata(pod), name), name)

    def _sandbox_config(self, pod: dict):
        return sandbox_config(pod, self.config.cluster_dns, self.config.cluster_domain)

    # ---- endpoints ---------------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        try:
            pod, container = self._container(request)
            q = request.query
            follow, previous, timestamps = (flag(q, k) for k in ("follow", "previous", "timestamps"))
            tail = _non_negative(q, "tailLines")
        except HTTPStatus as exc:
            return exc.response()
        name, pod_name = container["name"], pod["metadata"]["name"]
        current = self._latest(pod, name)
        if current is None:
            return status_response(400, "BadRequest",
                                   f'container "{name}" in pod "{pod_name}" is waiting to start: ContainerCreating')
        if previous:
            if current.attempt == 0:
                return status_response(400, "BadRequest",
                                       f'previous terminated container "{name}" in pod "{pod_name}" not found')
            current, follow = ContainerProcess(current.dir, name, current.attempt - 1), False
        stamp = LineStamper() if timestamps else None
        if not follow:
            text = read_log(current.log_path).encode()
            text = tail_lines(text, tail) if tail is not None else text
            body = stamp.feed(text, _mtime(current.log_path)) if stamp else text
            return web.Response(body=body, content_type="text/plain", charset="utf-8")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async for chunk, when in follow_log(current, tail):
                await resp.write(stamp.feed(chunk, when) if stamp else chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        await resp.write_eof()
        return resp

    async def exec(self, request: web.Request) -> web.StreamResponse:
        try:
            pod, container = self._container(request)
            q = request.query
            argv = q.getall("command", [])
            if not argv:
                raise HTTPStatus(400, "BadRequest", "you must specify at least 1 command")
            want = {k: flag(q, k) for k in ("stdin", "stdout", "stderr", "tty")}
            if not (want["stdin"] or want["stdout"] or want["stderr"]):
                raise HTTPStatus(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
            proc = self._latest(pod, container["name"])
            if proc is None or not proc.running():
                raise HTTPStatus(400, "BadRequest", f'container "{container["name"]}" in pod '
                                                    f'"{pod["metadata"]["name"]}" is not running')
            ws = await _upgrade(request, channels.EXEC_PROTOCOLS)
        except HTTPStatus as exc:
            return exc.response()
        session = ExecSession(ws, ws.ws_protocol == channels.V5, want)
        shim_argv = self._exec_argv(pod, container, proc, argv)
        try:
            code = await session.run(shim_argv, argv)
            await session.send(channels.ERROR, json.dumps(channels.exit_status(code, argv)).encode())
        except OSError as exc:
            if os.path.exists(shim_argv[-1]):   # the shim never read its spec (it holds the container's env)
                os.unlink(shim_argv[-1])
            await session.send(channels.ERROR, json.dumps(channels.error_status(str(exc))).encode())
        try:   # the client may already be gone (it stops at the status frame): never wait forever on its close
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("exec %s: the client did not answer the close", request.path)
        return ws

    def _exec_argv(self, pod: dict, container: dict, proc: ContainerProcess, argv: list[str]) -> list[str]:
        """The shim command that runs `argv` in the container (the spec file holds its environment: 0600, removed
        by the shim once read)."""
        sandbox = self._sandbox_config(pod)
        cg = self.runtime.container_cgroup(sandbox, container["name"])
        spec = dict(exec_spec(proc, argv, container_security(pod, container), container.get("workingDir"),
                              sandbox.linux.share_process_namespace,
                              [os.path.join(d, "cgroup.procs") for d in cg.dirs()] if cg else []),
                    remove_spec_file=True)
        fd, path = tempfile.mkstemp(prefix=".exec-", suffix=".json", dir=proc.dir)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        return [sys.executable, "-I", "-S", SHIM, "exec", path]

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        try:
            pod = self._pod(request)
            ports = []
            for value in request.query.getall("ports", []):
                if not value.isdigit() or not 0 < int(value) < 65536:
                    raise HTTPStatus(400, "BadRequest", f"ports: {value!r} is not a port number (1-65535)")
                ports.append(int(value))
            if not ports:
                raise HTTPStatus(400, "BadRequest", 'query parameter "ports" is required')
            sandbox = self.runtime.sandbox(sandbox_metadata(pod))
            if sandbox is None:
                raise HTTPStatus(400, "BadRequest", f'pod "{pod["metadata"]["name"]}" has no sandbox running')
            ws = await _upgrade(request, channels.PORT_FORWARD_PROTOCOLS)
        except HTTPStatus as exc:
            return exc.response()
        await PortForwardSession(ws, pod, sandbox.netns_path, ports).run()
        return ws

    async def stats_summary(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary())

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.text(), content_type="text/plain", charset="utf-8")

    async def resource_metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=resource_metrics_text(self.summary()), content_type="text/plain", charset="utf-8")

    def _sample(self) -> None:
        """Read the cgroups every SAMPLE_SECONDS (cAdvisor's housekeeping), so that a CPU rate is ready for the
        first scrape of the metrics pipeline."""
        try:
            self.summary()
            now = time.time()
            for key in [k for k, v in self._cpu_samples.items() if not v or now - v[-1][0] > MAX_SAMPLE_AGE]:
                del self._cpu_samples[key]     # pods that are gone
        except Exception:     # noqa: BLE001 - a pod going away mid-read; the next sample is whole again
            log.debug("stats sample failed", exc_info=True)
        if self._loop is not None:
            self._loop.call_later(SAMPLE_SECONDS, self._sample)

    def summary(self) -> dict:
        """kubelet's Summary API (stats/v1alpha1): node and per-pod, per-container CPU and memory."""
        now = time.time()
        stamp = rfc3339_nano(now)
        cpu = psutil.cpu_times()
        mem = psutil.virtual_memory()
        node = {"nodeName": self.config.node_name, "startTime": rfc3339_nano(psutil.boot_time()),
                "cpu": self._cpu("node", stamp, now, cpu.user + cpu.system + getattr(cpu, "steal", 0.0)),
                "memory": {"time": stamp, "availableBytes": mem.available, "usageBytes": mem.total - mem.free,
                           "workingSetBytes": mem.total - mem.available}}
        pods = []
        for pod in self.pods():
            meta = pod["metadata"]
            usage = self.runtime.usage(self._sandbox_config(pod), [c["name"] for c in pod["spec"]["containers"]])
            started = (pod.get("status") or {}).get("startTime")
            containers = [dict({"name": name, "cpu": self._cpu(f"{meta['uid']}/{name}", stamp, now, u["cpu_seconds"]),
                                "memory": {"time": stamp, "workingSetBytes": u["memory_working_set_bytes"]}},
                               **({"startTime": started} if started else {}))
                          for name, u in usage["containers"].items()]
            pods.append(dict({"podRef": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                              "cpu": self._cpu(meta["uid"], stamp, now, usage["cpu_seconds"]),
                              "memory": {"time": stamp, "workingSetBytes": usage["memory_working_set_bytes"]},
                              "containers": containers}, **({"startTime": started} if started else {})))
        return {"node": node, "pods": pods}

    def _cpu(self, key: str, stamp: str, now: float, seconds: float) -> dict:
        """CPUStats: cumulative usageCoreNanoSeconds, and usageNanoCores over the window since the newest sample
        at least MIN_RATE_WINDOW old (so that scrapes close together still measure a real interval)."""
        out = {"time": stamp, "usageCoreNanoSeconds": int(seconds * 1e9)}
        samples = [s for s in self._cpu_samples.get(key, []) if now - s[0] <= MAX_SAMPLE_AGE and s[1] <= seconds]
        base = next((s for s in reversed(samples) if now - s[0] >= MIN_RATE_WINDOW), None)
        if base is not None:
            out["usageNanoCores"] = int((seconds - base[1]) / (now - base[0]) * 1e9)
        if not samples or now - samples[-1][0] >= MIN_RATE_WINDOW:
            samples.append((now, seconds))
        self._cpu_samples[key] = samples[-8:]
        return out


# ---- exec ------------------------------------------------------------------------------------------------------------
class ExecSession:
    """One exec over one WebSocket: the shim's stdin/stdout/stderr (or a pty) on channels 0/1/2, resize on 4."""

    def __init__(self, ws: web.WebSocketResponse, v5: bool, want: dict[str, bool]) -> None:
        self.ws, self.v5, self.want = ws, v5, want
        self._send_lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                await self.ws.send_bytes(channels.frame(channel, data))

    async def run(self, shim_argv: list[str], argv: list[str]) -> int:
        tty = self.want["tty"]
        master = slave = -1
        if tty:
            master, slave = pty.openpty()
        pipe, devnull = subprocess.PIPE, subprocess.DEVNULL
        try:
            proc = subprocess.Popen(   # noqa: ASYNC220 - fork+exec of the shim; it reports nothing to wait for
                shim_argv, start_new_session=True,
                stdin=slave if tty else (pipe if self.want["stdin"] else devnull),
                stdout=slave if tty else (pipe if self.want["stdout"] else devnull),
                stderr=slave if tty else (pipe if self.want["stderr"] else devnull))
        finally:
            if slave >= 0:
                os.close(slave)
        stdin_fd = master if tty else (proc.stdin.fileno() if proc.stdin else -1)
        outputs = [(master, channels.STDOUT)] if tty else \
            [(f.fileno(), ch) for f, ch in ((proc.stdout, channels.STDOUT), (proc.stderr, channels.STDERR)) if f]
        pumps = [asyncio.ensure_future(self._pump(fd, ch)) for fd, ch in outputs]
        reader = asyncio.ensure_future(self._read_client(stdin_fd, master, proc))
        try:
            await wait_exit(proc.pid)
            code = proc.wait()
            if pumps:
                await asyncio.wait(pumps, timeout=EXEC_DRAIN)
        finally:
            for task in pumps + [reader]:
                task.cancel()
            await asyncio.gather(*pumps, reader, return_exceptions=True)
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f:
                    f.close()
            if master >= 0:
                os.close(master)
        return code

    async def _pump(self, fd: int, channel: int) -> None:
        async for chunk in read_chunks(fd):
            await self.send(channel, chunk)

    async def _read_client(self, stdin_fd: int, master: int, proc: subprocess.Popen) -> None:
        """Client messages: stdin data, v5 stdin close, resize. The client going away kills the command."""
        stdin_open = stdin_fd >= 0 and self.want["stdin"]
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                channel, data = channels.unframe(msg.data)
            except channels.ProtocolError:
                continue
            if channel == channels.STDIN and stdin_open:
                try:
                    await write_all(stdin_fd, data)
                except OSError:   # the command closed its stdin
                    stdin_open = False
            elif channel == channels.CLOSE and self.v5 and data[:1] == bytes([channels.STDIN]) and stdin_open:
                stdin_open = False
                if master < 0 and proc.stdin:
                    proc.stdin.close()
                elif master >= 0:
                    await write_all(master, b"\x04")   # a terminal's EOF: ^D
            elif channel == channels.RESIZE and master >= 0:
                try:
                    size = json.loads(data)
                    fcntl.ioctl(master, termios.TIOCSWINSZ,
                                struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0))
                except (ValueError, KeyError, TypeError, OSError):
                    pass
        if proc.poll() is None:   # the connection ended before the command
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---- port-forward ----------------------------------------------------------------------------------------------------
class PortForwardSession:
    """One WebSocket, one connection per requested port to localhost:PORT in the pod's network namespace."""

    def __init__(self, ws: web.WebSocketResponse, pod: dict, netns: str, ports: list[int]) -> None:
        self.ws, self.pod, self.netns, self.ports = ws, pod, netns, ports
        self._send_lock = asyncio.Lock()
        self.writers: dict[int, asyncio.StreamWriter] = {}

    async def send(self, channel: int, data: bytes) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                await self.ws.send_bytes(channels.frame(channel, data))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for i, port in enumerate(self.ports):
            for channel in channels.port_channels(i):
                await self.send(channel, channels.port_prefix(port))
        pumps = []
        for i, port in enumerate(self.ports):
            data_ch, err_ch = channels.port_channels(i)
            try:
                sock = await loop.run_in_executor(None, self._dial, port)
                reader, writer = await asyncio.open_connection(sock=sock)
            except OSError as exc:
                meta = self.pod["metadata"]
                await self.send(err_ch, f"error forwarding port {port} to pod {meta['uid']}, uid : failed to "
                                        f"connect to localhost:{port} inside namespace of {meta['name']}: "
                                        f"{exc.strerror or exc}".encode())
                continue
            self.writers[data_ch] = writer
            pumps.append(asyncio.ensure_future(self._pump(reader, data_ch)))
        client = asyncio.ensure_future(self._read_client())
        if pumps:
            await asyncio.wait([client, *pumps], return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(0.1)   # the error messages are out; nothing to carry
        for task in [client, *pumps]:
            task.cancel()
        await asyncio.gather(client, *pumps, return_exceptions=True)
        for writer in self.writers.values():
            writer.close()
        await self.ws.close()

    def _dial(self, port: int) -> socket.socket:
        """A TCP connection to localhost:`port` made from inside the pod's network namespace (on a thread of its
        own: the server's threads stay in the node's namespace)."""
        sock = call_in_netns(self.netns, lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
        sock.settimeout(None)
        return sock

    async def _pump(self, reader: asyncio.StreamReader, channel: int) -> None:
        while data := await reader.read(65536):
            await self.send(channel, data)

    async def _read_client(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                channel, data = channels.unframe(msg.data)
            except channels.ProtocolError:
                continue
            writer = self.writers.get(channel)
            if writer is not None and data:
                writer.write(data)
                await writer.drain()


# ---- logs --------------------------------------------------------------------------------------------------------
async def follow_log(current: ContainerProcess, tail: int | None) -> AsyncIterator[tuple[bytes, float]]:
    """(chunk, time) of a container's log: what is there (the last `tail` lines), then what it writes, until the
    attempt has exited and everything is read. Follows the shim's rotation (`<n>.log` → `<n>.log.1`)."""
    path = current.log_path
    f = _open_or_wait(path)
    try:
        old = b""
        try:
            with open(path + ".1", "rb") as rotated:   # noqa: ASYNC230 - a local file of at most 5 MiB
                old = rotated.read()
        except FileNotFoundError:
            pass
        first = old + (f.read() if f else b"")
        first = tail_lines(first, tail) if tail is not None else first
        if first:
            yield first, _mtime(path)
        while True:
            exited = current.exit_status() is not None    # look before reading: what it wrote before exiting counts
            if f is None:
                f = _open_or_wait(path)
            chunk = f.read(65536) if f else b""
            if chunk:
                yield chunk, time.time()
                continue
            if f is not None and _replaced(f, path):
                f.close()
                f = _open_or_wait(path)
                continue
            if exited:
                return
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        if f:
            f.close()


def _open_or_wait(path: str):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _replaced(f, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return time.time()


def tail_lines(data: bytes, n: int) -> bytes:
    """The last `n` lines of `data` (a final line without a newline counts)."""
    if n == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


def rfc3339_nano(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LineStamper:
    """Prefixes every line with an RFC 3339 time (`timestamps=true`). kemu's log files hold no per-line times:
    lines already on disk get the file's last write time, lines read while following the time they were read."""

    def __init__(self) -> None:
        self.at_line_start = True

    def feed(self, chunk: bytes, when: float) -> bytes:
        prefix = rfc3339_nano(when).encode() + b" "
        out = bytearray()
        for line in chunk.splitlines(keepends=True):
            if self.at_line_start:
                out += prefix
            out += line
            self.at_line_start = line.endswith(b"\n")
        return bytes(out)


# ---- fds and HTTP helpers ----------------------------------------------------------------------------------------
async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """What `fd` delivers until EOF (or EIO: a pty whose other side is gone), without blocking the loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                readable.clear()
                await readable.wait()
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            yield data
    finally:
        loop.remove_reader(fd)


async def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` without blocking the loop (waits while a pipe is full)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            writable = asyncio.Event()
            loop.add_writer(fd, writable.set)
            try:
                await writable.wait()
            finally:
                loop.remove_writer(fd)


async def wait_exit(pid: int) -> None:
    """Until process `pid` has exited (a pidfd becomes readable); the caller reaps it."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    done = asyncio.Event()
    loop.add_reader(fd, done.set)
    try:
        await done.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _upgrade(request: web.Request, protocols: tuple[str, ...]) -> web.WebSocketResponse:
    """Accept the WebSocket if the client speaks one of `protocols` (its own order of preference)."""
    ws = web.WebSocketResponse(protocols=protocols, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise HTTPStatus(400, "BadRequest", f"{request.path.split('/')[1]} needs a WebSocket upgrade "
                                            f"(Sec-WebSocket-Protocol: {', '.join(protocols)})")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if not any(p in protocols for p in offered):
        raise HTTPStatus(400, "BadRequest", f"unsupported subprotocol {offered or 'none'}: use one of "
                                            f"{', '.join(protocols)}")
    await ws.prepare(request)
    return ws


def flag(query, key: str) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it (1, t, true; absent is false)."""
    return query.get(key, "").lower() in ("1", "t", "true")


def _non_negative(query, key: str) -> int | None:
    value = query.get(key)
    if value is None:
        return None
    if not value.isdigit():
        raise HTTPStatus(400, "BadRequest", f"{key}: {value!r} must be a non-negative integer")
    return int(value)


class HTTPStatus(Exception):
    """An error answered as a metav1.Status (the shape kubectl prints as `Error from server (Reason): message`)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> web.Response:
        return status_response(self.code, self.reason, self.message)


def status_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)
