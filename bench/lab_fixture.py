#!/usr/bin/env python3
"""How long the `kemu_lab` pytest fixture costs a test: one-node lab up (every node Ready) and down (leak-checked),
through the same code the fixture runs. Goal: up + down ≤ 1 s. Prints figures and a final JSON line.

Run as root: .venv/bin/python bench/lab_fixture.py [--runs 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kemu.testing import LabHandle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    ups, downs = [], []
    for i in range(args.runs):
        lab = LabHandle(f"bench-fx{i}")
        began = time.monotonic()
        lab.up()
        ups.append(time.monotonic() - began)
        began = time.monotonic()
        left = lab.down()
        downs.append(time.monotonic() - began)
        if left:
            raise SystemExit(f"lab left behind: {left}")
    totals = [u + d for u, d in zip(ups, downs)]
    result = {"runs": args.runs, "up_p50_s": round(statistics.median(ups), 3),
              "down_p50_s": round(statistics.median(downs), 3), "total_p50_s": round(statistics.median(totals), 3),
              "total_max_s": round(max(totals), 3)}
    print(f"one-node lab fixture: up p50 {result['up_p50_s']} s, down p50 {result['down_p50_s']} s, "
          f"up+down p50 {result['total_p50_s']} s (max {result['total_max_s']} s; goal <= 1 s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
