"""One contract for every Store backend: SQLiteStore and EtcdStore (a real etcd on a unix socket, no TCP, no root)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from kemu.store import Compacted, Compare, Delete, EtcdStore, Put, SQLiteStore, Store
from kemu.store.etcd import parse_url, prefix_end, remove_stale_sockets, server_argv, wait_ready


@pytest.fixture(scope="module")
def etcd_url(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian: etcd-server)")
    workdir = tmp_path_factory.mktemp("etcd")
    proc = subprocess.Popen(server_argv("contract", str(workdir / "data"), ["unix://client.sock:0"]), cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "etcd.log", "wb"))
    url = f"etcd+unix://{workdir}/client.sock:0"
    try:
        wait_ready(EtcdStore(url))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=["sqlite", "etcd"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s: Store = SQLiteStore(str(tmp_path / "store.db"), keep_events=5)
    else:
        s = EtcdStore(request.getfixturevalue("etcd_url"))
    yield s
    s.close()


@pytest.fixture
def prefix() -> str:
    """Every test works under its own prefix (the etcd server is shared by the module)."""
    return f"/t{uuid.uuid4().hex[:8]}/"


def compact_past(store: Store, prefix: str, revision: int) -> None:
    """Make the store forget history up to at least `revision`, the way each backend does it in production."""
    if isinstance(store, EtcdStore):
        store.compact(store.put(prefix + "filler", b"x").revision)
        return
    while True:   # SQLiteStore compacts every 1000 revisions to its last keep_events changes
        rev = store.put(prefix + "filler", b"x").revision
        if rev % 1000 == 0 and rev > revision + store.keep_events:
            return


def drain(watcher, count: int, timeout: float = 5.0) -> list:
    events: list = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += watcher.next_batch(0.2)
    return events


def test_create_only_if_absent_and_update_only_if_unchanged(store, prefix):
    key = prefix + "a"
    first = store.txn([Compare(key, 0)], [Put(key, b"1")])
    assert first.succeeded and first.revisions == {key: first.revision}
    assert not store.txn([Compare(key, 0)], [Put(key, b"2")]).succeeded
    assert store.get(key).value == b"1"
    assert not store.put(key, b"3", expect_mod_revision=first.revision - 1).succeeded
    second = store.put(key, b"4", expect_mod_revision=first.revision)
    assert second.succeeded and second.revision > first.revision
    kv = store.get(key)
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"4", first.revision, second.revision, 2)


def test_failure_branch_and_multi_key_atomicity(store, prefix):
    a, b, flag = prefix + "a", prefix + "b", prefix + "flag"
    store.put(a, b"x")
    res = store.txn([Compare(a, 0)], [Put(b, b"never")], [Put(flag, b"lost"), Delete(a)])
    assert not res.succeeded and res.revisions == {flag: res.revision, a: 0}
    assert store.get(b) is None and store.get(a) is None and store.get(flag).value == b"lost"
    both = store.txn([], [Put(a, b"1"), Put(b, b"2")])
    assert store.get(a).mod_revision == store.get(b).mod_revision == both.revision


def test_range_is_a_sorted_prefix_scan_at_one_revision(store, prefix):
    for name in ("c", "a", "b/x"):
        store.put(prefix + name, name.encode())
    store.put(prefix[:-1] + "-sibling", b"not under the prefix")
    kvs, rev = store.range(prefix)
    assert [kv.key for kv in kvs] == [prefix + "a", prefix + "b/x", prefix + "c"]
    assert rev == store.revision() and rev >= max(kv.mod_revision for kv in kvs)
    assert store.get(prefix + "missing") is None
    assert store.range(prefix + "nothing/") == ([], store.revision())


def test_watch_delivers_every_change_in_revision_order_with_prev_values(store, prefix):
    start = store.revision() + 1
    watcher = store.watch(prefix, start)
    try:
        store.put(prefix + "k", b"1")
        store.put(prefix + "other-prefix-is-ignored"[:0] + "k", b"2")
        store.put("/elsewhere/k", b"ignored")
        store.txn([], [Put(prefix + "m", b"m"), Delete(prefix + "k")])
        events = drain(watcher, 4)
    finally:
        watcher.close()
    assert [(e.type, e.key[len(prefix):], e.value, e.prev_value) for e in events] == [
        ("PUT", "k", b"1", None), ("PUT", "k", b"2", b"1"), ("PUT", "m", b"m", None), ("DELETE", "k", None, b"2")]
    revs = [e.revision for e in events]
    assert revs == sorted(revs) and revs[0] >= start and revs[2] == revs[3]


def test_watch_from_an_old_revision_replays_history(store, prefix):
    first = store.put(prefix + "k", b"1").revision
    store.put(prefix + "k", b"2")
    watcher = store.watch(prefix, first)
    try:
        assert [e.value for e in drain(watcher, 2)] == [b"1", b"2"]
        assert watcher.next_batch(0.2) == []
    finally:
        watcher.close()


def test_watch_from_a_compacted_revision_raises_compacted(store, prefix):
    old = store.put(prefix + "k", b"old").revision
    compact_past(store, prefix, old)
    watcher = store.watch(prefix, old)
    try:
        with pytest.raises(Compacted):
            drain(watcher, 1)
    finally:
        watcher.close()
    fresh = store.watch(prefix, store.revision() + 1)   # a relist + watch from now works again
    try:
        store.put(prefix + "k", b"new")
        assert [e.value for e in drain(fresh, 1)] == [b"new"]
    finally:
        fresh.close()


def test_etcd_url_forms():
    assert [str(e) for e in parse_url("etcd://10.0.0.1:2379,10.0.0.2")] == ["http://10.0.0.1:2379",
                                                                           "http://10.0.0.2:2379"]
    tls = parse_url("etcds://etcd.example:2379?ca=/ca.pem&cert=/c.pem&key=/k.pem")[0]
    assert (tls.scheme, tls.ca, tls.cert, tls.key) == ("https", "/ca.pem", "/c.pem", "/k.pem")
    assert str(parse_url("etcd+unix:///run/kemu/labs/x/etcd.sock:0")[0]) == "unix:///run/kemu/labs/x/etcd.sock:0"
    with pytest.raises(ValueError, match="unknown parameter 'cacert'"):
        parse_url("etcds://h:2379?cacert=/x")
    assert prefix_end("/registry/pods/") == b"/registry/pods0" and prefix_end("") == b"\0"


def test_etcd_calls_fail_clearly_when_nothing_listens(tmp_path):
    store = EtcdStore(f"etcd+unix://{tmp_path}/none.sock", retry_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="unreachable for 0s"):
        store.get("/x")
    assert time.monotonic() - started < 2
    assert not os.path.exists(tmp_path / "none.sock")


def test_etcd_watch_resumes_after_an_etcd_restart_without_losing_or_repeating_events(tmp_path):
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian: etcd-server)")
    argv = server_argv("restart", str(tmp_path / "data"), ["unix://client.sock:0"])
    url = f"etcd+unix://{tmp_path}/client.sock:0"

    def start() -> subprocess.Popen:
        remove_stale_sockets(str(tmp_path))   # what a SIGKILLed etcd leaves behind
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(EtcdStore(url))
        return proc
    proc = start()
    store = EtcdStore(url, retry_timeout=15)
    watcher = store.watch("/w/", store.revision() + 1)
    try:
        store.put("/w/k", b"1")
        assert [e.value for e in drain(watcher, 1)] == [b"1"]
        proc.kill()
        proc.wait()
        proc = start()                     # same data dir: revisions continue
        store.put("/w/k", b"2")            # (this call also tells the watcher to reconnect at once)
        store.put("/w/k", b"3")
        assert [e.value for e in drain(watcher, 2)] == [b"2", b"3"]
        assert watcher.next_batch(0.3) == []
    finally:
        watcher.close()
        proc.kill()
        proc.wait()
