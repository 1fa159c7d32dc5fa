"""One container: its process (started by the shim), its state file, logs, and stop with grace."""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass

from runtime.process import pid_alive, spawn_shim, start_ticks

LOG_LIMIT_BYTES = 10 * 1024 * 1024   # kubelet's containerLogMaxSize default


@dataclass
class ExitStatus:
    exit_code: int
    signal: int | None
    started: float
    finished: float
    start_error: str = ""


@dataclass
class ContainerProcess:
    """An attempt (restart number) of a container. Its state file is written by the shim and outlives the agent."""
    dir: str             # <pod_dir>/containers/<name>
    name: str
    attempt: int
    pid: int = 0
    ticks: int = 0
    shim_pid: int = 0
    started: float = 0.0

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, f"{self.attempt}.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, f"{self.attempt}.log")

    @classmethod
    def start(cls, dir: str, name: str, attempt: int, spec: dict) -> "ContainerProcess":
        """Start attempt `attempt` with a shim spec (argv, env, sandbox_pid, cgroup_procs, mounts, ...)."""
        os.makedirs(dir, exist_ok=True)
        c = cls(dir, name, attempt)
        previous = os.path.join(dir, f"{attempt - 2}.log")   # keep this and the previous attempt's log
        if attempt >= 2 and os.path.exists(previous):
            os.unlink(previous)
            try:
                os.unlink(os.path.join(dir, f"{attempt - 2}.json"))
            except FileNotFoundError:
                pass
        log_fd = os.open(c.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            report = spawn_shim("run", dict(spec, state_file=c.state_file), dir, stdout=log_fd)
        finally:
            os.close(log_fd)
        c.pid, c.shim_pid = report["pid"], report["shim_pid"]
        c.ticks = start_ticks(c.pid) or 0
        c.started = time.time()
        return c

    @classmethod
    def latest(cls, dir: str, name: str) -> "ContainerProcess | None":
        """The newest attempt recorded on disk (used to re-adopt after an agent restart)."""
        try:
            attempts = sorted(int(f[:-5]) for f in os.listdir(dir) if f.endswith(".json") and f[:-5].isdigit())
        except FileNotFoundError:
            return None
        if not attempts:
            return None
        c = cls(dir, name, attempts[-1])
        state = c._state()
        if not state:
            return None
        c.pid, c.shim_pid, c.started = state["pid"], state.get("shim_pid", 0), state["started"]
        c.ticks = start_ticks(c.pid) or 0
        return c

    def _state(self) -> dict | None:
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def running(self) -> bool:
        return self.exit_status() is None and pid_alive(self.pid)

    def exit_status(self) -> ExitStatus | None:
        """How the attempt ended, or None while it runs. A vanished shim with no record reads as killed (137)."""
        state = self._state()
        if state and "exit_code" in state:
            return ExitStatus(state["exit_code"], state.get("signal"), state["started"], state["finished"],
                              state.get("start_error", ""))
        if pid_alive(self.shim_pid) or pid_alive(self.pid):
            return None
        return ExitStatus(137, 9, self.started, time.time(), "container shim disappeared")

    def signal(self, sig: int) -> None:
        if pid_alive(self.pid, self.ticks or None):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> ExitStatus | None:
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return status

    def logs(self) -> str:
        return read_log(self.log_path)


def read_log(path: str) -> str:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > LOG_LIMIT_BYTES:
                f.seek(size - LOG_LIMIT_BYTES)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def sigterm_then_kill(c: ContainerProcess, grace: float, kill_rest) -> ExitStatus | None:
    """SIGTERM the main process, wait up to `grace` seconds, then SIGKILL everything left (via `kill_rest`)."""
    c.signal(signal.SIGTERM)
    status = c.wait(grace)
    kill_rest()
    return status or c.wait(5.0)
