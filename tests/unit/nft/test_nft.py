"""The nftables toolkit (kemu.nft): typed objects, transactions rendered to nft, and the generic fake. No root."""
from __future__ import annotations

import json
import sys

import pytest

from kemu.nft import (
    Chain,
    Element,
    Elements,
    FakeNft,
    Map,
    NftCliBackend,
    NftError,
    Rule,
    Set,
    Table,
    Transaction,
    concat,
)
from kemu.nft.backend import _chains_of


def _filter_table(family: str = "inet", name: str = "kemu-t") -> Transaction:
    tx = Transaction(family, name)
    tx.add(Table(comment="test table"))
    tx.add(Chain("input", type="filter", hook="input", priority=0, policy="drop"))
    tx.add(Chain("allow"))
    tx.add(Map("ports", type="inet_service : verdict"))
    tx.add(Set("peers", type="ipv4_addr", flags=("interval",)))
    tx.add(Rule("input", "tcp dport vmap @ports"))
    tx.add(Rule("input", "ip saddr @peers accept", comment="peers"))
    tx.add(Rule("allow", "accept"))
    tx.add(Element("ports", "22", "jump allow"))
    tx.add(Elements("peers", [("10.0.0.0/8", None), ("192.168.0.0/16", None)]))
    return tx


# ---------------------------------------------------------------- rendering

def test_render_is_nft_syntax_with_specs_and_merged_elements() -> None:
    tx = _filter_table()
    tx.add(Element("ports", "80", "accept"))
    tx.add(Elements("ports", [("443", "accept")]))
    tx.delete(Element("ports", "22", "jump allow"))
    tx.delete(Element("ports", "80"))
    assert tx.render().splitlines() == [
        'add table inet kemu-t { comment "test table" ; }',
        "add chain inet kemu-t input { type filter hook input priority 0 ; policy drop ; }",
        "add chain inet kemu-t allow",
        "add map inet kemu-t ports { type inet_service : verdict ; }",
        "add set inet kemu-t peers { type ipv4_addr ; flags interval ; }",
        "add rule inet kemu-t input tcp dport vmap @ports",
        'add rule inet kemu-t input ip saddr @peers accept comment "peers"',
        "add rule inet kemu-t allow accept",
        "add element inet kemu-t ports { 22 : jump allow }",
        "add element inet kemu-t peers { 10.0.0.0/8, 192.168.0.0/16 }",
        "add element inet kemu-t ports { 80 : accept, 443 : accept }",   # consecutive ops on one map: one command
        "delete element inet kemu-t ports { 22, 80 }",                   # deletes name keys only
    ]


def test_set_and_map_specs() -> None:
    aff = Set("aff", type="ipv4_addr", flags=("dynamic", "timeout"), timeout=60)
    assert aff.spec == "type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;" and aff.dynamic
    full = Set("s", typeof="ip saddr . tcp dport", size=1024, policy="memory", auto_merge=True, comment="c")
    assert full.spec == 'typeof ip saddr . tcp dport ; size 1024 ; policy memory ; auto-merge ; comment "c" ;'
    m = Map("eps", typeof="numgen random mod 1 : ip daddr . tcp dport")
    assert m.is_map and m.kind == "map" and not m.dynamic
    assert m.spec == "typeof numgen random mod 1 : ip daddr . tcp dport ;"


def test_chain_specs_priorities_devices_comments() -> None:
    assert Chain("c").spec == "" and not Chain("c").is_base
    assert Chain("p", type="nat", hook="postrouting", priority="srcnat - 1", policy="accept").spec == \
        "type nat hook postrouting priority srcnat - 1 ; policy accept ;"
    assert Chain("i", type="filter", hook="ingress", priority=-500, device="eth0", comment="x").spec == \
        'type filter hook ingress device eth0 priority -500 ; comment "x" ;'


def test_verbs_render_as_nft_commands() -> None:
    tx = Transaction("ip6", "kemu-t")
    tx.create(Table())
    tx.create(Chain("c"))
    tx.insert(Rule("c", "ip6 saddr ::1 accept"))
    tx.add(Rule("c", "counter", handle=7))
    tx.replace(Rule("c", "drop", handle=7))
    tx.delete(Rule("c", handle=7))
    tx.flush(Chain("c"))
    tx.flush(Set("s", type="ipv6_addr"))
    tx.delete(Map("m", type="ipv6_addr : verdict"))
    tx.create(Element("s", concat("::1", "tcp", 80)))
    tx.flush(Table())
    tx.delete(Table())
    assert tx.render().splitlines() == [
        "create table ip6 kemu-t",
        "create chain ip6 kemu-t c",
        "insert rule ip6 kemu-t c ip6 saddr ::1 accept",
        "add rule ip6 kemu-t c handle 7 counter",
        "replace rule ip6 kemu-t c handle 7 drop",
        "delete rule ip6 kemu-t c handle 7",
        "flush chain ip6 kemu-t c",
        "flush set ip6 kemu-t s",
        "delete map ip6 kemu-t m",
        "create element ip6 kemu-t s { ::1 . tcp . 80 }",
        "flush table ip6 kemu-t",
        "delete table ip6 kemu-t",
    ]
    assert len(tx) == 12 and tx.counts()["create table"] == 1


def test_len_and_counts_count_each_bulk_element() -> None:
    tx = Transaction("ip", "t")
    tx.add(Elements("m", [("1", "accept"), ("2", "drop"), ("3", "drop")]))
    tx.delete(Element("m", "4"))
    assert len(tx) == 4
    assert tx.counts() == {"add element": 3, "delete element": 1}


def test_element_options_come_before_the_value() -> None:
    e = Element("m", "10.0.0.1", "drop", timeout=30, comment="blocked")
    assert e.text() == '10.0.0.1 timeout 30s comment "blocked" : drop'
    assert e.text(with_value=False) == '10.0.0.1 timeout 30s comment "blocked"'


@pytest.mark.parametrize("make", [
    lambda: Chain("c", type="nat", hook="prerouting"),            # base chain without priority
    lambda: Set("s"),                                             # neither type nor typeof
    lambda: Set("s", type="ipv4_addr", typeof="ip saddr"),        # both
    lambda: Map("m", type="ipv4_addr"),                           # a map needs key : value
    lambda: Transaction("ipv4", "t"),                             # unknown family
    lambda: Transaction("ip", "t").flush(Rule("c", "accept")),    # no such verb for rules
    lambda: Transaction("ip", "t").delete(Rule("c")),             # deleting a rule needs its handle
    lambda: Transaction("ip", "t").add(Rule("c", "accept", comment='say "hi"')).render(),
])
def test_invalid_objects_and_ops_are_refused(make) -> None:
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------- the fake

def test_fake_applies_and_answers_generic_queries() -> None:
    fake = FakeNft()
    fake.run(_filter_table())
    assert fake.has_table("inet", "kemu-t") and not fake.has_table("ip", "kemu-t")
    assert fake.rules("inet", "kemu-t", "input") == ["tcp dport vmap @ports", 'ip saddr @peers accept comment "peers"']
    assert fake.elements("inet", "kemu-t", "ports") == {"22": "jump allow"}
    assert fake.elements("inet", "kemu-t", "peers") == {"10.0.0.0/8": None, "192.168.0.0/16": None}
    assert fake.counts("inet", "kemu-t") == {"chains": 2, "rules": 3, "sets": 2, "elements": 3}
    assert fake.chain_names("inet", "kemu-t") == {"input", "allow"}
    assert fake.chain_names("inet", "missing") is None
    listing = fake.list_table("inet", "kemu-t")
    assert "type filter hook input priority 0 ; policy drop ;" in listing
    assert "elements = { 22 : jump allow }" in listing
    assert len(fake.transactions) == 1


def test_fake_insert_prepends_and_flush_table_keeps_definitions() -> None:
    fake = FakeNft()
    fake.run(_filter_table())
    tx = Transaction("inet", "kemu-t")
    tx.insert(Rule("input", "ct state established accept"))
    fake.run(tx)
    assert fake.rules("inet", "kemu-t", "input")[0] == "ct state established accept"
    tx = Transaction("inet", "kemu-t")
    tx.flush(Table())
    fake.run(tx)
    assert fake.counts("inet", "kemu-t") == {"chains": 2, "rules": 0, "sets": 2, "elements": 0}


def _fails(fake: FakeNft, *ops: tuple[str, object], match: str) -> None:
    """ops applied after a valid prefix must fail with ``match`` and change nothing."""
    before = fake.list_table("inet", "kemu-t")
    n = len(fake.transactions)
    tx = Transaction("inet", "kemu-t")
    tx.add(Rule("allow", "counter"))           # a valid op first: must be rolled back too
    for verb, obj in ops:
        getattr(tx, verb)(obj)
    with pytest.raises(NftError, match=match):
        fake.run(tx)
    assert fake.list_table("inet", "kemu-t") == before and len(fake.transactions) == n


@pytest.mark.parametrize("ops,match", [
    ([("create", Table())], "File exists"),
    ([("create", Chain("allow"))], "File exists"),
    ([("add", Chain("input", type="filter", hook="output", priority=0))], "another hook"),
    ([("delete", Chain("allow"))], "not empty"),
    ([("flush", Chain("allow")), ("delete", Chain("allow"))], "referenced"),      # @ports element jumps there
    ([("delete", Chain("nope"))], "No such file"),
    ([("add", Rule("nope", "accept"))], "No such file or directory \\(chain\\)"),
    ([("add", Rule("allow", "ip saddr @nope accept"))], "set nope"),
    ([("add", Rule("allow", "goto nowhere"))], "chain nowhere"),
    ([("add", Rule("allow", "accept", handle=3))], "handles"),
    ([("add", Set("peers", type="ipv6_addr"))], "another definition"),
    ([("create", Set("peers", type="ipv4_addr", flags=("interval",)))], "File exists"),
    ([("delete", Set("peers", type="ipv4_addr", flags=("interval",)))], "set referenced"),
    ([("delete", Map("peers", type="ipv4_addr : verdict"))], "No such file"),        # it is a set, not a map
    ([("add", Element("nope", "1"))], "No such file or directory \\(set\\)"),
    ([("add", Element("ports", "22", "drop"))], "another value"),
    ([("create", Element("ports", "22", "jump allow"))], "File exists"),
    ([("add", Element("ports", "23"))], "needs value"),
    ([("add", Element("peers", "10.1.0.0/16", "accept"))], "has no value"),
    ([("add", Element("ports", "24", "goto nowhere"))], "chain nowhere"),
    ([("add", Element("ports", "25", "accept", timeout=5))], "without flags timeout"),
    ([("delete", Element("ports", "99"))], "element 99"),
])
def test_fake_refuses_like_the_kernel_and_changes_nothing(ops, match) -> None:
    fake = FakeNft()
    fake.run(_filter_table())
    _fails(fake, *ops, match=match)


def test_fake_add_is_idempotent_and_create_is_not() -> None:
    fake = FakeNft()
    fake.run(_filter_table())
    fake.run(_filter_table())     # same objects, same elements: no error, no duplicates except rules
    assert fake.elements("inet", "kemu-t", "ports") == {"22": "jump allow"}
    assert len(fake.rules("inet", "kemu-t", "allow")) == 2   # add rule appends, like nft


def test_fake_missing_table_and_delete_table() -> None:
    fake = FakeNft()
    tx = Transaction("ip", "kemu-t")
    tx.add(Chain("c"))
    with pytest.raises(NftError, match="table"):
        fake.run(tx)
    fake.run(_filter_table("ip"))
    tx = Transaction("ip", "kemu-t")
    tx.delete(Table())
    fake.run(tx)
    assert not fake.has_table("ip", "kemu-t")
    with pytest.raises(NftError):
        fake.list_table("ip", "kemu-t")


def test_fake_dynamic_sets_element_timeouts_and_raw_payloads() -> None:
    fake = FakeNft()
    tx = Transaction("ip", "kemu-t")
    tx.add(Table())
    tx.add(Chain("c"))
    tx.add(Set("aff", type="ipv4_addr", flags=("dynamic", "timeout"), timeout=60))
    tx.add(Rule("c", "update @aff { ip saddr }"))
    tx.add(Rule("c", "@th,0,16 0x1234 drop"))          # raw payload, not a set reference
    tx.add(Element("aff", "10.0.0.1", timeout=30, comment="seen"))
    fake.run(tx)
    assert 'elements = { 10.0.0.1 timeout 30s comment "seen" }' in fake.list_table("ip", "kemu-t")


def test_fake_fail_next_injects_an_error() -> None:
    fake = FakeNft()
    fake.fail_next = "Error: Could not process rule: Cannot allocate memory"
    with pytest.raises(NftError, match="allocate"):
        fake.run(_filter_table())
    assert not fake.tables and not fake.transactions
    fake.run(_filter_table())
    assert fake.has_table("inet", "kemu-t")


# ---------------------------------------------------------------- backends (no kernel)

def test_cli_backend_pipes_the_script_to_nft(tmp_path) -> None:
    out = tmp_path / "seen.json"
    stub = f"import json,sys; json.dump({{'argv': sys.argv[1:], 'stdin': sys.stdin.read()}}, open({str(out)!r}, 'w'))"
    backend = NftCliBackend([sys.executable, "-c", stub])
    tx = _filter_table()
    backend.run(tx)
    seen = json.loads(out.read_text())
    assert seen == {"argv": ["-f", "-"], "stdin": tx.render()}
    failing = NftCliBackend([sys.executable, "-c", "import sys; sys.stderr.write('Error: nope'); sys.exit(1)"])
    with pytest.raises(NftError, match="nope"):
        failing.run(tx)


def test_chain_names_from_a_json_listing() -> None:
    listing = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"chain": {"family": "ip", "table": "kemu-proxy", "name": "services"}},
        {"chain": {"family": "ip", "table": "other", "name": "x"}},
        {"chain": {"family": "ip", "table": "kemu-proxy", "name": "nat-output"}}]})
    assert _chains_of(listing, "kemu-proxy") == {"services", "nat-output"}
    assert _chains_of(listing, "missing") is None
    assert _chains_of("", "kemu-proxy") is None
