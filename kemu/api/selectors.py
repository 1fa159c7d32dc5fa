"""Label selectors: kubectl's `-l` string form and the API's matchLabels/matchExpressions form."""
from __future__ import annotations

import re
from typing import Callable

Selector = Callable[[dict], bool]


def parse_selector(text: str | None) -> Selector:
    """`app=web,tier!=db,env in (a,b),!canary,release` → predicate over a labels dict."""
    if not text:
        return lambda labels: True
    terms: list[Selector] = []
    for part in re.split(r",(?![^()]*\))", text):
        part = part.strip()
        if m := re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", part):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            terms.append(_set_term(key, op == "in", values))
        elif m := re.match(r"^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$", part):
            key, op, value = m.groups()
            terms.append((lambda k, v: lambda lb: lb.get(k) == v)(key, value) if op != "!=" else
                         (lambda k, v: lambda lb: lb.get(k) != v)(key, value))
        elif m := re.match(r"^(!?)([\w./-]+)$", part):
            neg, key = m.groups()
            terms.append((lambda k: lambda lb: k not in lb)(key) if neg else (lambda k: lambda lb: k in lb)(key))
        else:
            raise ValueError(f"unable to parse requirement {part!r} in selector {text!r}")
    return lambda labels: all(t(labels or {}) for t in terms)


def _set_term(key: str, inside: bool, values: set[str]) -> Selector:
    if inside:
        return lambda lb: lb.get(key) in values
    return lambda lb: lb.get(key) not in values


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """An API selector (Service's map, or {matchLabels, matchExpressions}) against labels; empty matches nothing
    for map selectors as Services do (callers decide what an empty selector means)."""
    labels = labels or {}
    if not selector:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(k) == v for k, v in selector.items())
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
