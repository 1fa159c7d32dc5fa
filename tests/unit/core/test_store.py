"""SQLiteStore keeps etcd's contract: revisions, CAS, prefix range, ordered watch, compaction."""
import threading

import pytest

from kemu.store import Compacted, Compare, Delete, Put, SQLiteStore


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "db"), keep_events=10)
    yield s
    s.close()


def test_revisions_and_versions(store):
    r1 = store.put("/a", b"1").revision
    r2 = store.put("/a", b"2").revision
    kv = store.get("/a")
    assert r2 == r1 + 1
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"2", r1, r2, 2)
    assert store.revision() == r2


def test_compare_and_swap(store):
    assert store.put("/k", b"x", expect_mod_revision=0).succeeded
    assert not store.put("/k", b"y", expect_mod_revision=0).succeeded, "create must fail when the key exists"
    mod = store.get("/k").mod_revision
    assert not store.put("/k", b"y", expect_mod_revision=mod - 1).succeeded
    assert store.put("/k", b"y", expect_mod_revision=mod).succeeded
    assert store.get("/k").value == b"y"


def test_txn_is_atomic(store):
    store.put("/taken", b"1")
    res = store.txn([Compare("/new", 0), Compare("/taken", 0)], [Put("/new", b"n"), Put("/other", b"o")])
    assert not res.succeeded
    assert store.get("/new") is None and store.get("/other") is None


def test_range_is_prefix_exact(store):
    for key in ("/registry/pods/a", "/registry/pods/b", "/registry/podsx/c", "/registry/po"):
        store.put(key, b"v")
    keys = [kv.key for kv in store.range("/registry/pods/")[0]]
    assert keys == ["/registry/pods/a", "/registry/pods/b"]


def test_watch_sees_changes_in_order_from_a_revision(store):
    start = store.put("/w/a", b"1").revision
    watcher = store.watch("/w/", start)
    store.put("/w/b", b"2")
    store.put("/x/ignored", b"3")
    store.txn([], [Delete("/w/a")])
    events = []
    for _ in range(20):
        events += watcher.next_batch(timeout=0.2)
        if len(events) >= 3:
            break
    assert [(e.type, e.key) for e in events] == [("PUT", "/w/a"), ("PUT", "/w/b"), ("DELETE", "/w/a")]
    assert events[2].prev_value == b"1"
    watcher.close()


def test_watch_wakes_on_a_write_from_another_thread(store):
    watcher = store.watch("/t/", store.revision() + 1)
    threading.Timer(0.1, lambda: SQLiteStore(store.path).put("/t/x", b"1")).start()
    events = watcher.next_batch(timeout=3)
    assert [e.key for e in events] == ["/t/x"]
    watcher.close()


def test_compacted_watch_raises(store):
    first = store.put("/c/0", b"0").revision
    for i in range(1, 1100):
        store.put(f"/c/{i % 5}", b"x")
    watcher = store.watch("/c/", first)
    with pytest.raises(Compacted):
        watcher.next_batch(timeout=0.1)
    watcher.close()
