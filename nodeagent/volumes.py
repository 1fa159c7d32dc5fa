"""The volume manager: materialises a pod's volumes under its directory and says where containers mount them.

Layout (kubelet's): `<pod_dir>/volumes/<plugin>/<name>`, plugin one of empty-dir, host-path (no directory: the node
path itself), configmap, secret, downward-api, projected. configMap, secret, downwardAPI and projected content is
written by `AtomicWriter` (kubelet's pkg/volume/util/atomic_writer.go): files go to a fresh `..<timestamp>`
directory, the `..data` symlink is swapped to it with one rename(2), and the visible names are symlinks through
`..data`, so a reader sees either the old or the new set, never a mix. Secrets (and `medium: Memory` emptyDirs) are
on tmpfs. Volumes live as long as the pod; `state.json` records each volume's path or the error that stops it, so a
container that needs a broken volume is not started (CreateContainerConfigError) and `refresh` retries.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import time
from typing import Callable

from kemu.api.meta import is_dns1123_label
from kemu.api.quantity import parse_quantity
from nodeagent import claims, securitycontext
from nodeagent.env import EnvError, field_file_value, resource_value
from nodeagent.tokens import TokenError, TokenManager
from runtime import linux
from runtime.cri import Mount

Lookup = Callable[[str, str, str], "dict | None"]   # (kind, namespace, name) -> object
Payload = dict[str, tuple[bytes, int]]               # relative path -> (content, mode)

DEFAULT_MODE = 0o644
SECRET_TMPFS_SIZE = "16Mi"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_VOLUME = "kube-api-access"      # the projected volume the ServiceAccount admission plugin would add
KEMU_OWNED = "/run/kemu/"          # the only place hostPath *OrCreate may create anything
PROJECTED = ("configMap", "secret", "downwardAPI", "projected")
PLUGINS = {"emptyDir": "empty-dir", "hostPath": "host-path", "configMap": "configmap", "secret": "secret",
           "downwardAPI": "downward-api", "projected": "projected", "persistentVolumeClaim": "pvc"}


class VolumeError(ValueError):
    """A volume cannot be set up (CreateContainerConfigError / FailedMount)."""


# ---- paths ---------------------------------------------------------------------------------------------------
def safe_name(name: object) -> str:
    """A volume name becomes a directory name: it must be a DNS-1123 label (no '/', no '..')."""
    if not isinstance(name, str) or not is_dns1123_label(name):
        raise VolumeError(f"volume name {name!r} is not a DNS-1123 label")
    return name


def safe_relpath(path: object, what: str) -> str:
    """A path inside a volume (items[].path, subPath): relative, no '..' element, not starting with '..'."""
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/") \
            or path.startswith(".."):
        raise VolumeError(f"{what} {path!r} must be a relative path without '..'")
    return path.strip("/")


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def volume_kind(vol: dict) -> str:
    kinds = [k for k in PLUGINS if k in vol]
    if len(kinds) != 1:
        raise VolumeError(f"volume {vol.get('name')!r}: exactly one source (emptyDir, hostPath, configMap, secret, "
                          "downwardAPI, projected) is supported")
    return kinds[0]


def volume_dir(pod_dir: str, vol: dict) -> str:
    kind = volume_kind(vol)
    if kind == "hostPath":
        return vol["hostPath"]["path"]
    return os.path.join(pod_dir, "volumes", PLUGINS[kind], safe_name(vol["name"]))


# ---- AtomicWriter --------------------------------------------------------------------------------------------
class AtomicWriter:
    """Projects a payload into `target` atomically through the `..data` symlink (see the module docstring)."""
    DATA = "..data"

    def __init__(self, target: str) -> None:
        self.target = target

    def current(self) -> Payload | None:
        """What `..data` points to now (content and mode per file), None before the first write."""
        data = os.path.join(self.target, self.DATA)
        if not os.path.islink(data):
            return None
        top = os.path.realpath(data)
        out: Payload = {}
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                full = os.path.join(dirpath, f)
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, top)] = (fh.read(), stat.S_IMODE(os.lstat(full).st_mode))
        return out

    def write(self, payload: Payload) -> bool:
        """Swap in `payload` if it differs from what is there; True when something changed."""
        for rel in payload:
            safe_relpath(rel, "path")
        if self.current() == payload:
            return False
        os.makedirs(self.target, exist_ok=True)
        old = os.readlink(os.path.join(self.target, self.DATA)) if os.path.islink(
            os.path.join(self.target, self.DATA)) else None
        ts = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
        new = os.path.join(self.target, ts)
        os.mkdir(new, 0o755)
        for rel, (content, mode) in payload.items():
            path = os.path.join(new, rel)
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
            os.chmod(path, mode)
        tmp_link = os.path.join(self.target, "..data_tmp")
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(ts, tmp_link)
        os.rename(tmp_link, os.path.join(self.target, self.DATA))   # the atomic swap
        visible = {rel.split("/", 1)[0] for rel in payload}
        for name in visible:
            link = os.path.join(self.target, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(self.DATA, name), link)
        for name in os.listdir(self.target):
            if not name.startswith("..") and name not in visible:
                path = os.path.join(self.target, name)
                if os.path.islink(path):
                    os.unlink(path)
        if old and old != ts:
            shutil.rmtree(os.path.join(self.target, old), ignore_errors=True)
        return True


# ---- payloads ------------------------------------------------------------------------------------------------
def _mode(value: object, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise VolumeError(f"{what} {value!r} must be between 0 and 0777 (511)")
    return value


def _data_of(obj: dict, kind: str) -> dict[str, bytes]:
    if kind == "Secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    else:
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _object_payload(src: dict, kind: str, namespace: str, lookup: Lookup, default_mode: int) -> Payload:
    """configMap/secret source → files: every key, or only `items` (key → path, mode)."""
    name = src.get("name") if kind == "ConfigMap" else src.get("secretName", src.get("name"))
    optional = bool(src.get("optional"))
    obj = lookup(kind, namespace, name) if name else None
    label = "configmap" if kind == "ConfigMap" else "secret"
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{label} "{name}" not found')
    data = _data_of(obj, kind)
    mode = _mode(src.get("defaultMode", default_mode), "defaultMode")
    items = src.get("items")
    if not items:
        return {safe_relpath(k, "key"): (v, mode) for k, v in data.items()}
    out: Payload = {}
    for item in items:
        key = item.get("key")
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"configmap references non-existent config key: {key}" if kind == "ConfigMap"
                              else f"secret references non-existent secret key: {key}")
        out[safe_relpath(item.get("path"), "items[].path")] = (data[key], _mode(item.get("mode", mode), "mode"))
    return out


def _downward_payload(src: dict, pod: dict, default_mode: int) -> Payload:
    mode = _mode(src.get("defaultMode", default_mode), "defaultMode")
    out: Payload = {}
    for item in src.get("items") or []:
        path = safe_relpath(item.get("path"), "items[].path")
        try:
            if "fieldRef" in item:
                value = field_file_value(pod, item["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"]
                container = next((c for c in pod["spec"]["containers"] if c["name"] == ref.get("containerName")),
                                 None)
                if container is None:
                    raise VolumeError(f"resourceFieldRef: no container {ref.get('containerName')!r}")
                value = resource_value(container, ref)
            else:
                raise VolumeError(f"downwardAPI item {path!r}: needs fieldRef or resourceFieldRef")
        except EnvError as exc:
            raise VolumeError(str(exc)) from None
        out[path] = (value.encode(), _mode(item.get("mode", mode), "mode"))
    return out


def _payload(vol: dict, pod: dict, lookup: Lookup, tokens: TokenManager | None = None) -> Payload:
    ns = pod["metadata"]["namespace"]
    kind = volume_kind(vol)
    if kind == "configMap":
        return _object_payload(vol["configMap"], "ConfigMap", ns, lookup, DEFAULT_MODE)
    if kind == "secret":
        return _object_payload(vol["secret"], "Secret", ns, lookup, DEFAULT_MODE)
    if kind == "downwardAPI":
        return _downward_payload(vol["downwardAPI"], pod, DEFAULT_MODE)
    proj = vol["projected"]
    mode = _mode(proj.get("defaultMode", DEFAULT_MODE), "defaultMode")
    out: Payload = {}
    for source in proj.get("sources") or []:
        if "configMap" in source:
            out.update(_object_payload(source["configMap"], "ConfigMap", ns, lookup, mode))
        elif "secret" in source:
            out.update(_object_payload(source["secret"], "Secret", ns, lookup, mode))
        elif "downwardAPI" in source:
            out.update(_downward_payload(source["downwardAPI"], pod, mode))
        elif "serviceAccountToken" in source:
            src = source["serviceAccountToken"]
            path = safe_relpath(src.get("path", "token"), "serviceAccountToken.path")
            out[path] = (_token(pod, src, tokens), mode)
    if vol.get("name") == SA_VOLUME and "ca.crt" not in out:
        out["ca.crt"] = (tokens.ca if tokens and tokens.ca else b"# kemu: no cluster CA configured\n", mode)
    return out


def _token(pod: dict, src: dict, tokens: TokenManager | None) -> bytes:
    """A bound token from the agent's token manager (a placeholder when the node has no signing key)."""
    if tokens is None:
        return _placeholder_token(pod)
    try:
        return tokens.token(pod, src.get("audience"), src.get("expirationSeconds"))
    except TokenError as exc:
        raise VolumeError(str(exc)) from None


def _placeholder_token(pod: dict) -> bytes:
    """Not a signed JWT (the node has no service-account key): enough for code that only checks the file."""
    sa = pod["spec"].get("serviceAccountName") or "default"
    return f"kemu-placeholder-token:system:serviceaccount:{pod['metadata']['namespace']}:{sa}".encode()


def service_account_volume(pod: dict) -> dict | None:
    """The kube-api-access projected volume admission would inject (token, ca.crt, namespace), unless
    automountServiceAccountToken is false or a container already mounts something there. A static pod gets none:
    admission never saw it, and upstream forbids static pods to refer to API objects such as ServiceAccounts."""
    spec = pod["spec"]
    if spec.get("automountServiceAccountToken") is False:
        return None
    if (pod["metadata"].get("annotations") or {}).get("kubernetes.io/config.source") == "file":
        return None
    if any(m.get("mountPath", "").rstrip("/") == SA_DIR for c in spec["containers"]
           for m in c.get("volumeMounts") or []):
        return None
    return {"name": SA_VOLUME, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "optional": True, "items": [{"key": "ca.crt",
                                                                                "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}


def _all_volumes(pod: dict) -> list[dict]:
    sa = service_account_volume(pod)
    return list(pod["spec"].get("volumes") or []) + ([sa] if sa else [])


# ---- state ---------------------------------------------------------------------------------------------------
def _state_path(pod_dir: str) -> str:
    return os.path.join(pod_dir, "volumes", "state.json")


def _load_state(pod_dir: str) -> dict:
    try:
        with open(_state_path(pod_dir)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_state(pod_dir: str, state: dict) -> None:
    path = _state_path(pod_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)


def _setup(vol: dict, pod: dict, pod_dir: str, lookup: Lookup, tokens: TokenManager | None = None) -> str:
    """Create (idempotently) one volume; returns the directory containers bind."""
    kind = volume_kind(vol)
    if kind == "persistentVolumeClaim":      # the claim's PersistentVolume (nodeagent/claims.py)
        return claims.claim_volume(vol["persistentVolumeClaim"] or {}, pod, pod_dir, safe_name(vol["name"]), lookup)
    path = volume_dir(pod_dir, vol)
    if kind == "hostPath":
        return _host_path(vol["hostPath"])
    if not os.path.isdir(path):
        os.makedirs(path, 0o777)
        os.chmod(path, 0o777 if kind == "emptyDir" else 0o755)
    if kind == "emptyDir" and (vol["emptyDir"] or {}).get("medium") == "Memory":
        _tmpfs(path, (vol["emptyDir"] or {}).get("sizeLimit"), "1777")
    elif kind == "secret" or (kind == "projected" and any("secret" in s or "serviceAccountToken" in s for s in
                                                          vol["projected"].get("sources") or [])):
        _tmpfs(path, SECRET_TMPFS_SIZE, "755")
    if kind in PROJECTED:
        _project(path, vol, pod, lookup, tokens)
    else:
        securitycontext.set_volume_ownership(path, securitycontext.fs_group(pod), readonly=False)
    return path


def _project(path: str, vol: dict, pod: dict, lookup: Lookup, tokens: TokenManager | None = None) -> None:
    """Write a projected volume's current content, group-owned by the pod's fsGroup."""
    group = securitycontext.fs_group(pod)
    if AtomicWriter(path).write(securitycontext.fs_group_modes(_payload(vol, pod, lookup, tokens), group)):
        securitycontext.set_volume_ownership(path, group, readonly=True)


def _tmpfs(path: str, size: object, mode: str) -> None:
    if linux.is_mountpoint(path):
        return
    options = f"mode={mode}"
    if size:
        options += f",size={int(parse_quantity(size))}"
    linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)


HOST_PATH_TYPES = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
                   "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}


def _host_path(src: dict) -> str:
    path = src.get("path", "")
    if not os.path.isabs(path) or ".." in path.split("/"):
        raise VolumeError(f"hostPath {path!r} must be an absolute path without '..'")
    htype = src.get("type") or ""
    if not os.path.lexists(path) and htype in ("DirectoryOrCreate", "FileOrCreate"):
        if not _within(os.path.realpath(path), KEMU_OWNED.rstrip("/")):
            raise VolumeError(f"hostPath {path} does not exist; kemu creates nothing on the node's filesystem "
                              f"outside {KEMU_OWNED}")
        if htype == "DirectoryOrCreate":
            os.makedirs(path, 0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            open(path, "a").close()
    if not os.path.exists(path):
        raise VolumeError(f"hostPath {path} does not exist on the node")
    check = HOST_PATH_TYPES.get(htype.replace("OrCreate", ""))
    if check and not check(os.stat(path).st_mode):
        raise VolumeError(f"hostPath {path} is not a {htype.replace('OrCreate', '')}")
    return path


# ---- the volume manager's interface --------------------------------------------------------------------------
def prepare(pod: dict, pod_dir: str, lookup: Lookup, tokens: TokenManager | None = None) -> None:
    """Create every volume of the pod (idempotent; volumes outlive container restarts and sandbox changes).
    Raises VolumeError naming the volumes that could not be set up; the others are ready."""
    state = _load_state(pod_dir)
    errors = []
    for vol in _all_volumes(pod):
        name = str(vol.get("name"))
        try:
            state[name] = {"path": _setup(vol, pod, pod_dir, lookup, tokens), "error": None}
        except (VolumeError, OSError, ValueError) as exc:
            state[name] = {"path": None, "error": f"volume {name!r}: {exc}"}
            errors.append(state[name]["error"])
    _save_state(pod_dir, state)
    if errors:
        raise VolumeError("; ".join(errors))


def refresh(pod: dict, pod_dir: str, lookup: Lookup, tokens: TokenManager | None = None) -> None:
    """Bring projected content (configMap, secret, downwardAPI, projected, tokens due for renewal) up to date
    and retry volumes that failed; called every sync. Content already projected stays when its source goes
    missing (as kubelet)."""
    state = _load_state(pod_dir)      # none yet (an agent killed before prepare finished): set every volume up
    errors = []
    changed = False
    for vol in _all_volumes(pod):
        name = str(vol.get("name"))
        entry = state.get(name) or {}
        try:
            if entry.get("error") or name not in state:
                state[name] = {"path": _setup(vol, pod, pod_dir, lookup, tokens), "error": None}
                changed = True
            elif volume_kind(vol) in PROJECTED and (name != SA_VOLUME or tokens is not None):   # tokens renew
                _project(entry["path"], vol, pod, lookup, tokens)
        except (VolumeError, OSError, ValueError) as exc:
            errors.append(f"volume {name!r}: {exc}")
    if changed:
        _save_state(pod_dir, state)
    if errors:
        raise VolumeError("; ".join(errors))


def container_mounts(pod: dict, container: dict, pod_dir: str) -> list[Mount]:
    """The runtime's mounts for the container's volumeMounts (and the service-account directory): node paths
    and where they go. Raises VolumeError when a volume is not ready or a subPath is unsafe."""
    state = _load_state(pod_dir)
    volumes = {v.get("name"): v for v in _all_volumes(pod)}
    wanted = list(container.get("volumeMounts") or [])
    if SA_VOLUME in volumes and not (pod["spec"].get("volumes") and SA_VOLUME in
                                     {v.get("name") for v in pod["spec"]["volumes"]}):
        wanted.append({"name": SA_VOLUME, "mountPath": SA_DIR, "readOnly": True})
    mounts = []
    for m in wanted:
        name, target = m.get("name"), m.get("mountPath", "")
        vol = volumes.get(name)
        if vol is None:
            raise VolumeError(f"volumeMount {name!r}: no such volume in the pod")
        if not os.path.isabs(target) or ".." in target.split("/"):
            raise VolumeError(f"volumeMount {name!r}: mountPath {target!r} must be absolute without '..'")
        entry = state.get(name) or {}
        if not entry.get("path"):
            raise VolumeError(entry.get("error") or f"volume {name!r} is not set up")
        kind = volume_kind(vol)
        source = entry["path"]
        if m.get("subPath"):
            source = _sub_path(source, safe_relpath(m["subPath"], "subPath"), create=kind == "emptyDir")
        readonly = kind in PROJECTED or kind == "persistentVolumeClaim" and bool(vol[kind].get("readOnly"))
        mounts.append(Mount(target, source, readonly=bool(m.get("readOnly")) or readonly,
                            host_volume=kind in ("hostPath", "persistentVolumeClaim")))
    return mounts


def _sub_path(top: str, sub: str, create: bool) -> str:
    """The file or directory a subPath mount binds, resolved now (so later updates of projected volumes do not
    reach it, as upstream) and checked to stay inside the volume (symlinks included)."""
    path = os.path.join(top, sub)
    if create and not os.path.lexists(path):
        os.makedirs(path, 0o777, exist_ok=True)
    real = os.path.realpath(path)
    if not _within(real, os.path.realpath(top)):
        raise VolumeError(f"subPath {sub!r} resolves outside its volume")
    if not os.path.exists(real):
        raise VolumeError(f"subPath {sub!r} does not exist in the volume")
    return real


def teardown(pod_dir: str) -> None:
    """Release what `prepare` mounted (tmpfs), deepest first; the pod directory is removed afterwards."""
    top = os.path.join(pod_dir, "volumes")
    for point in reversed(linux.mountpoints()):
        if _within(point, top):
            try:
                linux.umount(point)
            except OSError:
                pass
