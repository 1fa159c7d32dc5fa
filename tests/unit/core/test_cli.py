"""CLI behaviour that needs no lab: argument splitting, the root-namespace guard, clear errors."""
import subprocess
import sys

import pytest

from kemu import cli
from kemu.cli.common import in_root_netns

KEMU = [sys.executable, "-m", "kemu.cli"]


def test_words_after_double_dash_belong_to_the_command(monkeypatch):
    seen = {}
    fake_exec = lambda args: seen.update(pod=args.pod, ns=args.namespace, cmd=args.command) or 0  # noqa: E731
    parser_func = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _patched(parser_func(), "exec", fake_exec))
    assert cli.main(["exec", "web", "-n", "prod", "--", "curl", "-n", "-s", "--", "x"]) == 0
    assert seen == {"pod": "web", "ns": "prod", "cmd": ["curl", "-n", "-s", "--", "x"]}


def _patched(parser, verb, func):
    sub = next(a for a in parser._actions if a.dest == "verb")
    sub.choices[verb].set_defaults(func=func)
    return parser


@pytest.mark.skipif(not in_root_netns(), reason="the guard only matters in the root network namespace")
@pytest.mark.parametrize("daemon", ["node-agent", "proxy", "dns"])
def test_node_daemons_refuse_the_root_namespace_without_host_mode(daemon, tmp_path):
    res = subprocess.run(KEMU + [daemon, "--node-config", str(tmp_path / "none.json")], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert "refusing to run in this machine's root network namespace" in res.stderr
    assert "--host-mode" in res.stderr


def test_unknown_lab_is_a_clear_error(tmp_path):
    env = {"KEMU_LABS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(KEMU + ["--lab", "nope", "get", "pods"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip() == "lab nope is not up; run `kemu lab up --name nope` (labs: none)"


def test_unknown_kind_is_a_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "lab.json").write_text('{"name": "x"}')
    env = {"KEMU_LABS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(KEMU + ["--lab", "x", "get", "gizmos"], capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip() == 'error: the server doesn\'t have a resource type "gizmos"'
