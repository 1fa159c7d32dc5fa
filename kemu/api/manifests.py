"""Reading manifests the way `kubectl apply -f` does: files, directories (.yaml/.yml/.json), stdin,
multi-document YAML and `kind: List`."""
from __future__ import annotations

import os
import sys

import yaml

from kemu.api.meta import ManifestError

EXTENSIONS = (".yaml", ".yml", ".json")


def _files(path: str) -> list[str]:
    if path == "-":
        return ["-"]
    if os.path.isdir(path):
        return [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(EXTENSIONS)]
    if not os.path.exists(path):
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def load(paths: list[str]) -> list[tuple[str, dict]]:
    """(source, object) pairs from every document in `paths`; any YAML error raises ManifestError."""
    out: list[tuple[str, dict]] = []
    for path in paths:
        for file in _files(path):
            text = sys.stdin.read() if file == "-" else open(file).read()
            source = "<stdin>" if file == "-" else file
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                raise ManifestError(f"{source}: invalid YAML at{where}: {problem}") from None
            for doc in docs:
                if doc is None:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    out += [(source, item) for item in doc.get("items") or []]
                else:
                    out.append((source, doc))
    return out
