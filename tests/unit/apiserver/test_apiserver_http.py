"""The API server in-process over HTTP (plain, on 127.0.0.1 via aiohttp's test server): status codes and Status
bodies as kubectl reads them, nothing stored on errors, dry run, Tables, and the watch stream (encoder, no gaps
after a revision, sendInitialEvents, 410 for a compacted revision, timeoutSeconds)."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kemu.apiserver.server import make_app
from kemu.apiserver.watch import INITIAL_EVENTS_END, encode_event, translate
from kemu.client import Client
from kemu.store import Compacted, Event, SQLiteStore

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "store.db"))
    Client(s).apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
                     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}])
    yield s
    s.close()


def run(store, scenario) -> None:
    """Run `scenario(http)` against a fresh server on the store."""
    async def main() -> None:
        async with TestClient(TestServer(make_app(store))) as http:
            await scenario(http)
    asyncio.run(main())


async def post(http, path: str, obj: object, **kw):
    return await http.post(path, data=json.dumps(obj), headers={"Content-Type": "application/json"}, **kw)


def test_create_get_and_upstream_errors(store):
    async def scenario(http):
        resp = await post(http, CMS, CM)
        assert resp.status == 201
        created = await resp.json()
        assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
        again = await post(http, CMS, CM)
        assert again.status == 409
        assert (await again.json())["reason"] == "AlreadyExists"
        assert (await again.json())["message"] == 'configmaps "cfg" already exists'
        missing = await http.get(f"{PODS}/x")
        body = await missing.json()
        assert missing.status == 404 and body["message"] == 'pods "x" not found' and body["reason"] == "NotFound"
        bad = await http.post(CMS, data=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status == 400 and (await bad.json())["reason"] == "BadRequest"
        proto = await http.post(CMS, data=b"k8s\x00", headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        assert proto.status == 400 and "carries no kind" in (await proto.json())["message"]   # protobuf: decoded
        huge = await post(http, CMS, {**CM, "metadata": {"name": "huge"}, "data": {"a": "x" * (3 << 20)}})
        assert huge.status == 413
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
        invalid = await post(http, PODS, pod)
        status = await invalid.json()
        assert invalid.status == 422 and status["reason"] == "Invalid"
        assert status["message"].startswith('Pod "p" is invalid: spec.containers: Required value')
        assert status["details"]["causes"][0]["field"] == "spec.containers"
        strict = await post(http, CMS + "?fieldValidation=Strict", {**CM, "metadata": {"name": "s"}, "spec": {"x": 1}})
        assert strict.status == 400
        assert (await strict.json())["message"] == 'strict decoding error: unknown field "spec"'
        dry = await post(http, CMS + "?dryRun=All", {**CM, "metadata": {"name": "dry"}})
        assert dry.status == 201
        nowhere = await post(http, "/api/v1/namespaces/nope/configmaps", {**CM, "metadata": {"name": "n"}})
        assert nowhere.status == 404 and (await nowhere.json())["message"] == 'namespaces "nope" not found'
        stale = await http.put(f"{CMS}/cfg", data=json.dumps({**CM, "metadata": {"name": "cfg",
                                                                                  "resourceVersion": "1"}}),
                               headers={"Content-Type": "application/json"})
        assert stale.status == 409 and "the object has been modified" in (await stale.json())["message"]
    run(store, scenario)
    names = [o["metadata"]["name"] for o in Client(store).list("ConfigMap")[0]]
    assert names == ["cfg"], "nothing stored on errors or dry run"


def test_list_selectors_and_table(store):
    client = Client(store)
    client.apply([{**CM, "metadata": {"name": f"c{i}", "labels": {"i": str(i)}}} for i in range(3)])

    async def scenario(http):
        listed = await (await http.get(CMS + "?labelSelector=i+in+(0,2)")).json()
        assert listed["kind"] == "ConfigMapList" and int(listed["metadata"]["resourceVersion"]) == store.revision()
        assert [o["metadata"]["name"] for o in listed["items"]] == ["c0", "c2"]
        one = await (await http.get(CMS + "?fieldSelector=metadata.name%3Dc1")).json()
        assert [o["metadata"]["name"] for o in one["items"]] == ["c1"]
        unsupported = await http.get(CMS + "?fieldSelector=spec.foo%3Dx")
        assert unsupported.status == 400
        assert (await unsupported.json())["message"] == "field label not supported: spec.foo"
        table = await (await http.get(CMS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})).json()
        assert table["kind"] == "Table" and [c["name"] for c in table["columnDefinitions"]] == ["NAME", "DATA", "AGE"]
        assert table["rows"][0]["cells"][:2] == ["c0", "1"]
        assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    run(store, scenario)


async def read_events(resp, count: int, timeout: float = 5) -> list[dict]:
    events = []
    while len(events) < count:
        line = await asyncio.wait_for(resp.content.readline(), timeout)
        if not line:
            break
        events.append(json.loads(line))
    return events


def test_watch_from_a_revision_has_no_gaps_and_filters(store):
    client = Client(store)
    client.apply([CM])
    start = store.revision()

    async def scenario(http):
        resp = await http.get(f"{CMS}?watch=1&resourceVersion={start}&labelSelector=w%3Dyes")
        assert resp.status == 200
        for i in range(5):
            client.apply([{**CM, "metadata": {"name": f"w{i}", "labels": {"w": "yes"}}}])
        client.apply([{**CM, "metadata": {"name": "other"}}])
        client.mutate("ConfigMap", "default", "w0", lambda o: o["metadata"]["labels"].update(w="no"))
        events = await read_events(resp, 6)
        assert [e["type"] for e in events] == ["ADDED"] * 5 + ["DELETED"], "leaving the selector is DELETED"
        revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        assert revs == sorted(revs) and revs[0] == start + 1
        resp.close()
    run(store, scenario)


def test_watch_send_initial_events_then_bookmark_and_timeout(store):
    Client(store).apply([CM])

    async def scenario(http):
        resp = await http.get(f"{CMS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                              "&timeoutSeconds=1")
        events = await read_events(resp, 3)
        assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"], "then the stream ends at timeoutSeconds"
        assert events[1]["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
        assert events[1]["object"]["metadata"]["resourceVersion"] == str(store.revision())
    run(store, scenario)


def test_watch_from_an_old_revision_catches_up_then_follows(store):
    """A watch that starts behind the server's watch hub reads the store's history first, without gaps or
    duplicates, then follows live writes."""
    client = Client(store)

    async def scenario(http):
        first = await http.get(f"{CMS}?watch=1&resourceVersion={store.revision()}")     # starts the hub
        client.apply([{**CM, "metadata": {"name": "old0"}}])
        start = store.revision()
        for i in range(1, 4):
            client.apply([{**CM, "metadata": {"name": f"old{i}"}}])
        await read_events(first, 4)
        resp = await http.get(f"{CMS}?watch=1&resourceVersion={start}")
        client.apply([{**CM, "metadata": {"name": "new"}}])
        events = await read_events(resp, 4)
        assert [e["object"]["metadata"]["name"] for e in events] == ["old1", "old2", "old3", "new"]
        first.close()
        resp.close()
    run(store, scenario)


def test_watch_of_a_compacted_revision_is_a_410_error_event(store, monkeypatch):
    client = Client(store)
    client.apply([{**CM, "metadata": {"name": f"c{i}"}} for i in range(3)])
    client.apply([CM])
    real_watch = store.watch

    class CompactedWatcher:
        def next_batch(self, timeout):
            raise Compacted("revision 1 is compacted (at 5)")

        def close(self):
            pass
    monkeypatch.setattr(store, "watch", lambda prefix, rev: CompactedWatcher() if rev < 3 else real_watch(prefix, rev))

    async def scenario(http):
        resp = await http.get(f"{CMS}?watch=1&resourceVersion=1")
        events = await read_events(resp, 2)
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    run(store, scenario)


def test_encode_and_translate_events():
    line = encode_event("ADDED", {"kind": "ConfigMap", "metadata": {"name": "a"}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": "a"}}}
    obj = json.dumps({"metadata": {"name": "a", "labels": {"x": "1"}}}).encode()
    matches = lambda o: o["metadata"].get("labels", {}).get("x") == "1"     # noqa: E731
    assert translate(Event("PUT", "k", obj, 7), matches)[0] == "ADDED"
    assert translate(Event("PUT", "k", obj, 8, prev_value=obj), matches)[0] == "MODIFIED"
    kind, gone = translate(Event("DELETE", "k", None, 9, prev_value=obj), matches)
    assert kind == "DELETED" and gone["metadata"]["resourceVersion"] == "9"
    assert translate(Event("PUT", "k", b'{"metadata":{"name":"a"}}', 10), matches) is None


def test_every_built_in_kind_has_a_schema():
    """A kind added to kemu.api.kinds without a schema is still served (open), but kubectl's strict validation and
    strategic merge keys need the real one: describe it in kemu/apiserver/schema.py's TOP."""
    from kemu.api.kinds import KINDS
    from kemu.apiserver.schema import TOP
    assert set(KINDS) <= set(TOP), f"kinds without a schema: {sorted(set(KINDS) - set(TOP))}"
