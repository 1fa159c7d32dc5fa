"""Runs every `$` command of docs/deep-dive.md, checking `# ->` expectations.

The guide's convention (see its introduction):
* sections (`## ` headings) without a marker run against the demo lab: here the `kemu_lab` fixture's one-node lab
  with examples/ applied, as `make demo` leaves it;
* a section whose text has a line `<!-- lab: NAME -->` builds and removes a lab of its own with its commands
  (`export KEMU_LAB=NAME` first, `kemu lab down && unset KEMU_LAB` last). The test replaces `KEMU_LAB=NAME` in
  that section's commands by a unique name, runs them with KEMU_LAB set to it, and removes the lab in a `finally` even when a
  step fails (leftovers fail the test);
* `VAR=$(...)` lines define variables for the later commands of the same section;
* `# -> TEXT`: TEXT must appear in stdout; an empty `# ->` after `grep -c` means a count of at least 1.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import pytest

from kemu.testing import LabHandle

pytestmark = pytest.mark.root
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUIDE = os.path.join(ROOT, "docs", "deep-dive.md")
EXAMPLES = os.path.join(ROOT, "examples")
MARKER = re.compile(r"^<!-- lab: ([a-z0-9-]+) -->$")
VARIABLE = re.compile(r"^[A-Z0-9_]+=\$\(")


@dataclass
class Section:
    title: str
    lab: str | None = None                                        # None: the demo lab
    steps: list[tuple[str, str | None]] = field(default_factory=list)


def guide_sections() -> list[Section]:
    sections = [Section("(introduction)")]
    for line in open(GUIDE):
        line = line.rstrip("\n")
        if line.startswith("## "):
            sections.append(Section(line[3:]))
        elif MARKER.match(line):
            assert sections[-1].lab is None, f"two lab markers in section {sections[-1].title!r}"
            sections[-1].lab = MARKER.match(line).group(1)
        elif line.startswith("$ "):
            command, _, expect = line[2:].partition("# ->")
            sections[-1].steps.append((command.strip(), expect.strip() if "# ->" in line else None))
    return [s for s in sections if s.steps]


def guide_steps() -> list[tuple[str, str | None]]:
    return [step for s in guide_sections() for step in s.steps]


def test_guide_has_commands():
    assert len(guide_steps()) >= 40


def test_lab_sections_follow_the_convention():
    """A section with its own lab selects it first and removes it last, so a reader ends up back on the demo lab."""
    own = [s for s in guide_sections() if s.lab]
    assert {s.lab for s in own} >= {"deep2", "fast"}
    for s in own:
        assert s.steps[0][0] == f"export KEMU_LAB={s.lab}", s.title
        assert s.steps[-1][0] == "kemu lab down && unset KEMU_LAB", s.title
    assert all("KEMU_LAB" not in cmd for s in guide_sections() if not s.lab for cmd, _ in s.steps)


def run_step(command: str, expect: str | None, shell_vars: str, env: dict) -> None:
    res = subprocess.run(["bash", "-c", f"set -o pipefail\n{shell_vars}{command}"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=90)
    if expect is None or expect == "":
        assert res.returncode == 0 or "grep -c" in command, f"{command!r} failed: {res.stderr}"
        if expect == "" and "grep -c" in command:
            assert int(res.stdout.strip() or 0) >= 1, f"{command!r} counted nothing"
        return
    assert expect in res.stdout, f"{command!r}: expected {expect!r} in {res.stdout!r} (stderr {res.stderr!r})"


def test_every_guide_command_works(kemu_lab):
    kemu_lab.kemu("apply", "-f", EXAMPLES)
    kemu_lab.kemu("wait", "--for=condition=Ready", "pods", "--all", "--timeout", "60")
    for name in ("web-1", "web-2", "web-3"):
        ip = kemu_lab.get("Pod", name)["status"]["podIP"]
        kemu_lab.wait_http("client", f"http://{ip}:8080/healthz", "ok")
    kemu_lab.wait_endpoints("web", 3)
    base_env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    own_labs: list[str] = []
    try:
        for section in guide_sections():
            lab = kemu_lab.name
            steps = section.steps
            if section.lab:
                lab = f"t{uuid.uuid4().hex[:8]}"
                own_labs.append(lab)
                steps = [(cmd.replace(f"KEMU_LAB={section.lab}", f"KEMU_LAB={lab}"), expect) for cmd, expect in steps]
            env = dict(base_env, KEMU_LAB=lab)
            shell_vars = ""
            for command, expect in steps:
                if VARIABLE.match(command):                    # a variable for the section's later steps
                    shell_vars += command + "\n"
                    continue
                run_step(command, expect, shell_vars, env)
    finally:
        left = [f"{name}: {item}" for name in own_labs for item in LabHandle(name).down()]
    assert not left, f"guide labs left behind: {'; '.join(left)}"
