"""Runs every `$` command of docs/deep-dive.md in a lab with the examples applied, checking `# ->` expectations."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root
GUIDE = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "deep-dive.md")
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def guide_steps() -> list[tuple[str, str | None]]:
    steps = []
    for line in open(GUIDE):
        if not line.startswith("$ "):
            continue
        command, _, expect = line[2:].partition("# ->")
        steps.append((command.strip(), expect.strip() if "# ->" in line else None))
    return steps


def test_guide_has_commands():
    assert len(guide_steps()) >= 15


def test_every_guide_command_works(kemu_lab):
    kemu_lab.kemu("apply", "-f", EXAMPLES)
    kemu_lab.kemu("wait", "--for=condition=Ready", "pods", "--all", "--timeout", "60")
    for name in ("web-1", "web-2", "web-3"):
        ip = kemu_lab.get("Pod", name)["status"]["podIP"]
        kemu_lab.wait_http("client", f"http://{ip}:8080/healthz", "ok")
    kemu_lab.wait_endpoints("web", 3)
    env = dict(os.environ, KEMU_LAB=kemu_lab.name, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    shell_vars = ""
    for command, expect in guide_steps():
        if re.match(r"^[A-Z0-9_]+=\$\(", command):      # a variable for later steps
            shell_vars += command + "\n"
            continue
        res = subprocess.run(["bash", "-c", f"set -o pipefail\n{shell_vars}{command}"], capture_output=True,
                             text=True, env=env, timeout=60)
        if expect is None or expect == "":
            assert res.returncode == 0 or "grep -c" in command, f"{command!r} failed: {res.stderr}"
            if expect == "" and "grep -c" in command:
                assert int(res.stdout.strip() or 0) >= 1, f"{command!r} counted nothing"
            continue
        assert expect in res.stdout, f"{command!r}: expected {expect!r} in {res.stdout!r} (stderr {res.stderr!r})"
