"""One container: its process (started by the shim), its state file, logs, and stop with grace."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass

from runtime.process import pid_alive, spawn_shim, start_ticks

LOG_LIMIT_BYTES = 10 * 1024 * 1024   # kubelet's containerLogMaxSize default
MESSAGE_LIMIT = 4096                 # kubelet: at most 4096 bytes of termination message
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048   # FallbackToLogsOnError: the log's tail


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

    @property
    def root_dir(self) -> str:
        """Upper and work layers of this attempt's overlay root (written to only by the container)."""
        return os.path.join(self.dir, f"{self.attempt}.root")

    @property
    def message_file(self) -> str:
        """Host side of the container's terminationMessagePath (bind-mounted there)."""
        return os.path.join(self.dir, f"{self.attempt}.termination-log")

    @classmethod
    def start(cls, dir: str, name: str, attempt: int, spec: dict) -> "ContainerProcess":
        """Start attempt `attempt` with a shim spec (argv, env, sandbox_pid, cgroup_procs, mounts, ...).
        `spec["termination_message_path"]`, if set, gets this attempt's message file mounted on it."""
        os.makedirs(dir, exist_ok=True)
        c = cls(dir, name, attempt)
        c._forget_older()
        mounts = list(spec.get("mounts", []))
        if spec.get("termination_message_path"):
            open(c.message_file, "w").close()
            os.chmod(c.message_file, 0o666)
            mounts.append({"source": c.message_file, "target": spec["termination_message_path"]})
        shim_log = os.open(os.path.join(dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            report = spawn_shim("run", dict(spec, mounts=mounts, state_file=c.state_file, log_path=c.log_path,
                                            root=c.root_dir), dir, stdout=shim_log)
        finally:
            os.close(shim_log)
        c.pid, c.shim_pid = report["pid"], report["shim_pid"]
        c.ticks = start_ticks(c.pid) or 0
        c.started = time.time()
        return c

    def _forget_older(self) -> None:
        """Keep this and the previous attempt's log and state (`logs --previous`); roots only of this one."""
        for entry in os.listdir(self.dir):
            num, _, kind = entry.partition(".")
            if not num.isdigit() or int(num) >= self.attempt:
                continue
            path = os.path.join(self.dir, entry)
            if kind == "root":
                shutil.rmtree(path, ignore_errors=True)
            elif int(num) <= self.attempt - 2:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

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

    def termination_message(self, policy: str = "File") -> str:
        """terminationMessagePath's content (≤4096 bytes); with FallbackToLogsOnError and an empty file, the
        tail of the log (80 lines, 2048 bytes) when the container failed. Read after the attempt ended."""
        try:
            with open(self.message_file, "rb") as f:
                message = f.read(MESSAGE_LIMIT).decode(errors="replace")
        except FileNotFoundError:
            message = ""
        status = self.exit_status()
        if not message and policy == "FallbackToLogsOnError" and status is not None and status.exit_code != 0:
            tail = "\n".join(self.logs().splitlines()[-FALLBACK_LINES:])
            message = tail.encode()[-FALLBACK_BYTES:].decode(errors="replace")
        return message


def read_log(path: str, limit: int = LOG_LIMIT_BYTES) -> str:
    """A container log as written by the shim's RotatingLog: the rotated part (`.1`) then the current file."""
    data = b""
    for part in (path + ".1", path):
        try:
            with open(part, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > limit:
                    f.seek(size - limit)
                data += f.read()
        except FileNotFoundError:
            pass
    return data[-limit:].decode(errors="replace")


def sigterm_then_kill(c: ContainerProcess, grace: float, kill_rest) -> ExitStatus | None:
    """SIGTERM the main process, wait up to `grace` seconds, then SIGKILL everything left (via `kill_rest`)."""
    c.signal(signal.SIGTERM)
    status = c.wait(grace)
    kill_rest()
    return status or c.wait(5.0)
