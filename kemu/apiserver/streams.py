"""The pod subresources that stream: `log` (chunked text), `exec` and `attach` (WebSocket `v5.channel.k8s.io` /
`v4.channel.k8s.io`), `portforward` (WebSocket `SPDY/3.1+portforward.k8s.io` from kubectl 1.31+, or
`v4.channel.k8s.io?ports=N` from the Python client). The API server checks the pod and container as the
kube-apiserver does, then proxies to the pod's node agent server (kemu.apiserver.egress: from inside the lab,
with the apiserver-kubelet-client certificate), which speaks the channel protocols (kemu.client.channels).
Each handler takes the request, the ResourceAPI (`api.client`: the store's Client) and the Target.
kubectl's SPDY port-forward streams are translated to one v4 WebSocket per forwarded connection."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType, web

from kemu.apiserver import spdy
from kemu.apiserver.egress import EGRESS
from kemu.apiserver.errors import APIError, bad_request, not_found
from kemu.apiserver.resources import Target
from kemu.client import Client, channels

SPDY_PORT_FORWARD = "SPDY/3.1+portforward.k8s.io"
LOG_OPTIONS = ("follow", "previous", "tailLines", "timestamps", "sinceSeconds")


# ---- the pod, its container, its node -------------------------------------------------------------------------------
def _pod(client: Client, target: Target) -> dict:
    pod = client.get("Pod", target.namespace, target.name)
    if pod is None:
        raise not_found(target.kind, target.name)
    return pod


def _container(pod: dict, name: str) -> str:
    """The container a request names (the only one when it names none), as the kube-apiserver chooses it."""
    spec, pod_name = pod["spec"], pod["metadata"]["name"]
    names = [c["name"] for c in spec["containers"]]
    init = [c["name"] for c in spec.get("initContainers") or []]
    if not name:
        if len(names) == 1:
            return names[0]
        message = f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise bad_request(message)
    if name not in names + init:
        raise bad_request(f"container {name} is not valid for pod {pod_name}")
    return name


def _node_url(request: web.Request, client: Client, pod: dict, path: str) -> str:
    node = pod["spec"].get("nodeName")
    if not node:
        raise bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    return request.app[EGRESS].node_url(client, node, path)


def _running(pod: dict, what: str) -> None:
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise bad_request(f"cannot {what} a container in a completed pod; current phase is {phase}")


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


async def _node_error(session: aiohttp.ClientSession, url: str, params) -> web.Response:
    """The node's answer to a plain GET of `url`: its Status when the target is wrong (WebSocket handshakes
    lose the body), else its own "needs a WebSocket upgrade"."""
    async with session.get(url, params=params) as answer:
        return web.Response(status=max(answer.status, 400), body=await answer.read(),
                            content_type="application/json")


def _offered(request: web.Request) -> list[str]:
    return [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


# ---- log ------------------------------------------------------------------------------------------------------------
async def log(request: web.Request, api, target: Target) -> web.StreamResponse:
    """GET pods/NAME/log: the node's containerLogs, streamed as it arrives (`follow`); `limitBytes` cut here."""
    if request.method != "GET":
        raise APIError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")
    client = api.client
    pod = _pod(client, target)
    q = request.query
    container = _container(pod, q.get("container", ""))
    limit = q.get("limitBytes")
    if limit is not None and (not limit.isdigit() or int(limit) == 0):
        raise APIError(422, f'PodLogOptions "{target.name}" is invalid: limitBytes: Invalid value: {limit}: must be '
                            "greater than 0", "Invalid")
    left = int(limit) if limit else None
    url = _node_url(request, client, pod, _path("containerLogs", target.namespace or "", target.name, container))
    params = [(k, q[k]) for k in LOG_OPTIONS if k in q]
    async with request.app[EGRESS].kubelet().get(url, params=params) as upstream:
        if upstream.status >= 400:
            return web.Response(status=upstream.status, body=await upstream.read(), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                if left is not None:
                    chunk, left = chunk[:left], left - len(chunk[:left])
                await response.write(chunk)
                if left == 0:
                    break
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


# ---- exec / attach --------------------------------------------------------------------------------------------------
async def exec_(request: web.Request, api, target: Target) -> web.StreamResponse:
    """pods/NAME/exec: a WebSocket relayed message for message to the node's /exec (the node runs the command and
    writes its exit status on the error channel)."""
    client = api.client
    pod = _pod(client, target)
    q = request.query
    container = _container(pod, q.get("container", ""))
    _running(pod, "exec into")
    if not q.getall("command", []):
        raise bad_request("you must specify at least 1 command")
    url = _node_url(request, client, pod, _path("exec", target.namespace or "", target.name, container))
    params = [(k, v) for k, v in q.items() if k in ("command", "stdin", "stdout", "stderr", "tty")]
    return await _relay(request, url, params)


async def attach(request: web.Request, api, target: Target) -> web.StreamResponse:
    """pods/NAME/attach: kemu's containers have no attachable stdin, so attach streams the container's output
    from now on (stdout channel) until it exits, then reports Success on the error channel."""
    client = api.client
    pod = _pod(client, target)
    q = request.query
    container = _container(pod, q.get("container", ""))
    _running(pod, "attach to")
    url = _node_url(request, client, pod, _path("containerLogs", target.namespace or "", target.name, container))
    if not _is_websocket(request):
        raise bad_request("Upgrade request required")
    async with request.app[EGRESS].kubelet().get(url, params={"follow": "true", "tailLines": "0"}) as upstream:
        if upstream.status >= 400:
            return web.Response(status=upstream.status, body=await upstream.read(), content_type="application/json")
        ws = web.WebSocketResponse(protocols=channels.EXEC_PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)

        async def drain_client() -> None:
            async for _ in ws:      # stdin and resize have nowhere to go; a close ends the attach
                pass
        client_task = asyncio.ensure_future(drain_client())
        try:
            async for chunk in upstream.content.iter_any():
                if client_task.done():
                    break
                await ws.send_bytes(channels.frame(channels.STDOUT, chunk))
            if not ws.closed:
                await ws.send_bytes(channels.frame(channels.ERROR, json.dumps(channels.exit_status(0)).encode()))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            client_task.cancel()
            await ws.close()
        return ws


async def _relay(request: web.Request, url: str, params) -> web.StreamResponse:
    """Connect to the node's WebSocket at `url` offering the client's subprotocols, answer the client with the
    one the node chose, then copy messages both ways until either side closes."""
    session = request.app[EGRESS].kubelet()
    if not _is_websocket(request):
        return await _node_error(session, url, params)
    try:
        upstream = await session.ws_connect(url, params=params, protocols=_offered(request), max_msg_size=0)
    except aiohttp.WSServerHandshakeError:
        return await _node_error(session, url, params)
    except aiohttp.ClientError as exc:
        raise APIError(500, f"error dialing backend: {exc}", "InternalError") from None
    ws = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (), max_msg_size=0)
    await ws.prepare(request)
    await _pipe(ws, upstream)
    return ws


async def _pipe(ws: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async def copy(source, sink) -> None:
        async for msg in source:
            if msg.type == WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:    # the Python client writes stdin as text frames
                await sink.send_bytes(msg.data.encode())
    down = asyncio.ensure_future(copy(upstream, ws))
    up = asyncio.ensure_future(copy(ws, upstream))
    try:
        await asyncio.wait([down, up], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (down, up):
            task.cancel()
        await asyncio.gather(down, up, return_exceptions=True)
        await upstream.close()
        await ws.close()


# ---- port-forward ---------------------------------------------------------------------------------------------------
async def portforward(request: web.Request, api, target: Target) -> web.StreamResponse:
    """pods/NAME/portforward: SPDY over WebSocket (kubectl) or the v4 channel protocol with `?ports=` (relayed)."""
    client = api.client
    pod = _pod(client, target)
    _running(pod, "port-forward to")
    url = _node_url(request, client, pod, _path("portForward", target.namespace or "", target.name))
    if SPDY_PORT_FORWARD not in _offered(request):
        return await _relay(request, url, [("ports", p) for p in request.query.getall("ports", [])])
    ws = web.WebSocketResponse(protocols=[SPDY_PORT_FORWARD], max_msg_size=0)
    await ws.prepare(request)
    await SPDYPortForward(ws, request.app[EGRESS].kubelet(), url, pod).run()
    return ws


@dataclass
class _Pair:
    """One forwarded connection: the client's data and error streams (same requestid) and the node WebSocket."""
    port: int
    data_id: int = 0
    error_id: int = 0
    node: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    task: asyncio.Task | None = None


class SPDYPortForward:
    """kubelet's SPDY port-forward server, in front of the node's v4 WebSocket: per requestid an error and a data
    stream (headers streamtype, port, requestid); the data stream carries the connection, the error stream the
    failure text; both end with FIN when the pod's side closes. Pings are answered."""

    def __init__(self, ws: web.WebSocketResponse, session: aiohttp.ClientSession, url: str, pod: dict) -> None:
        self.ws, self.session, self.url, self.pod = ws, session, url, pod
        self.framer = spdy.Framer()
        self.pairs: dict[str, _Pair] = {}
        self.streams: dict[int, _Pair] = {}
        self._lock = asyncio.Lock()

    async def send(self, data: bytes) -> None:
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_bytes(data)

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                for frame in self.framer.feed(msg.data):
                    if frame.type == spdy.GOAWAY:
                        return
                    await self.on_frame(frame)
        except spdy.SPDYError:
            await self.send(self.framer.goaway(0, 1))
        finally:
            for pair in self.pairs.values():
                await self._close_node(pair)
                if pair.task:
                    pair.task.cancel()
            await self.ws.close()

    async def on_frame(self, frame: spdy.Frame) -> None:
        if frame.type == spdy.SYN_STREAM:
            await self.send(self.framer.syn_reply(frame.stream_id))
            await self.open_stream(frame)
        elif frame.type == spdy.DATA:
            pair = self.streams.get(frame.stream_id)
            if pair is None or frame.stream_id != pair.data_id:
                return                       # the client writes nothing meaningful on the error stream
            node = await pair.node
            if node is None:
                return
            if frame.data:
                await node.send_bytes(channels.frame(0, frame.data))
            if frame.fin:                    # the local connection ended: v4 cannot half-close, so end it all
                await node.close()
        elif frame.type == spdy.RST_STREAM:
            pair = self.streams.pop(frame.stream_id, None)
            if pair is not None:
                await self._close_node(pair)
        elif frame.type == spdy.PING:
            await self.send(self.framer.ping(frame.ping_id))

    async def open_stream(self, frame: spdy.Frame) -> None:
        kind, port, request_id = frame.header("streamtype"), frame.header("port"), frame.header("requestid")
        if kind not in ("data", "error") or not port.isdigit() or not 0 < int(port) < 65536:
            await self.send(self.framer.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        pair = self.pairs.setdefault(request_id, _Pair(int(port)))
        self.streams[frame.stream_id] = pair
        if kind == "data":
            pair.data_id = frame.stream_id
        else:
            pair.error_id = frame.stream_id
        if pair.data_id and pair.error_id and pair.task is None:
            pair.task = asyncio.ensure_future(self.forward(pair))

    async def forward(self, pair: _Pair) -> None:
        """Open the node WebSocket for `pair.port`, copy what the pod sends, FIN both streams at the end."""
        try:
            node = await self.session.ws_connect(self.url, params={"ports": str(pair.port)},
                                                 protocols=channels.PORT_FORWARD_PROTOCOLS, max_msg_size=0)
        except aiohttp.ClientError as exc:
            pair.node.set_result(None)
            await self.send(self.framer.data(pair.error_id, f"error forwarding port {pair.port} to pod "
                                             f"{self.pod['metadata']['uid']}: {exc}".encode()))
            await self._finish(pair)
            return
        pair.node.set_result(node)
        seen: set[int] = set()
        try:
            async for msg in node:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = channels.unframe(msg.data)
                if channel not in seen:      # each channel's first message starts with the port
                    seen.add(channel)
                    data = data[2:]
                if data:
                    await self.send(self.framer.data(pair.data_id if channel == 0 else pair.error_id, data))
        finally:
            await node.close()
            await self._finish(pair)

    async def _finish(self, pair: _Pair) -> None:
        if self.ws.closed:
            return
        await self.send(self.framer.data(pair.data_id, fin=True) + self.framer.data(pair.error_id, fin=True))

    @staticmethod
    async def _close_node(pair: _Pair) -> None:
        if pair.node.done() and pair.node.result() is not None:
            await pair.node.result().close()
