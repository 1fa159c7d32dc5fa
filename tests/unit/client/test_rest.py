"""RestClient: the cluster client over HTTPS, against kemu's real API server (TLS, client certificates, RBAC) on
127.0.0.1 — what a node that joined through the API sees: the Client interface and exceptions, status writes, a
node's permissions, and informers (list + watch, re-watch, relist on 410) shared with the store transport."""
from __future__ import annotations

import asyncio
import ssl
import threading
import time

import pytest
from aiohttp import web

from kemu.apiserver.bootstrappolicy import bootstrap_objects
from kemu.apiserver.kubeconfig import admin_kubeconfig, write
from kemu.apiserver.listen import listen
from kemu.apiserver.server import make_app, tls_context
from kemu.client import AlreadyExists, Client, Conflict, Invalid, NamespaceNotFound, NotFound
from kemu.client.daemon import connect
from kemu.client.informer import Informer
from kemu.client.rest import Credentials, Forbidden, RestClient, Unauthorized, load_kubeconfig
from kemu.lab.join import node_daemon_policy, write_node_kubeconfig
from kemu.lab.pki import LabPKI
from kemu.store import Compacted, SQLiteStore

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
       "spec": {"nodeName": "n1", "containers": [{"name": "c", "command": ["sleep", "1"]}]}}


class Server:
    """kemu's API server on a thread: TLS with a throwaway CA, 127.0.0.1:<free port>."""

    def __init__(self, store, pki: LabPKI) -> None:
        serving = pki.issue("apiserver", "kube-apiserver", ip_addresses=("127.0.0.1",), server=True)
        self.ctx = tls_context(serving.cert, serving.key, pki.ca.cert)
        self.store, self.loop = store, asyncio.new_event_loop()
        self.sock = listen("127.0.0.1", 0)
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.runner: web.AppRunner | None = None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.runner = web.AppRunner(make_app(self.store), handle_signals=False, shutdown_timeout=0.5)
            await self.runner.setup()
            await web.SockSite(self.runner, self.sock, ssl_context=self.ctx).start()
        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def cluster(tmp_path):
    store = SQLiteStore(str(tmp_path / "store.db"), keep_events=200)
    admin = Client(store)
    admin.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("default", "kube-system")]
                + bootstrap_objects(["default", "kube-system"]) + node_daemon_policy())
    pki = LabPKI(str(tmp_path / "pki"))
    server = Server(store, pki)
    kubeconfig = write_node_kubeconfig(str(tmp_path / "n1.kubeconfig"), "test", server.url, pki, "n1")
    yield admin, RestClient.from_kubeconfig(kubeconfig, retry_for=2), server, pki, tmp_path
    server.stop()
    store.close()


def test_the_client_interface_over_https_as_a_node(cluster):
    admin, node, _, _, _ = cluster
    assert node.get("Pod", "default", "p") is None
    created = node.create(POD)
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    with pytest.raises(AlreadyExists):
        node.create(POD)
    with pytest.raises(NamespaceNotFound):
        node.create({**POD, "metadata": {"name": "p", "namespace": "nowhere"}})
    with pytest.raises(Invalid) as bad:
        node.create({**POD, "metadata": {"name": "Bad_Name", "namespace": "default"}})
    assert bad.value.problems and bad.value.problems[0][0] == "metadata.name"
    # a status write goes through the status subresource and is seen by the in-process client
    result = node.mutate("Pod", "default", "p", lambda pod: pod.setdefault("status", {}).update(phase="Running"))
    assert result["status"]["phase"] == "Running"
    assert admin.get("Pod", "default", "p")["status"]["phase"] == "Running"
    stale = dict(created, status={"phase": "Failed"})
    with pytest.raises(Conflict):
        node.update(stale)
    items, rev = node.list("Pod", "default", where=lambda p: p["status"].get("phase") == "Running")
    assert [p["metadata"]["name"] for p in items] == ["p"] and rev >= int(result["metadata"]["resourceVersion"])
    assert items[0]["kind"] == "Pod"
    # the node registers itself and posts status; delete is immediate (grace period 0), as kubelet's last delete
    node.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    node.mutate("Node", None, "n1", lambda n: n.setdefault("status", {}).update(
        addresses=[{"type": "InternalIP", "address": "192.168.56.50"}]))
    assert admin.get("Node", None, "n1")["status"]["addresses"][0]["address"] == "192.168.56.50"
    assert node.delete("Pod", "default", "p") is True
    assert admin.get("Pod", "default", "p") is None and node.delete("Pod", "default", "p") is False
    assert node.mutate("Pod", "default", "p", lambda pod: None) is None
    with pytest.raises(NotFound):
        node.update(created)


def test_a_node_may_do_what_its_daemons_need_and_no_more(cluster):
    admin, node, _, _, _ = cluster
    from clusterdns.server import register_endpoint
    register_endpoint(node, "n1", "192.168.56.50")      # the DNS server's kube-dns registration, as a node
    ep = admin.get("Endpoints", "kube-system", "kube-dns")
    assert ep["subsets"][0]["addresses"] == [{"ip": "192.168.56.50", "nodeName": "n1"}]
    assert admin.get("Service", "kube-system", "kube-dns") is not None
    node.list("EndpointSlice")
    node.list("NetworkPolicy")
    with pytest.raises(Forbidden):
        node.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}})
    with pytest.raises(Forbidden):
        node.list("Deployment")
    with pytest.raises(Forbidden):
        node.delete("Namespace", None, "default")


def test_credentials_are_checked(cluster, tmp_path):
    _, _, server, pki, _ = cluster
    other = LabPKI(str(tmp_path / "other"))      # a certificate from another CA is no credential
    path = str(tmp_path / "other.kubeconfig")
    pair = other.issue("x", "system:node:x", ("system:nodes",), client=True)
    write(path, admin_kubeconfig("t", server.url, pki.ca.cert, pair.cert, pair.key))
    with pytest.raises((ConnectionError, ssl.SSLError)):     # the TLS handshake refuses it
        RestClient.from_kubeconfig(path, retry_for=0.5).list("Pod")
    creds = load_kubeconfig(path)
    with pytest.raises(Unauthorized):                          # no certificate: 401
        RestClient(Credentials(server.url, ca_data=creds.ca_data), retry_for=0.5).list("Pod")
    assert creds.server == server.url and creds.cert_data.startswith(b"-----BEGIN CERTIFICATE")
    assert isinstance(connect("", path), RestClient)


def wait(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_one_informer_over_both_transports(cluster):
    admin, node, _, _, _ = cluster
    seen: dict[str, list] = {"store": [], "rest": []}
    informers = {"store": Informer(admin, "Pod", lambda k, o, n: seen["store"].append((k, n and n["status"]))),
                 "rest": Informer(node, "Pod", lambda k, o, n: seen["rest"].append((k, n and n["status"])))}
    admin.create(POD)
    for inf in informers.values():
        inf.start()
        assert inf.synced.wait(5)
    admin.mutate("Pod", "default", "p", lambda pod: pod.setdefault("status", {}).update(phase="Running"))
    admin.delete("Pod", "default", "p")
    wait(lambda: len(seen["rest"]) == 3 and len(seen["store"]) == 3)
    assert seen["rest"] == seen["store"]
    assert [k for k, _ in seen["rest"]] == ["/registry/pods/default/p"] * 3 and seen["rest"][-1][1] is None
    assert informers["rest"].cache == informers["store"].cache == {}
    for inf in informers.values():
        inf.stop()


def test_an_expired_revision_is_compacted_and_the_informer_relists(cluster):
    admin, node, _, _, _ = cluster
    admin.create(POD)
    _, old = node.list("Pod")
    for i in range(1001):         # SQLite compacts every 1000 revisions to the last 200 events: `old` goes
        admin.store.put("/registry/configmaps/default/c", b'{"i": %d}' % i)
    watcher = node.watch("Pod", old)
    try:
        with pytest.raises(Compacted):
            wait(lambda: watcher.next_batch(0.2) or None)
    finally:
        watcher.close()
    inf = Informer(node, "Pod").start()
    assert inf.synced.wait(5) and list(inf.cache) == ["/registry/pods/default/p"]
    inf.stop()
