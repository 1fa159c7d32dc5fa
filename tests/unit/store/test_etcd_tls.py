"""EtcdStore over TLS with client certificates, against a real etcd (no root).

A throwaway CA, a server certificate for 127.0.0.1 and a client certificate are made with openssl in tmp_path; etcd
listens only on https://127.0.0.1:<free port> with --client-cert-auth (its peer port is a unix socket, as
`server_argv` arranges). The server certificate carries clientAuth as well as serverAuth: etcd 3.4's JSON gateway
dials etcd's own gRPC port with it, and without clientAuth every gateway call fails with "connection reset".
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from kemu.store import Compare, EtcdStore, Put, open_store
from kemu.store.etcd import EtcdError, server_argv, wait_ready

ETCD = "/usr/bin/etcd"
LEAF = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=30, capture_output=True)


def _leaf(name: str, subject: str, extensions: str, cwd) -> None:
    """name.key, name.crt signed by ca.crt/ca.key (EC P-256, one day)."""
    (cwd / f"{name}.ext").write_text(LEAF + extensions)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "1",
             "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd)


def make_pki(pki) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=kemu-test-ca", cwd=pki)
    _leaf("server", "/CN=127.0.0.1", "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n", pki)
    _leaf("client", "/CN=kemu-test-client", "extendedKeyUsage=clientAuth\n", pki)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory):
    """(port, pki dir) of a running etcd that requires client certificates; stopped and removed afterwards."""
    if not os.access(ETCD, os.X_OK):
        pytest.skip(f"{ETCD} is missing (Debian: apt-get install etcd-server)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing (Debian: apt-get install openssl)")
    workdir = tmp_path_factory.mktemp("etcd-tls")
    pki = workdir / "pki"
    pki.mkdir()
    proc = None
    log = None
    try:
        make_pki(pki)
        for _attempt in range(3):      # the free port may be taken before etcd binds it: try another
            port = free_port()
            argv = server_argv("tls", str(workdir / "data"), [f"https://127.0.0.1:{port}"])
            argv[0] = ETCD
            argv += ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
                     "--trusted-ca-file", str(pki / "ca.crt"), "--client-cert-auth"]
            log = open(workdir / "etcd.log", "ab")
            proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)
            url = f"etcds://127.0.0.1:{port}?ca={pki}/ca.crt&cert={pki}/client.crt&key={pki}/client.key"
            try:
                wait_ready(EtcdStore(url), timeout=15.0)
                break
            except EtcdError:
                if proc.poll() is None:      # running but not answering: a real failure
                    raise
                log.close()
                shutil.rmtree(workdir / "data", ignore_errors=True)
        else:
            pytest.fail(f"etcd did not start; see {workdir}/etcd.log")
        yield port, pki
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if log is not None:
            log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def store(etcd_tls):
    port, pki = etcd_tls
    s = open_store(f"etcds://127.0.0.1:{port}?ca={pki}/ca.crt&cert={pki}/client.crt&key={pki}/client.key")
    assert isinstance(s, EtcdStore) and s.endpoints[0].scheme == "https"
    yield s
    s.close()


@pytest.fixture
def prefix() -> str:
    return f"/tls{uuid.uuid4().hex[:8]}/"


def test_put_get_range_over_tls(store, prefix):
    first = store.put(prefix + "a", b"1")
    store.put(prefix + "b", b"2")
    assert first.succeeded
    kv = store.get(prefix + "a")
    assert (kv.value, kv.mod_revision, kv.version) == (b"1", first.revision, 1)
    assert store.get(prefix + "missing") is None
    kvs, revision = store.range(prefix)
    assert [(k.key, k.value) for k in kvs] == [(prefix + "a", b"1"), (prefix + "b", b"2")]
    assert revision == store.revision() >= first.revision + 1


def test_compare_and_swap_txn_over_tls(store, prefix):
    key = prefix + "cas"
    created = store.txn([Compare(key, 0)], [Put(key, b"v1")])
    assert created.succeeded
    stale = store.txn([Compare(key, created.revision - 1)], [Put(key, b"lost")], [Put(prefix + "loser", b"x")])
    assert not stale.succeeded and stale.revisions == {prefix + "loser": stale.revision}
    assert store.get(key).value == b"v1"
    swapped = store.txn([Compare(key, created.revision)], [Put(key, b"v2")])
    assert swapped.succeeded and swapped.revision > created.revision
    assert (store.get(key).value, store.get(key).version) == (b"v2", 2)


def test_watch_sees_put_over_tls(store, prefix):
    watcher = store.watch(prefix, store.revision() + 1)
    try:
        written = store.put(prefix + "w", b"hello")
        events: list = []
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            events = watcher.next_batch(0.2)
        assert [(e.type, e.key, e.value, e.revision) for e in events] == \
            [("PUT", prefix + "w", b"hello", written.revision)]
    finally:
        watcher.close()


@pytest.mark.parametrize("query, expected", [
    ("ca={pki}/ca.crt", "requires a TLS client certificate"),                            # no client cert
    ("cert={pki}/client.crt&key={pki}/client.key", "server certificate is not trusted"),  # system CAs only
    ("ca={pki}/ca.crt&cert={pki}/server.crt&key={pki}/client.key", "cannot load"),        # key of another cert
    ("ca={pki}/nope.crt&cert={pki}/client.crt&key={pki}/client.key", "nope.crt not found"),
])
def test_tls_misconfiguration_fails_fast_and_clearly(etcd_tls, query, expected):
    """A TLS configuration error is not retried for retry_timeout as if etcd were down: it raises at once and
    says what is wrong. (Without a client certificate a TLS 1.3 etcd usually just closes the connection after
    the handshake; the client must still say why.)"""
    port, pki = etcd_tls
    started = time.monotonic()
    for _ in range(5):    # the TLS 1.3 rejection races with our request: several tries, each must be clear
        s = EtcdStore(f"etcds://127.0.0.1:{port}?{query.format(pki=pki)}", retry_timeout=20.0, request_timeout=3.0)
        with pytest.raises(EtcdError, match=expected):
            s.get("/anything")
        s.close()
    assert time.monotonic() - started < 10, "a TLS misconfiguration must not be retried like an outage"
