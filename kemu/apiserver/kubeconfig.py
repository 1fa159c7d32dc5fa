"""Kubeconfig files: a lab's admin kubeconfig (embedded CA, client certificate and key), merging it into a user's
kubeconfig as context `kemu-<lab>` (as `kind export kubeconfig` does) and removing it again. Files are written
root-only (0600, new directories 0700) and atomically."""
from __future__ import annotations

import base64
import os

import yaml


def _b64(path: str) -> str:
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def admin_kubeconfig(name: str, server: str, ca: str, cert: str, key: str) -> dict:
    """A kubeconfig whose cluster, user and context are all `name`, credentials embedded from PEM files."""
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
            "users": [{"name": name, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}]}


def write(path: str, config: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)


def load(path: str) -> dict:
    try:
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    except FileNotFoundError:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a kubeconfig (expected a mapping)")
    for section in ("clusters", "users", "contexts"):
        config[section] = config.get(section) or []
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    return config


def user_path() -> str:
    """Where kubectl reads its config: the first file of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return first or os.path.join(os.path.expanduser("~"), ".kube", "config")


def merge(source: dict, path: str) -> str:
    """Add (or replace) `source`'s cluster, user and context in the kubeconfig at `path` and make its context
    current; returns the context name."""
    config = load(path)
    for section in ("clusters", "users", "contexts"):
        names = {entry["name"] for entry in source[section]}
        config[section] = [e for e in config[section] if e.get("name") not in names] + source[section]
    config["current-context"] = source["current-context"]
    write(path, config)
    return source["current-context"]


def remove(path: str, name: str) -> bool:
    """Remove cluster, user and context `name` from `path` (unsetting current-context if it was `name`);
    returns whether anything was removed."""
    if not os.path.exists(path):
        return False
    config = load(path)
    before = sum(len(config[s]) for s in ("clusters", "users", "contexts"))
    for section in ("clusters", "users", "contexts"):
        config[section] = [e for e in config[section] if e.get("name") != name]
    changed = before != sum(len(config[s]) for s in ("clusters", "users", "contexts"))
    if config.get("current-context") == name:
        config["current-context"] = ""
        changed = True
    if changed:
        write(path, config)
    return changed


MERGED_RECORD = "kubeconfig.merged"     # in the lab directory: the files `--merge` added the lab's context to


def record_merge(lab_dir: str, path: str) -> None:
    record = os.path.join(lab_dir, MERGED_RECORD)
    paths = _recorded(lab_dir)
    if os.path.abspath(path) not in paths:
        with open(record, "a") as f:
            f.write(os.path.abspath(path) + "\n")


def _recorded(lab_dir: str) -> list[str]:
    try:
        with open(os.path.join(lab_dir, MERGED_RECORD)) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def forget_lab(lab_dir: str, name: str) -> list[str]:
    """Remove context `name` from every kubeconfig it was merged into (lab down); returns those files."""
    done = []
    for path in _recorded(lab_dir):
        try:
            if remove(path, name):
                done.append(path)
        except (OSError, ValueError, yaml.YAMLError):
            continue
    return done
