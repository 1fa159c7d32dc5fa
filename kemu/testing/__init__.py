"""pytest plugin for root-privileged integration tests against a real kemu lab.

    def test_web(kemu_lab):
        kemu_lab.apply(POD_YAML)
        pod = kemu_lab.wait_pod("web", ready=True)
        assert kemu_lab.exec("client", ["curl", "-s", f"{pod['status']['podIP']}:8080/hostname"]) == "web"

`kemu_lab` gives each test a fresh one-node lab (mark a test `@pytest.mark.kemu_lab(nodes=3, config={...})` for
more) and removes it afterwards even when the test fails; teardown fails the test if anything is left behind.
Tests are skipped with a clear reason when not run as root. The `kubectl` and `helm` fixtures run the real binaries
(`make deps` installs them) against the test's lab, with its admin kubeconfig and caches of the test's own:

    def test_apply(kubectl, tmp_path):
        kubectl("apply", "-f", "deploy.yaml")
        assert "web" in kubectl("get", "deploy").stdout
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


class ToolRunner:
    """A Kubernetes command-line tool (kubectl, helm) pointed at a lab: its admin kubeconfig, and HOME and caches
    private to one test (kubectl caches discovery under ~/.kube/cache)."""

    def __init__(self, binary: str, kubeconfig: str, home: str) -> None:
        self.binary, self.home = binary, home
        self.env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=home, KUBECACHEDIR=os.path.join(home, "cache"),
                        HELM_CACHE_HOME=os.path.join(home, "helm-cache"),
                        HELM_CONFIG_HOME=os.path.join(home, "helm-config"),
                        HELM_DATA_HOME=os.path.join(home, "helm-data"))
        self._fresh = 0

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120,
                 fresh_cache: bool = False) -> subprocess.CompletedProcess:
        """Run it; `check` turns a non-zero exit into an AssertionError with its stderr; `fresh_cache` starts from
        an empty discovery cache (to see a kind that appeared since the last call)."""
        env = self.env
        if fresh_cache:
            self._fresh += 1
            env = dict(env, KUBECACHEDIR=os.path.join(self.home, f"cache{self._fresh}"))
        proc = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True, env=env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            name = os.path.basename(self.binary)
            raise AssertionError(f"{name} {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        """Start it in the background (port-forward, logs -f, proxy, get -w)."""
        return subprocess.Popen([self.binary, *args], env=self.env, **kwargs)


def _tool(name: str, kemu_lab: LabHandle, tmp_path) -> ToolRunner:
    from kemu.testing.k8sbins import tool_path
    binary = tool_path(name)
    if binary is None:
        pytest.skip(f"no {name}: run `python -m kemu.testing.k8sbins .venv/bin` (make deps does)")
    home = tmp_path / f"{name}-home"
    home.mkdir(exist_ok=True)
    return ToolRunner(binary, kemu_lab.lab.kubeconfig_path, str(home))


@pytest.fixture
def kubectl(kemu_lab, tmp_path) -> ToolRunner:
    """The real kubectl against this test's lab."""
    return _tool("kubectl", kemu_lab, tmp_path)


@pytest.fixture
def helm(kemu_lab, tmp_path) -> ToolRunner:
    """The real helm against this test's lab."""
    return _tool("helm", kemu_lab, tmp_path)


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
