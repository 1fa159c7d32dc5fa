#!/usr/bin/env python3
"""ADD/DEL latency: kemu-bridge vs the reference bridge + host-local, same config.

Each flavour gets its own node netns (kemu-t-cni-bench-*); pods are pre-created
netns. ADDs alternate between flavours (order flipped every round), then DELs
likewise. The plugin is exec'd directly from a child already switched into the
node netns (no nsenter/ip-netns-exec in the timing). Needs root.

    sudo .venv/bin/python bench/cni_latency.py --iterations 50

Last line of output is JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kemu.testing.cnibed import Lab, bridge_conf, make_bin_dir, remove_tree  # noqa: E402
from runtime.linux import setns  # noqa: E402


def in_netns(path: str):
    """preexec_fn: move the child into ``path`` before exec."""
    def enter() -> None:
        setns(path, "net")
    return enter


def call(plugin: str, node_path: str, command: str, conf: bytes, cid: str, netns: str, bin_dir: str) -> float:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": bin_dir}
    t = time.perf_counter()
    p = subprocess.run([plugin], input=conf, env=env, capture_output=True, preexec_fn=in_netns(node_path))
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(plugin)} {command} {cid}: {p.stdout.decode()} {p.stderr.decode()}")
    return dt * 1000


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
                         capture_output=True, text=True).stdout
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "reference_plugins": ver or "unknown"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=50, help="pods per flavour (default 50)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--launcher", choices=("installed", "fast", "console"), default="installed",
                    help="installed: a copy of the venv's bin/kemu-bridge (what `make deps` installs); fast: "
                         "cni/kemu-bridge (python -IS) symlinked; console: a pip-style console script "
                         "(venv python with site, `from cni.plugin import main`)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")

    bin_dir = make_bin_dir()
    if args.launcher == "installed":
        exe = os.path.join(bin_dir, "kemu-bridge")
        os.unlink(exe)
        shutil.copy(os.path.join(sys.prefix, "bin", "kemu-bridge"), exe)
    if args.launcher == "console":
        exe = os.path.join(bin_dir, "kemu-bridge")
        os.unlink(exe)
        with open(exe, "w") as f:
            f.write(f"#!{sys.executable}\nimport sys\nfrom cni.plugin import main\nsys.exit(main())\n")
        os.chmod(exe, 0o755)
    labs = {"kemu-bridge": Lab(), "bridge": Lab()}
    times = {k: {"ADD": [], "DEL": []} for k in labs}
    try:
        n = args.iterations + args.warmup
        pods = {k: [lab.pod(f"b{i}") for i in range(n)] for k, lab in labs.items()}
        confs = {k: json.dumps(bridge_conf(k, lab.data_dir, subnet="10.244.9.0/24")).encode()
                 for k, lab in labs.items()}
        for command in ("ADD", "DEL"):
            for i in range(n):
                order = list(labs) if i % 2 == 0 else list(reversed(labs))
                for k in order:
                    dt = call(os.path.join(bin_dir, k), labs[k].node.path, command, confs[k],
                              f"bench{i}", pods[k][i].path, bin_dir)
                    if i >= args.warmup:
                        times[k][command].append(dt)
    finally:
        for lab in labs.values():
            lab.close()
        remove_tree(bin_dir)

    summary: dict = {"iterations": args.iterations, "launcher": args.launcher, "machine": machine()}
    print(f"{'plugin':<12} {'ADD p50':>8} {'ADD p95':>8} {'DEL p50':>8} {'DEL p95':>8}   (ms)")
    for k, t in times.items():
        s = {f"{c.lower()}_{q}": round(pct(t[c], v), 2) for c in ("ADD", "DEL") for q, v in (("p50", .5), ("p95", .95))}
        s["add_mean"] = round(statistics.mean(t["ADD"]), 2)
        s["del_mean"] = round(statistics.mean(t["DEL"]), 2)
        summary[k] = s
        print(f"{k:<12} {s['add_p50']:>8} {s['add_p95']:>8} {s['del_p50']:>8} {s['del_p95']:>8}")
    k, r = summary["kemu-bridge"], summary["bridge"]
    summary["ratio_kemu_over_reference"] = {
        m: round(k[m] / r[m], 3) for m in ("add_p50", "add_p95", "del_p50", "del_p95")
    }
    print("ratio kemu/reference:", summary["ratio_kemu_over_reference"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
