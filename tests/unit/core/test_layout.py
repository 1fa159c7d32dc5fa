"""The layout's one-way dependency rule (docs/architecture.md), checked from the code's own imports.

Run alone: `.venv/bin/pytest -q tests/unit/core/test_layout.py`. It fails on an upward import (a lower layer
importing a higher one) and on any import circle between product modules, lazy imports inside functions included.
"""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PRODUCT = ("kemu", "nodeagent", "runtime", "cni", "proxy", "clusterdns", "netpol", "ingress")

# component -> the components it may import (besides itself). Lower layers first.
MAY_IMPORT: dict[str, set[str]] = {
    "kemu.api": set(),                     # the object model imports nothing else of kemu
    "kemu.nft": set(),                     # nftables toolkit: a leaf anyone may use
    "cni": set(),                          # a standalone CNI plugin (its start-up time is its latency)
    # containerd/runc's layer: takes plain, CRI-shaped arguments; the container shim borrows the CNI plugin's
    # import-free JSON codec (cni/fastjson.py: both are short-lived programs whose start-up is their latency)
    "runtime": {"cni"},
    "kemu.store": {"kemu.api"},
    "kemu.client": {"kemu.api", "kemu.store"},
    "kemu.controllers": {"kemu.api", "kemu.store", "kemu.client"},
    "nodeagent": {"kemu.api", "kemu.store", "kemu.client", "runtime"},
    "proxy": {"kemu.api", "kemu.store", "kemu.client", "kemu.nft"},
    "ingress": {"kemu.api", "kemu.store", "kemu.client"},   # the L7 proxy: nginx, ingress controller
    "netpol": {"kemu.api", "kemu.store", "kemu.client", "kemu.nft"},
    "clusterdns": {"kemu.api", "kemu.store", "kemu.client"},
    "kemu.addons": {"kemu.api"},
    "kemu.apiserver": {"kemu.api", "kemu.store", "kemu.client", "kemu.controllers"},
    "kemu.lab": {"kemu.api", "kemu.store", "kemu.client", "kemu.nft", "kemu.apiserver", "runtime"},
    "kemu.cli": {"kemu.api", "kemu.store", "kemu.client", "kemu.controllers", "kemu.nft", "kemu.lab", "kemu.addons",
                 "kemu.apiserver",
                 "nodeagent", "runtime", "cni", "proxy", "clusterdns", "netpol", "ingress"},
    "kemu.testing": {"kemu.api", "kemu.store", "kemu.client", "kemu.nft", "kemu.lab", "kemu.apiserver", "runtime", "cni",
                     "proxy"},
}


# raw Linux calls (setns, mount, prctl, capabilities) have one home that every layer may use
LINUX_CALLS = "runtime.linux"


def component(module: str) -> str | None:
    """The component a dotted module name belongs to (kemu.cli.common -> kemu.cli), None if not product code."""
    if module == LINUX_CALLS:
        return LINUX_CALLS
    parts = module.split(".")
    if parts[0] == "kemu":
        return ".".join(parts[:2]) if len(parts) > 1 else "kemu"
    return parts[0] if parts[0] in PRODUCT else None


def product_modules() -> dict[str, str]:
    """dotted module name -> file path, for every product module."""
    found = {}
    for top in PRODUCT:
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                    found[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return found


def imports_of(path: str, module: str, known: set[str]) -> set[str]:
    """Product modules `module` imports anywhere in its file (function-local imports too)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = product_modules()
    return {m: imports_of(p, m, set(mods)) for m, p in mods.items()}


def test_every_component_has_a_rule():
    missing = {component(m) for m in product_modules()} - set(MAY_IMPORT) - {"kemu", LINUX_CALLS}
    assert not missing, f"components without a layer rule in MAY_IMPORT: {sorted(missing)}"


def test_dependencies_point_one_way():
    upward = []
    for mod, deps in sorted(graph().items()):
        own = component(mod)
        for dep in sorted(deps):
            other = component(dep)
            if other in (own, "kemu", LINUX_CALLS) or own == "kemu":
                continue
            if other not in MAY_IMPORT.get(own, set()):
                upward.append(f"{mod} -> {dep}")
    assert not upward, "imports against the layer rule (docs/architecture.md):\n" + "\n".join(upward)


def test_no_import_circles():
    g = graph()
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if dep.startswith(node + "."):   # a package importing its own submodule is not a circle
                continue
            if state.get(dep) == 1:
                circles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for mod in sorted(g):
        if mod not in state:
            visit(mod, [mod])
    assert not circles, "import circles:\n" + "\n".join(circles)


NETWORK_FACTS = ("10.96.0.0/12", "10.244.0.0/16", "10.96.0.10")   # service CIDR, cluster CIDR, cluster DNS IP
NETWORK_HOME = os.path.join("kemu", "api", "network.py")


def test_the_address_plan_has_one_home():
    """Code (not docstrings) names the service CIDR, cluster CIDR and DNS IP only in kemu/api/network.py."""
    found = []
    for mod, path in sorted(product_modules().items()):
        if os.path.relpath(path, ROOT) == NETWORK_HOME or component(mod) == "kemu.testing":
            continue
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                found += [f"{os.path.relpath(path, ROOT)}:{node.lineno}: {fact}" for fact in NETWORK_FACTS
                          if fact in node.value]
    assert not found, "import these from kemu.api.network instead:\n" + "\n".join(found)
