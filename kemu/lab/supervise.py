"""`python -m kemu.lab.supervise STATE_FILE [--node-config F] -- ARGV...`: keep one lab daemon running.

Each lab daemon runs under its own small supervisor (started by Lab._spawn, in the daemon's namespace, with the
lab's KEMU_LAB marker): when the daemon exits without being asked to, it is started again after a back-off
(0.2 s doubling to 10 s; reset once it has run for a minute), the restart is written to STATE_FILE (pid, restarts,
last exit: what `kemu lab status` shows) and, for a node's daemon, recorded as a Warning event on its Node. SIGTERM
stops the daemon (SIGKILL after a grace) and the supervisor; SIGHUP restarts the daemon at once (`kemu lab
restart`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

BACKOFF_INITIAL, BACKOFF_MAX, STABLE_AFTER = 0.2, 10.0, 60.0
PR_SET_PDEATHSIG = 1
STOP_GRACE = 2.5          # seconds the daemon has to exit on SIGTERM (within Daemon.stop's 3 s)


def _die_with_parent() -> None:
    """In the child: SIGKILL it when the supervisor dies (a SIGKILLed supervisor must not leave its daemon behind,
    unsupervised: `kill -9` of the lab's daemon PID still stops the daemon)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def write_state(path: str, state: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def read_state(path: str) -> dict:
    """What the supervisor last wrote (empty when it never ran)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def describe_exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"


class Supervisor:
    def __init__(self, state_file: str, argv: list[str], node_config: str | None = None) -> None:
        self.state_file = state_file
        self.argv = argv
        self.node_config = node_config
        self.name = os.path.basename(state_file).removesuffix(".json")
        self.state = {"name": self.name, "supervisor": os.getpid(), "pid": 0, "restarts": 0, "last_exit": "",
                      "started": 0.0}
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.restart_now = threading.Event()

    def _start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.state.update(pid=self.proc.pid, started=time.time())
        write_state(self.state_file, self.state)

    def _stop_child(self) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.terminate()
        try:
            return proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _record(self, message: str) -> None:
        """A Warning event on the daemon's Node (node daemons only; best effort)."""
        if not self.node_config:
            return
        try:
            from kemu.api.nodeconfig import NodeConfig
            from kemu.client.daemon import node_client
            from kemu.client.events import EventRecorder
            with open(self.node_config) as f:
                config = NodeConfig(**json.load(f))
            client = node_client(config)
            node = client.get("Node", None, config.node_name)
            if node is not None:
                events = EventRecorder(client, "kemu-supervisor", config.node_name)
                events.record(node, "Warning", "DaemonRestarted", message)
                events.flush(5.0)
        except Exception as exc:      # the restart itself matters more than its event
            print(f"supervise {self.name}: recording the restart failed: {exc}", file=sys.stderr, flush=True)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: self.restart_now.set())
        backoff = BACKOFF_INITIAL
        self._start()
        while not self.stopping.is_set():
            assert self.proc is not None
            if self.restart_now.is_set():
                self.restart_now.clear()
                code = self._stop_child()
                self.state.update(restarts=self.state["restarts"] + 1, last_exit=f"restarted on request "
                                                                                f"({describe_exit(code or 0)})")
                self._start()
                continue
            code = self.proc.poll()
            if code is None:
                self.stopping.wait(0.1)
                continue
            ran = time.time() - self.state["started"]
            backoff = BACKOFF_INITIAL if ran >= STABLE_AFTER else backoff
            message = (f"{self.name} (pid {self.proc.pid}) {describe_exit(code)} after {ran:.1f}s; restarting it "
                       f"in {backoff:.1f}s (restart {self.state['restarts'] + 1})")
            print(f"supervise: {message}", file=sys.stderr, flush=True)
            self.state.update(last_exit=describe_exit(code), pid=0)
            write_state(self.state_file, self.state)
            if self.stopping.wait(backoff):
                break
            self.state["restarts"] += 1
            self._start()
            threading.Thread(target=self._record, args=(message,), daemon=True).start()
            backoff = min(backoff * 2, BACKOFF_MAX)
        self._stop_child()
        self.state.update(pid=0, last_exit="stopped")
        write_state(self.state_file, self.state)
        return 0


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") < 1:
        print("usage: python -m kemu.lab.supervise STATE_FILE [--node-config F] -- ARGV...", file=sys.stderr)
        return 2
    i = argv.index("--")
    own, child = argv[:i], argv[i + 1:]
    node_config = own[own.index("--node-config") + 1] if "--node-config" in own else None
    return Supervisor(own[0], child, node_config).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
