"""EtcdStore refuses what etcd would refuse before sending it, and gives up at once where waiting cannot help."""
from __future__ import annotations

import time

import pytest

from kemu.store import EtcdStore, Put, RequestTooLarge
from kemu.store.etcd import Endpoint, EtcdError


def test_etcd_store_refuses_a_value_over_the_request_limit_without_sending_it(monkeypatch):
    sent = []
    monkeypatch.setattr(EtcdStore, "call", lambda self, path, body: sent.append(path) or {})
    store = EtcdStore("etcd://127.0.0.1:1", retry_timeout=0.2)
    with pytest.raises(RequestTooLarge, match="etcdserver: request is too large"):
        store.txn([], [Put("/registry/configmaps/default/big", b"x" * (2 << 20))])
    assert sent == []


def test_permission_denied_on_the_socket_fails_at_once(monkeypatch):
    def denied(self, timeout):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Endpoint, "connect", denied)
    store = EtcdStore("etcd+unix:///run/kemu/labs/x/etcd/client.sock:0", retry_timeout=5.0)
    start = time.monotonic()
    with pytest.raises(EtcdError) as info:
        store.get("/registry/pods/default/p")
    assert time.monotonic() - start < 1.0
    assert "permission denied" in str(info.value) and "run as root" in str(info.value)
    assert "\n" not in str(info.value)
