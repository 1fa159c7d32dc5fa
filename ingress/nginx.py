"""The distribution's nginx as the node's L7 proxy: files under one directory, every configuration checked with
`nginx -t` before use, changes applied by a graceful reload (SIGHUP: new workers take the new configuration, old
workers finish their requests), and a rejected configuration never loaded."""
from __future__ import annotations

import datetime
import logging
import os
import shutil
import signal
import subprocess
import threading
import time

log = logging.getLogger("kemu.ingress")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"     # ingress-nginx's default certificate


def default_certificate() -> bytes:
    """A self-signed certificate + key (PEM) for hosts without their own, as ingress-nginx's fake certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
                      x509.NameAttribute(NameOID.COMMON_NAME, FAKE_CN)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write(path: str, data: bytes, mode: int = 0o600) -> bool:
    """Write atomically if the content differs; True if it changed."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


class Nginx:
    """One nginx master (foreground, our child) with its configuration under `directory`."""

    def __init__(self, directory: str, access_log: str | None = None) -> None:
        self.dir = directory
        self.paths = {"dir": directory, "certs": os.path.join(directory, "certs"),
                      "access_log": access_log or os.path.join(directory, "access.log"),
                      "error_log": os.path.join(directory, "error.log"), "pid": os.path.join(directory, "nginx.pid"),
                      "default_cert": os.path.join(directory, "certs", "default.pem"),
                      "conf": os.path.join(directory, "nginx.conf")}
        self.proc: subprocess.Popen | None = None
        self.reloads = 0
        self.rejected = 0
        for log_file in (self.paths["access_log"], self.paths["error_log"]):   # root-only, like the lab's other logs
            os.makedirs(os.path.dirname(log_file), exist_ok=True)
            os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            os.chmod(log_file, 0o600)
        self.last_error = ""

    def prepare(self) -> None:
        """Directories, the default certificate, and no nginx left from an earlier run of this controller."""
        for sub in ("certs", "tmp"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
        if not os.path.exists(self.paths["default_cert"]):
            _write(self.paths["default_cert"], default_certificate())
        self._stop_stale()

    def _stop_stale(self) -> None:
        try:
            with open(self.paths["pid"]) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if self.paths["conf"].encode() not in f.read():
                    return
        except (OSError, ValueError):
            return
        log.info("stopping nginx %d left by an earlier run", pid)
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)

    def _argv(self, conf: str, *extra: str) -> list[str]:
        return [NGINX, "-p", self.dir, "-c", conf, "-e", self.paths["error_log"], *extra]

    def check(self, conf: str) -> str:
        """`nginx -t` of a configuration file: "" if valid, else nginx's complaint (one line)."""
        res = subprocess.run(self._argv(conf, "-t", "-q"), capture_output=True, text=True, timeout=30)
        if res.returncode == 0:
            return ""
        lines = [ln for ln in res.stderr.splitlines() if "[emerg]" in ln or "[alert]" in ln] or \
            res.stderr.splitlines() or ["nginx -t failed"]
        return lines[0].split("] ", 1)[-1].strip()

    def apply(self, text: str, certificates: dict[str, bytes], cert_path) -> str:
        """Write certificates and the configuration, check it, then start nginx or reload it gracefully.
        Returns "" on success, else why the configuration was rejected (the running one keeps serving)."""
        for key, pem in certificates.items():
            _write(cert_path(key), pem)
        candidate = self.paths["conf"] + ".new"
        _write(candidate, text.encode(), 0o644)
        problem = self.check(candidate)
        if problem:
            self.rejected += 1
            self.last_error = problem
            log.warning("nginx rejected the new configuration, keeping the running one: %s", problem)
            return problem
        os.replace(candidate, self.paths["conf"])
        if self.running():
            os.kill(self.proc.pid, signal.SIGHUP)
            self.reloads += 1
        else:
            self.start()
        self.last_error = ""
        return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.proc = subprocess.Popen(self._argv(self.paths["conf"], "-g", "daemon off;"), stdin=subprocess.DEVNULL,
                                     start_new_session=False)
        log.info("nginx started (pid %d)", self.proc.pid)
        threading.Thread(target=self._reap, args=(self.proc,), daemon=True).start()

    def _reap(self, proc: subprocess.Popen) -> None:
        code = proc.wait()
        log.info("nginx %d exited (%s)", proc.pid, code)

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful shutdown (SIGQUIT), then SIGKILL after `timeout`."""
        if not self.running():
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
