"""Container lifecycle hooks, kubelet's way (pkg/kubelet/lifecycle/handlers.go + killContainer): postStart right
after the start (failure: the container is killed), preStop before SIGTERM with its time counted against the grace
period. exec handlers run through the runtime's exec; httpGet goes from the node to the pod (or `host`)."""
from __future__ import annotations

import http.client
import logging
import subprocess
import time

from nodeagent.kuberuntime import container_security
from runtime.container import ContainerProcess
from runtime.cri import PodSandboxConfig
from runtime.pods import PodRuntime
from runtime.process import StartError

log = logging.getLogger(__name__)
MIN_GRACE_AFTER_PRESTOP = 2.0   # kubelet's minimumGracePeriodInSeconds


class PostStartHookError(StartError):
    """The postStart hook failed; the container was killed (event reason FailedPostStartHook)."""
    event_reason = "FailedPostStartHook"


class HandlerRunner:
    """Runs a container's lifecycle handlers and stops containers with their preStop hook."""

    def __init__(self, runtime: PodRuntime) -> None:
        self.runtime = runtime

    def run(self, sandbox: PodSandboxConfig, pod: dict, container: dict, proc: ContainerProcess, handler: dict,
            timeout: float) -> str | None:
        """Run a lifecycle handler (exec, httpGet or sleep); None on success, else why it failed."""
        try:
            if "exec" in handler:
                argv = list(handler["exec"].get("command") or [])
                code, out = self.runtime.exec_sync(sandbox, proc, argv, timeout, container_security(pod, container),
                                                   container.get("workingDir"))
                return None if code == 0 else f"command {handler['exec'].get('command')} exited {code}: " \
                                              f"{out.strip()[-500:]}"
            if "httpGet" in handler:
                return http_hook(pod, container, handler["httpGet"], timeout)
            if "sleep" in handler:
                time.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
                return None
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        return "handler has no exec, httpGet or sleep action"

    def post_start(self, sandbox: PodSandboxConfig, pod: dict, container: dict, proc: ContainerProcess) -> None:
        """The postStart hook of a just-started attempt; on failure the attempt is killed and PostStartHookError
        raised."""
        hook = (container.get("lifecycle") or {}).get("postStart")
        if not hook:
            return
        error = self.run(sandbox, pod, container, proc, hook,
                         timeout=float(pod["spec"].get("terminationGracePeriodSeconds", 30)) or 30.0)
        if error:
            self.runtime.stop_container(sandbox, proc, 0)
            raise PostStartHookError(f"PostStartHookError: {error}")

    def stop_container(self, sandbox: PodSandboxConfig, pod: dict, container: dict | None, proc: ContainerProcess,
                       grace: float) -> None:
        """preStop hook, then the runtime's SIGTERM / rest of `grace` / SIGKILL. The hook's time counts against
        the grace period, leaving at least 2 s for SIGTERM."""
        hook = ((container or {}).get("lifecycle") or {}).get("preStop")
        if hook and grace > 0 and proc.running():
            begin = time.monotonic()
            error = self.run(sandbox, pod, container, proc, hook, timeout=grace)
            if error:
                log.warning("preStop hook of %s/%s failed: %s", pod["metadata"]["name"], proc.name, error)
            grace = max(grace - (time.monotonic() - begin), MIN_GRACE_AFTER_PRESTOP)
        self.runtime.stop_container(sandbox, proc, grace)


def http_hook(pod: dict, container: dict, get: dict, timeout: float) -> str | None:
    """A hook's httpGet, sent from the node to the pod (host defaults to the pod IP); 2xx/3xx is success."""
    host = get.get("host") or (pod.get("status") or {}).get("podIP")
    if not host:
        return "httpGet: the pod has no IP"
    port = get.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = [p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port]
        if not named:
            return f"httpGet: no container port named {port!r}"
        port = named[0]
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
        conn.request("GET", get.get("path") or "/", headers=headers)
        status = conn.getresponse().status
    finally:
        conn.close()
    return None if 200 <= status < 400 else f"httpGet {get.get('path') or '/'}: HTTP {status}"
