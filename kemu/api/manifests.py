"""Reading manifests the way `kubectl apply -f` does: files, directories (.yaml/.yml/.json), stdin,
multi-document YAML and `kind: List`.

Hostile input is refused before any object is built: each document is composed into YAML nodes first and its alias
expansion is measured on the node graph (aliases share nodes, so this costs the size of the input, not of the
expansion). A document whose expansion is out of proportion to its input is refused as Kubernetes' YAML decoder
(go-yaml) refuses it ("document contains excessive aliasing"), and one that would expand beyond the API server's
request limit (3 MiB) is refused as too large.
"""
from __future__ import annotations

import os
import sys

import yaml

from kemu.api.meta import MAX_REQUEST_BYTES, ManifestError

EXTENSIONS = (".yaml", ".yml", ".json")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):     # type: ignore[misc]
    """YAML as Kubernetes' decoder (sigs.k8s.io/yaml) reads it: timestamps stay strings (metav1.Time parses them),
    so `kemu get -o yaml` output applies as is."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
# go-yaml's decoder: up to 400k decoded nodes 99% may come from aliases, from 4M nodes only 10%, linear between
ALIAS_RATIO_LOW, ALIAS_RATIO_HIGH = 400_000, 4_000_000


def _files(path: str) -> list[str]:
    if path == "-":
        return ["-"]
    if os.path.isdir(path):
        return [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(EXTENSIONS)]
    if not os.path.exists(path):
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def allowed_alias_ratio(decoded: int) -> float:
    """The share of decoded nodes that may come from alias expansion (go-yaml's allowedAliasRatio)."""
    if decoded <= ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


def check_expansion(root: yaml.Node) -> None:
    """Raise ValueError when the document under `root` expands too much: every node is visited once and each keeps
    (nodes, bytes) of its expanded subtree, so shared (aliased) subtrees are counted as often as they are used."""
    sizes: dict[int, tuple[int, int]] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in in_progress:
                raise ValueError(f"anchor at line {node.start_mark.line + 1} contains itself (a recursive alias)")
            in_progress.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in in_progress and id(child) not in sizes:
                    raise ValueError(f"anchor at line {child.start_mark.line + 1} contains itself (a recursive "
                                     "alias)")
                stack.append((child, False))
            continue
        in_progress.discard(key)
        count = 1 + sum(sizes[id(c)][0] for c in children)
        size = (len(node.value) if isinstance(node, yaml.ScalarNode) else 2) + sum(sizes[id(c)][1] + 1
                                                                                 for c in children)
        sizes[key] = (count, size)
    decoded, expanded = sizes[id(root)]
    aliased = decoded - len(sizes)
    if aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded):
        raise ValueError(f"document contains excessive aliasing ({aliased} of {decoded} nodes come from aliases); "
                         "write the values out instead of repeating anchors")
    if expanded > MAX_REQUEST_BYTES:
        raise ValueError(f"Request entity too large: the document expands to more than {MAX_REQUEST_BYTES} bytes "
                         "(the API server's request limit); split it into smaller objects")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def documents(text: str, source: str) -> list[object]:
    """Every document in `text` (None for empty ones), each checked by check_expansion before it is built; any
    problem raises a one-line ManifestError naming `source`."""
    loader = _Loader(text)
    out: list[object] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                check_expansion(node)
            except ValueError as exc:
                raise ManifestError(f"{source}: document {len(out) + 1}: {exc}") from None
            out.append(_string_keys(loader.construct_document(node)))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{source}: invalid YAML at{where}: {problem}") from None
    except RecursionError:
        raise ManifestError(f"{source}: document {len(out) + 1}: nested too deeply; flatten it") from None
    finally:
        loader.dispose()
    return out


def _string_keys(value: object) -> object:
    """Mapping keys as YAMLToJSON writes them: `1: a` is {"1": "a"}, `true: x` is {"true": "x"}."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                fixed = {_key_text(k): v for k, v in item.items()}
                item.clear()
                item.update(fixed)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _key_text(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, float) and key.is_integer() and abs(key) < 1e21:
        return str(int(key))
    return str(key)


def read_text(file: str) -> str:
    """A manifest's text (`-`: stdin); bytes that are not UTF-8 raise ManifestError, as kubectl refuses them."""
    source = "<stdin>" if file == "-" else file
    data = sys.stdin.buffer.read() if file == "-" else open(file, "rb").read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source}: error converting YAML to JSON: yaml: invalid UTF-8 at byte {exc.start}: "
                            "save the file as UTF-8") from None


def load(paths: list[str]) -> list[tuple[str, dict]]:
    """(source, object) pairs from every document in `paths`; any YAML error raises ManifestError."""
    out: list[tuple[str, dict]] = []
    for path in paths:
        for file in _files(path):
            text = read_text(file)
            source = "<stdin>" if file == "-" else file
            for doc in documents(text, source):
                if doc is None:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    out += [(source, item) for item in doc.get("items") or []]
                else:
                    out.append((source, doc))
    return out
