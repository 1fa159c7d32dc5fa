"""pytest plugin for root-privileged integration tests against a real kemu lab.

    def test_web(kemu_lab):
        kemu_lab.apply(POD_YAML)
        pod = kemu_lab.wait_pod("web", ready=True)
        assert kemu_lab.exec("client", ["curl", "-s", f"{pod['status']['podIP']}:8080/hostname"]) == "web"

`kemu_lab` gives each test a fresh one-node lab (mark a test `@pytest.mark.kemu_lab(nodes=3, config={...})` for
more) and removes it afterwards even when the test fails; teardown fails the test if anything is left behind.
Tests are skipped with a clear reason when not run as root.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Callable

import pytest
import yaml

KEMU = os.path.join(os.path.dirname(sys.executable), "kemu")
OWNER_FILE = "pytest-owner.pid"   # in a test lab's directory: the process that made it (see _sweep_orphaned_labs)


class LabHandle:
    """A running lab and helpers that act on it the way a user would (through the `kemu` CLI)."""

    def __init__(self, name: str) -> None:
        from kemu.lab import Lab
        self.name = name
        self.lab = Lab(name)
        self.client = None

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def up(self, nodes: int = 1, config: dict | None = None, **lab_options) -> "LabHandle":
        """Bring the lab up in-process (what `kemu lab up` does, without a CLI start-up); `config` is a
        KubeletConfiguration-like dict, `lab_options` go to Lab.up (store, pod_network, ...)."""
        from kemu.lab import Lab
        self.claim()
        path = None
        if config:
            fd, path = tempfile.mkstemp(suffix=".yaml")
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(config, f)
        try:
            self.lab = Lab(self.name)
            self.lab.up(nodes, path, **lab_options)
        finally:
            if path:
                os.unlink(path)
        self.client = self.lab.client()
        return self

    def claim(self) -> None:
        """Mark the lab as this process's, so that a later session removes it if this one dies without teardown."""
        os.makedirs(self.lab.dir, exist_ok=True)
        with open(os.path.join(self.lab.dir, OWNER_FILE), "w") as f:
            f.write(str(os.getpid()))

    def down(self) -> list[str]:
        from kemu.lab import Lab
        return Lab(self.name).down()

    # ---- CLI ---------------------------------------------------------------------------------------------------
    def kemu(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) \
            -> subprocess.CompletedProcess:
        proc = subprocess.run([KEMU, "--lab", self.name, *args], input=input, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kemu {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def apply(self, manifest: str | list[dict] | dict) -> str:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump_all(
            manifest if isinstance(manifest, list) else [manifest])
        return self.kemu("apply", "-f", "-", input=text).stdout

    def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        return self.client.get(kind, namespace, name)

    def exec(self, pod: str, argv: list[str], container: str | None = None, namespace: str = "default",
             check: bool = True) -> str:
        args = ["exec", pod, "-n", namespace] + (["-c", container] if container else []) + ["--", *argv]
        return self.kemu(*args, check=check).stdout

    def host_exec(self, host: str, argv: list[str], check: bool = True, timeout: float = 60) -> str:
        return self.kemu("lab", "exec", host, "--", *argv, check=check, timeout=timeout).stdout

    def http(self, pod_or_host: str, url: str, from_host: bool = False, timeout: float = 3) -> str:
        """GET `url` with curl from a pod (or a lab host); returns the body ('' on failure)."""
        argv = ["curl", "-s", "-m", str(timeout), url]
        if from_host:
            return self.host_exec(pod_or_host, argv, check=False)
        return self.exec(pod_or_host, argv, check=False)

    def wait_http(self, pod_or_host: str, url: str, expect: str | None = None, from_host: bool = False,
                  timeout: float = 30) -> str:
        """Retry a GET until it answers (and equals `expect`, if given); returns the body."""
        def check() -> str | None:
            body = self.http(pod_or_host, url, from_host=from_host, timeout=1)
            return body if body and (expect is None or body == expect) else None
        return self.wait(f"{url} from {pod_or_host} to answer {expect or ''}", check, timeout, interval=0.1)

    # ---- waiting -----------------------------------------------------------------------------------------------
    def wait(self, what: str, predicate: Callable[[], object], timeout: float = 30, interval: float = 0.05):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def wait_pod(self, name: str, phase: str | None = "Running", ready: bool | None = None,
                 namespace: str = "default", timeout: float = 30) -> dict:
        def check() -> dict | None:
            pod = self.get("Pod", name, namespace)
            if pod is None:
                return None
            status = pod.get("status") or {}
            if phase and status.get("phase") != phase:
                return None
            if ready is not None:
                is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
                if is_ready != ready:
                    return None
            return pod
        return self.wait(f"pod {name} phase={phase} ready={ready}", check, timeout)

    def wait_endpoints(self, service: str, count: int, namespace: str = "default", timeout: float = 30) -> list[str]:
        def check() -> list[str] | None:
            slices, _ = self.client.list("EndpointSlice", namespace, where=lambda s: (s["metadata"].get("labels") or {})
                                         .get("kubernetes.io/service-name") == service)
            ips = sorted(a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready")
                         for a in e["addresses"])
            return ips if len(ips) == count else None
        return self.wait(f"{count} ready endpoints of {service}", check, timeout)

    def container_pid(self, pod: str, container: str | None = None, namespace: str = "default") -> int:
        """PID of a container's main process, from `kemu describe`'s node facts."""
        out = self.kemu("describe", "pod", pod, "-n", namespace).stdout
        obj = self.get("Pod", pod, namespace)
        name = container or obj["spec"]["containers"][0]["name"]
        for line in out.splitlines():
            if line.startswith(f"PID {name}:"):
                return int(line.split(":", 1)[1])
        raise AssertionError(f"no PID for {pod}/{name} in describe output")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("kemu labs need root: network namespaces, nftables and cgroups (run the suite with sudo)")




def _sweep_orphaned_labs() -> None:
    """Remove fixture labs whose pytest process died without tearing down (SIGKILL, a lost machine session)."""
    from kemu.lab import LABS_DIR, Lab
    for name in Lab.names():
        try:
            with open(os.path.join(LABS_DIR, name, OWNER_FILE)) as f:
                owner = int(f.read())
        except (OSError, ValueError):
            continue
        if not os.path.exists(f"/proc/{owner}"):
            Lab(name).down()


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() == 0 and not hasattr(config, "workerinput"):
        _sweep_orphaned_labs()   # labs of a pytest killed before its fixtures could tear down (SIGKILL, SIGTERM)
    config.addinivalue_line("markers", "kemu_lab(nodes=1, config=None, **lab_options): lab shape for the kemu_lab "
                                       "fixture (config: KubeletConfiguration-like dict; lab_options: Lab.up's)")


@pytest.fixture
def kemu_lab(request: pytest.FixtureRequest):
    """A fresh lab for one test, always removed; leftovers fail the test."""
    require_root()
    marker = request.node.get_closest_marker("kemu_lab")
    options = dict(marker.kwargs) if marker else {}   # nodes, config, and Lab.up options (store, pod_network...)
    if os.environ.get("KEMU_CNI_PLUGIN"):   # run a suite with another CNI plugin (kemu-bridge or bridge)
        options["config"] = {"cniPlugin": os.environ["KEMU_CNI_PLUGIN"], **(options.get("config") or {})}
    handle = LabHandle(f"t{uuid.uuid4().hex[:8]}")
    try:
        handle.up(options.pop("nodes", 1), options.pop("config", None), **options)
        yield handle
    finally:
        left = handle.down()
    if left:
        pytest.fail(f"lab {handle.name} left behind: {'; '.join(left)}")


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
