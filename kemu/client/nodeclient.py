"""A client of node agents' servers (the kubelet API on port 10250): container logs, exec and port-forward over the
Kubernetes channel protocol (kemu.client.channels), JSON endpoints such as stats. Used by the CLI (the API server
has its own asyncio client, kemu.apiserver.egress). http.client and ssl, and the `websockets` library's sync
client over the socket we connected (about 35 ms of imports), so a `kemu exec` starts fast.

It finds a node's address and port in the Node object (status.addresses InternalIP,
status.daemonEndpoints.kubeletEndpoint.Port) and authenticates with a client certificate, verifying the node's
serving certificate (SAN: the node IP) against the cluster CA.

Where it connects from matters: a lab's nodes live on 192.168.56.0/24 inside the lab's namespaces, and nothing may
send a packet there from the machine's root network namespace. Every TCP connection comes from `connect`, which
the caller chooses: for a lab, one that makes the socket inside the lab's `kemu-<lab>-net` namespace (kemu.cli's
node_client: runtime.linux.call_in_netns); `direct` only for a real host-mode node, e.g. a Vagrant VM. There is
no default: whoever makes a NodeClient says where its packets start.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from kemu.client import channels

Connect = Callable[[str, int, float], socket.socket]   # (host, port, timeout) -> a connected TCP socket


def direct(host: str, port: int, timeout: float) -> socket.socket:
    """Connect from the caller's own network namespace: only for nodes that are real hosts (a Vagrant VM)."""
    return socket.create_connection((host, port), timeout=timeout)


class NodeClientError(RuntimeError):
    """The node could not be reached or answered with an error; the message is what a user should read."""


@dataclass(frozen=True)
class ClientTLS:
    ca: str      # the CA that signed node serving certificates (the lab CA)
    cert: str    # the client certificate to present (CN = user, O = groups)
    key: str


def node_endpoint(node: dict) -> tuple[str, int]:
    """(InternalIP, agent port) of a Node object; NodeClientError if it advertises none."""
    status = node.get("status") or {}
    ip = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    if not ip or not port:
        raise NodeClientError(f"node {node['metadata']['name']} advertises no agent endpoint (status.addresses "
                              "InternalIP, status.daemonEndpoints.kubeletEndpoint.Port): its agent has no serving "
                              "certificate (NodeConfig tls_cert_file) or is not running")
    return ip, int(port)


class NodeClient:
    """One node agent's server at https://`host`:`port`."""

    def __init__(self, node_name: str, host: str, port: int, tls: ClientTLS, connect: Connect,
                 timeout: float = 10.0) -> None:
        self.node_name, self.host, self.port, self.tls = node_name, host, port, tls
        self.connect = connect
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None

    @classmethod
    def for_node(cls, client, node_name: str, tls: ClientTLS, connect: Connect) -> NodeClient:
        """From the Node object in the store (`client`: a kemu.client.Client)."""
        node = client.get("Node", None, node_name)
        if node is None:
            raise NodeClientError(f'nodes "{node_name}" not found')
        return cls(node_name, *node_endpoint(node), tls, connect)

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=self.tls.ca)
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
            self._ssl = ctx   # check_hostname stays on: the serving certificate carries the node IP
        return self._ssl

    # ---- connections ---------------------------------------------------------------------------------------------
    def dial(self) -> ssl.SSLSocket:
        """A TLS connection to the node over a TCP connection from `connect` (see the module doc)."""
        try:
            sock = self.connect(self.host, self.port, self.timeout)
        except OSError as exc:
            raise NodeClientError(f"cannot reach the agent of node {self.node_name} at {self.base_url}: {exc}") \
                from None
        try:
            tls = self.ssl_context().wrap_socket(sock, server_hostname=self.host)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise NodeClientError(f"TLS with the agent of node {self.node_name} failed: {exc}") from None
        tls.settimeout(None)
        return tls

    def _path(self, *parts: str, query: list[tuple[str, str]] | None = None) -> str:
        return "/" + "/".join(quote(p, safe="") for p in parts) + (f"?{urlencode(query)}" if query else "")

    def _get(self, path: str) -> http.client.HTTPResponse:
        conn = _Connection(self)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NodeClientError(f"the agent of node {self.node_name}: {exc}") from None
        if resp.status >= 400:
            body = resp.read()
            conn.close()
            raise NodeClientError(error_message(resp.status, body))
        return resp

    def _websocket(self, path: str, protocols: tuple[str, ...]) -> ClientConnection:
        """A WebSocket over a TLS connection from `dial` (the URI is ws://: TLS is already done)."""
        sock = self.dial()
        try:
            return ws_connect(f"ws://{self.host}:{self.port}{path}", sock=sock, subprotocols=list(protocols),
                              max_size=None, compression=None, open_timeout=self.timeout, close_timeout=2)
        except InvalidStatus as exc:
            sock.close()
            reason = error_message(exc.response.status_code, exc.response.body or b"").split("): ", 1)[-1]
            raise NodeClientError(f"unable to upgrade connection: {reason}") from None
        except InvalidHandshake as exc:
            sock.close()
            raise NodeClientError(f"unable to upgrade connection: {exc}") from None
        except OSError as exc:
            sock.close()
            raise NodeClientError(f"the agent of node {self.node_name}: {exc}") from None

    # ---- endpoints -----------------------------------------------------------------------------------------------
    def get_json(self, path: str) -> dict:
        """GET a JSON endpoint, e.g. /stats/summary."""
        resp = self._get(path)
        try:
            return json.loads(resp.read())
        finally:
            resp.close()

    def logs(self, namespace: str, pod: str, container: str, out: BinaryIO, follow: bool = False,
             previous: bool = False, tail: int | None = None, timestamps: bool = False) -> None:
        """Copy the container's log to `out` (as it arrives when following; returns when the container exits)."""
        query = [(k, "true") for k, v in (("follow", follow), ("previous", previous), ("timestamps", timestamps))
                 if v] + ([("tailLines", str(tail))] if tail is not None else [])
        resp = self._get(self._path("containerLogs", namespace, pod, container, query=query))
        try:
            while chunk := resp.read1(65536):
                out.write(chunk)
                out.flush()
        finally:
            resp.close()

    def exec(self, namespace: str, pod: str, container: str, command: list[str], stdin: BinaryIO | None,
             stdout: BinaryIO, stderr: BinaryIO, tty: bool = False) -> int:
        """Run `command` in the container, copying `stdin` (if given) to it and its output to `stdout`/`stderr`;
        returns its exit code (from the status on the error channel)."""
        query = [("command", c) for c in command] + [("stdin", "true" if stdin else "false"), ("stdout", "true"),
                                                     ("stderr", "false" if tty else "true"),
                                                     ("tty", "true" if tty else "false")]
        ws = self._websocket(self._path("exec", namespace, pod, container, query=query), channels.EXEC_PROTOCOLS)
        status = None

        def on_message(message: bytes) -> bool | None:
            nonlocal status
            channel, data = channels.unframe(message)
            if channel == channels.STDOUT:
                stdout.write(data)
                stdout.flush()
            elif channel == channels.STDERR:
                stderr.write(data)
                stderr.flush()
            elif channel == channels.ERROR:
                status = json.loads(data)
                return True     # the status is the server's last frame: done, whether or not the close follows
            return None

        def on_input(data: bytes) -> None:
            if data:
                ws.send(channels.frame(channels.STDIN, data))
            elif ws.subprotocol == channels.V5:   # stdin's EOF: the command sees it too (v4 cannot say it)
                ws.send(channels.close_frame(channels.STDIN))

        try:
            _duplex(ws, stdin.fileno() if stdin is not None else None, lambda fd: os.read(fd, 65536), on_input,
                    on_message)
        finally:
            ws.close()
        if status is None:
            raise NodeClientError("the connection to the node closed before the command's exit status arrived")
        try:
            return channels.exit_code_of(status)
        except channels.ProtocolError as exc:
            raise NodeClientError(str(exc)) from None

    def port_forward(self, namespace: str, pod: str, forwards: list[tuple[socket.socket, int]],
                     on_connection: Callable[[int], None] | None = None) -> None:
        """Serve the connections accepted on each (listener, remote port) pair (listeners the caller made, in its
        own namespace), each through its own WebSocket to that port of the pod; runs until interrupted."""
        import selectors
        sel = selectors.DefaultSelector()
        for listener, remote in forwards:
            sel.register(listener, selectors.EVENT_READ, remote)
        while True:
            for key, _ in sel.select():
                conn, _ = key.fileobj.accept()
                if on_connection:
                    on_connection(key.fileobj.getsockname()[1])
                threading.Thread(target=self._forward, args=(namespace, pod, conn, key.data), daemon=True,
                                 name="port-forward").start()

    def _forward(self, namespace: str, pod: str, conn: socket.socket, port: int) -> None:
        """One local connection through one WebSocket (data channel 0, error channel 1; the server's first message
        on each is the port). Ends when either side closes: v4 has no half-close."""
        try:
            ws = self._websocket(self._path("portForward", namespace, pod, query=[("ports", str(port))]),
                                 channels.PORT_FORWARD_PROTOCOLS)
        except NodeClientError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            conn.close()
            return
        data_ch, err_ch = channels.port_channels(0)
        seen: set[int] = set()

        def on_message(message: bytes) -> None:
            channel, data = channels.unframe(message)
            if channel not in seen:
                seen.add(channel)
                if data[:2] != channels.port_prefix(port):
                    raise NodeClientError(f"port-forward: channel {channel} did not start with port {port}")
                data = data[2:]
            if channel == data_ch and data:
                conn.sendall(data)
            elif channel == err_ch and data:
                raise NodeClientError(data.decode(errors="replace"))

        def on_input(data: bytes) -> None:
            if not data:
                raise EOFError   # the local side closed
            ws.send(channels.frame(data_ch, data))

        try:
            _duplex(ws, conn.fileno(), lambda _: conn.recv(65536), on_input, on_message)
        except (NodeClientError, channels.ProtocolError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        except OSError:
            pass
        finally:
            ws.close()
            conn.close()


def _duplex(ws: ClientConnection, source: int | None, read: Callable[[int], bytes],
            on_input: Callable[[bytes], None], on_message: Callable[[bytes], bool | None]) -> None:
    """Until the server closes the WebSocket (or `on_message` returns True): its messages to `on_message` (on this
    thread), what `source` delivers to `on_input` (b"" once at its EOF) from a thread of its own (websockets'
    connection is thread-safe); `on_input` raising EOFError closes the WebSocket."""
    def pump() -> None:
        try:
            while True:
                data = read(source)
                on_input(data)
                if not data:
                    return
        except EOFError:
            ws.close()
        except (OSError, ConnectionClosed):
            pass
    if source is not None:
        threading.Thread(target=pump, daemon=True, name="websocket-input").start()
    try:
        for message in ws:
            if on_message(message if isinstance(message, bytes) else message.encode()) is True:
                return
    except ConnectionClosed:
        pass


class _Connection(http.client.HTTPSConnection):
    """http.client over NodeClient.dial (the socket made in the right namespace)."""

    def __init__(self, node: NodeClient) -> None:
        super().__init__(node.host, node.port, context=node.ssl_context())
        self.node = node

    def connect(self) -> None:
        self.sock = self.node.dial()


def error_message(code: int, body: bytes) -> str:
    """kubectl's rendering of an error answer: `Error from server (Reason): message` for a metav1.Status."""
    try:
        status = json.loads(body)
        return f"Error from server ({status.get('reason') or code}): {status['message']}"
    except (ValueError, KeyError, TypeError):
        return f"Error from server ({code}): {body.decode(errors='replace').strip()}"
