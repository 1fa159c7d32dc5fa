"""kemu's small WebSocket client against aiohttp's server (on loopback): handshake, masking, lengths, refusals."""
import asyncio
import socket
import threading

import pytest
from aiohttp import web

from kemu.client.websocket import HandshakeError, WebSocket


@pytest.fixture
def echo_server():
    """ws://127.0.0.1:PORT/ws echoing each binary message reversed; /refuse answers 400 with a JSON body."""
    async def ws_handler(request):
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"), max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_bytes(msg.data[::-1])
        return ws

    async def refuse(request):
        return web.json_response({"message": "container c is not running"}, status=400)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/refuse", refuse)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_messages_of_every_length_class_round_trip(echo_server):
    sock = socket.create_connection(("127.0.0.1", echo_server))
    ws = WebSocket.connect(sock, "127.0.0.1", "/ws", ("v5.channel.k8s.io", "v4.channel.k8s.io"))
    assert ws.protocol == "v5.channel.k8s.io", "the server picks by the client's order"
    for size in (0, 1, 125, 126, 65535, 65536, 300_000):   # 7-bit, 16-bit and 64-bit lengths
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        ws.send(payload)
        assert ws.receive() == payload[::-1]
    ws.close()
    assert ws.receive() is None
    sock.close()


def test_a_refused_upgrade_carries_the_servers_answer(echo_server):
    sock = socket.create_connection(("127.0.0.1", echo_server))
    with pytest.raises(HandshakeError) as err:
        WebSocket.connect(sock, "127.0.0.1", "/refuse", ("v5.channel.k8s.io",))
    assert err.value.status == 400 and b"container c is not running" in err.value.body
    sock.close()
