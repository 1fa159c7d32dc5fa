"""Selectors, quantities, kinds, manifests: the small pure pieces every component leans on."""
import pytest

from kemu.api import manifests
from kemu.api.kinds import resolve_kind
from kemu.api.meta import ManifestError
from kemu.api.quantity import bytes_of, cpu_millis
from kemu.api.selectors import parse_selector, selector_matches


@pytest.mark.parametrize("text, labels, expected", [
    ("app=web", {"app": "web"}, True),
    ("app=web,tier!=db", {"app": "web", "tier": "db"}, False),
    ("env in (a,b)", {"env": "b"}, True),
    ("env notin (a,b)", {"env": "c"}, True),
    ("!canary", {"canary": "1"}, False),
    ("release", {"release": "x"}, True),
])
def test_label_selector_strings(text, labels, expected):
    assert parse_selector(text)(labels) is expected


def test_api_selectors():
    assert selector_matches({"app": "web"}, {"app": "web", "x": "y"})
    assert not selector_matches({}, {"app": "web"}), "an empty Service selector selects nothing"
    expr = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn",
                                                                 "values": ["db"]}]}
    assert selector_matches(expr, {"app": "web", "tier": "fe"})
    assert not selector_matches(expr, {"app": "web", "tier": "db"})


@pytest.mark.parametrize("q, millis", [("200m", 200), ("1", 1000), ("0.5", 500), ("1.0001", 1001)])
def test_cpu(q, millis):
    assert cpu_millis(q) == millis


@pytest.mark.parametrize("q, n", [("64Mi", 64 * 2**20), ("1G", 10**9), ("128974848", 128974848), ("1e3", 1000)])
def test_bytes(q, n):
    assert bytes_of(q) == n


def test_kind_aliases():
    assert resolve_kind("po").name == "Pod"
    assert resolve_kind("svc").name == "Service"
    assert resolve_kind("endpointslices.discovery.k8s.io").name == "EndpointSlice"
    with pytest.raises(KeyError, match="have a resource type"):
        resolve_kind("gizmos")


def test_manifests_multi_doc_list_and_dirs(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: A\n---\n---\nkind: B\n")
    (tmp_path / "b.json").write_text('{"kind": "List", "items": [{"kind": "C"}, {"kind": "D"}]}')
    (tmp_path / "ignored.txt").write_text("kind: X")
    kinds = [o["kind"] for _, o in manifests.load([str(tmp_path)])]
    assert kinds == ["A", "B", "C", "D"]


def test_manifest_yaml_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata: {name: a\n")
    with pytest.raises(ManifestError, match=r"bad.yaml: invalid YAML at line 3"):
        manifests.load([str(bad)])
