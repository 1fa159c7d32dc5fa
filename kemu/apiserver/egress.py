"""The API server's outgoing connections into a lab: to node agents' servers (kubelet's :10250, TLS with the
apiserver-kubelet-client certificate) and to pods (the `proxy` subresources). Every socket is made inside the lab's
network namespace (`netns`, the one the server's in-lab listener lives in), never in the machine's root namespace;
without a `netns` (a host-mode node, tests) sockets are made where the server runs."""
from __future__ import annotations

import socket
import ssl

import aiohttp
from aiohttp import web

from kemu.apiserver.errors import APIError
from kemu.client import Client
from kemu.client.nodeclient import ClientTLS, NodeClientError, node_endpoint


class Egress:
    """aiohttp sessions (made on first use, on the running loop) whose sockets start in `netns`."""

    def __init__(self, kubelet_tls: ClientTLS | None, netns: str | None) -> None:
        self.kubelet_tls, self.netns = kubelet_tls, netns
        self._kubelet: aiohttp.ClientSession | None = None
        self._pods: aiohttp.ClientSession | None = None

    def _socket(self, addr_info) -> socket.socket:
        family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
        if self.netns is None:
            return socket.socket(family, type_, proto)
        from runtime.linux import call_in_netns
        return call_in_netns(self.netns, lambda: socket.socket(family, type_, proto))

    def _session(self, tls: ssl.SSLContext | bool) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=tls, socket_factory=self._socket, force_close=True)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=10),
                                     auto_decompress=False)

    def kubelet(self) -> aiohttp.ClientSession:
        """The session to node agents: their serving certificates verified against the lab CA (SAN: node IP)."""
        if self.kubelet_tls is None:
            raise APIError(503, "the API server has no kubelet client certificate (--kubelet-client-certificate)",
                           "ServiceUnavailable")
        if self._kubelet is None:
            ctx = ssl.create_default_context(cafile=self.kubelet_tls.ca)
            ctx.load_cert_chain(self.kubelet_tls.cert, self.kubelet_tls.key)
            self._kubelet = self._session(ctx)
        return self._kubelet

    def pods(self) -> aiohttp.ClientSession:
        """The session to pods and Service endpoints (https ones unverified, as the kube-apiserver's proxy)."""
        if self._pods is None:
            self._pods = self._session(False)
        return self._pods

    def node_url(self, client: Client, node_name: str, path: str) -> str:
        """https://<node InternalIP>:<kubelet port><path>; 503 if the node advertises no agent endpoint."""
        node = client.get("Node", None, node_name)
        if node is None:
            raise APIError(404, f'nodes "{node_name}" not found', "NotFound", {"name": node_name, "kind": "nodes"})
        try:
            ip, port = node_endpoint(node)
        except NodeClientError as exc:
            raise APIError(503, str(exc), "ServiceUnavailable") from None
        return f"https://{ip}:{port}{path}"

    async def close(self) -> None:
        for session in (self._kubelet, self._pods):
            if session is not None:
                await session.close()


EGRESS = web.AppKey("egress", Egress)
