"""The image catalog (images.yaml, docs/images.md): which image references kemu can run without pulling, and how.

kemu has no images; a container runs host binaries in an overlay root over the host's `/`. The catalog says what
an image would run (ENTRYPOINT, CMD, WORKDIR, ENV), which host packages provide it, and the few files its own layer
adds (a config, a script, busybox's applets). The object model uses it to refuse at apply a container that could
never run; the node agent uses it to build the argv, env and layer. A lab adds or overrides entries
(`images:` in `kemu lab up --config`); `use_overrides` installs them in a process.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace

import yaml

CATALOG_FILE = os.path.join(os.path.dirname(__file__), "images.yaml")
ENV_OVERRIDES = "KEMU_IMAGE_CATALOG"    # a YAML file of extra entries (the lab sets it for its daemons)
APPLET_DIR = "/usr/local/bin"
DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_FIELDS = {"name", "base", "images", "tags", "entrypoint", "cmd", "workingDir", "env", "packages", "binaries",
           "ports", "files", "applets"}
_REFERENCE = re.compile(r"^(?P<repo>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
                        r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[a-z0-9]+:[a-fA-F0-9]{32,}))?$")


class ImageError(ValueError):
    """An image kemu cannot run (no entry and no command, a bad override, a host package missing)."""


@dataclass(frozen=True)
class Reference:
    repository: str          # normalised: docker.io/library/nginx, registry.k8s.io/pause
    tag: str = ""
    digest: str = ""


def parse_reference(image: str) -> Reference:
    """`nginx:1.25`, `docker.io/library/nginx@sha256:...`, `luksa/kubia` → a normalised Reference."""
    m = _REFERENCE.match(image or "")
    if m is None:
        raise ImageError(f"{image!r} is not an image reference like nginx:1.25 or registry.k8s.io/pause:3.9")
    repo = m.group("repo")
    first, _, rest = repo.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        repo = f"{DOCKER_HUB}/{repo}" if rest else f"{DOCKER_HUB}/library/{repo}"
    elif first in _HUB_ALIASES or first == DOCKER_HUB:
        repo = f"{DOCKER_HUB}/{rest}" if "/" in rest else f"{DOCKER_HUB}/library/{rest}"
    return Reference(repo, m.group("tag") or "", m.group("digest") or "")


@dataclass(frozen=True)
class Entry:
    name: str
    images: tuple[str, ...]                    # normalised repositories
    tags: tuple[str, ...] = ()                 # empty: any tag or digest
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()
    packages: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    files: tuple[dict, ...] = ()               # {path, content | symlink, mode}
    applets: str = ""
    source: str = "built-in"                   # or the lab configuration that defined it

    def summary(self) -> str:
        """One line for `kemu describe`: the entry, where it comes from and what it runs by default."""
        run = " ".join(self.entrypoint + self.cmd).replace("@kemu@", "kemu").replace("@python@", "python")
        ports = f"; ports {', '.join(map(str, self.ports))}" if self.ports else ""
        return f"{self.name} ({self.source}): {run or '(no default command)'}{ports}"


def _strings(value, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ImageError(f"{what}: must be a list of strings")
    return tuple(str(v) for v in value)


def _file(spec, where: str) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"].startswith("/") \
            or ".." in spec["path"].split("/") or ("content" in spec) == ("symlink" in spec):
        raise ImageError(f"{where}: each file needs an absolute path (no '..') and content or symlink")
    mode = spec.get("mode", "0644")
    try:
        mode = int(mode, 8) if isinstance(mode, str) else int(mode)
    except ValueError:
        raise ImageError(f"{where}: {spec['path']}: mode {mode!r} is not octal like \"0755\"") from None
    out = {"path": os.path.normpath(spec["path"]), "mode": mode & 0o7777}
    out.update({"content": str(spec["content"])} if "content" in spec else {"symlink": str(spec["symlink"])})
    return out


def parse_entries(doc, source: str, bases: dict[str, Entry] | None = None) -> list[Entry]:
    """Entries from a catalog document (`{entries: [...]}` or a bare list); raises ImageError naming the field."""
    items = doc.get("entries") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ImageError(f"{source}: images: must be a list of entries with name, images and cmd or entrypoint")
    known = dict(bases or {})
    out: list[Entry] = []
    for i, raw in enumerate(items):
        where = f"{source}: images[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise ImageError(f"{where}: name: required (the entry's name, e.g. myapp)")
        where = f"{source}: images[{i}] ({raw['name']})"
        unknown = set(raw) - _FIELDS
        if unknown:
            raise ImageError(f"{where}: {min(unknown)}: unknown field; entries have {', '.join(sorted(_FIELDS))}")
        base = known.get(raw["base"]) if raw.get("base") else None
        if raw.get("base") and base is None:
            raise ImageError(f"{where}: base: no entry named {raw['base']!r} above this one")
        entry = base or Entry(raw["name"], ())
        images = tuple(parse_reference(str(r)).repository for r in _strings(raw.get("images"), f"{where}: images"))
        env = raw.get("env") or {}
        if not isinstance(env, dict):
            raise ImageError(f"{where}: env: must map names to values")
        files = raw.get("files")
        if files is not None and not isinstance(files, list):
            raise ImageError(f"{where}: files: must be a list of {{path, content | symlink, mode}}")
        try:
            ports = tuple(int(p) for p in raw.get("ports") or entry.ports)
        except (TypeError, ValueError):
            raise ImageError(f"{where}: ports: must be a list of port numbers") from None
        entry = replace(
            entry, name=raw["name"], images=images or entry.images, tags=_strings(raw.get("tags"), where) or
            (entry.tags if base is None else ()),
            entrypoint=_strings(raw["entrypoint"], f"{where}: entrypoint") if "entrypoint" in raw else entry.entrypoint,
            cmd=_strings(raw["cmd"], f"{where}: cmd") if "cmd" in raw else entry.cmd,
            working_dir=str(raw.get("workingDir") or entry.working_dir),
            env=tuple((str(k), str(v)) for k, v in env.items()) or entry.env,
            packages=_strings(raw.get("packages"), where) or entry.packages,
            binaries=_strings(raw.get("binaries"), where) or entry.binaries, ports=ports,
            files=tuple(_file(f, where) for f in files) if files is not None else entry.files,
            applets=str(raw.get("applets") or entry.applets), source=source if source != CATALOG_FILE else "built-in")
        if not entry.images:
            raise ImageError(f"{where}: images: required (the repositories it stands for, e.g. [example.com/app])")
        if entry.working_dir and not entry.working_dir.startswith("/"):
            raise ImageError(f"{where}: workingDir: must be an absolute path")
        known[entry.name] = entry
        out.append(entry)
    return out


class Catalog:
    """Entries in lookup order: an entry naming the tag beats one for any tag; a lab's entries beat built-ins."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def lookup(self, image: str) -> Entry | None:
        try:
            ref = parse_reference(image)
        except ImageError:
            return None
        tagged = [e for e in self.entries if ref.repository in e.images and e.tags and ref.tag in e.tags]
        return (tagged or [e for e in self.entries if ref.repository in e.images and not e.tags] or [None])[0]

    def with_overrides(self, extra: list[Entry]) -> Catalog:
        names = {e.name for e in extra}
        return Catalog(list(extra) + [e for e in self.entries if e.name not in names])


@functools.lru_cache(maxsize=1)
def builtin() -> Catalog:
    with open(CATALOG_FILE) as f:
        return Catalog(parse_entries(yaml.safe_load(f), CATALOG_FILE))


_OVERRIDES: list[list[Entry]] = []


def load_overrides(doc, source: str) -> list[Entry]:
    """Parse a lab's `images:` (checked against the built-in entries it may extend with `base:`)."""
    return parse_entries(doc, source, {e.name: e for e in builtin().entries})


def use_overrides(doc, source: str = "lab configuration") -> None:
    """Make this process's catalog the built-in one plus `doc`'s entries (None or []: the built-in one)."""
    _OVERRIDES[:] = [load_overrides(doc, source)] if doc else []


def catalog() -> Catalog:
    """The catalog this process uses: built-in, plus `use_overrides`, plus $KEMU_IMAGE_CATALOG's entries."""
    path = os.environ.get(ENV_OVERRIDES)
    if not _OVERRIDES and path and os.path.exists(path):
        with open(path) as f:
            _OVERRIDES.append(load_overrides(yaml.safe_load(f), path))
    return builtin().with_overrides(_OVERRIDES[0]) if _OVERRIDES else builtin()


def lookup(image: str) -> Entry | None:
    return catalog().lookup(image)


# ---- what a container runs ------------------------------------------------------------------------------------
def not_runnable(image: str, command: list | None) -> str | None:
    """Why a container cannot run (no command and no catalog entry), as one line with the fix; None if it can."""
    if command or lookup(str(image or "")) is not None:
        return None
    try:
        repo = parse_reference(str(image)).repository
    except ImageError:
        repo = str(image)
    return (f"required for image {image!r}: kemu runs host programs and has no catalog entry for {repo}; set "
            f"command (a program on the node), or add an entry for it to the lab's image catalog (`images:` in "
            f"`kemu lab up --config`, see docs/images.md)")


def argv(entry: Entry | None, command: list[str] | None, args: list[str] | None,
         local: dict[str, str] | None = None) -> list[str]:
    """containerd's rules: command replaces ENTRYPOINT (and drops CMD), args replace CMD; `local` fills @kemu@
    and @python@ in the image's own words (never in the manifest's)."""
    image_words = lambda words: [_fill(w, local or {}) for w in words]
    if command:
        out = list(command) + list(args or [])
    elif entry is None:
        out = list(args or [])
    else:
        out = image_words(entry.entrypoint) + (list(args) if args else image_words(entry.cmd))
    if not out:
        raise ImageError("no command specified: the image has no ENTRYPOINT or CMD; set command or args")
    return out


def _fill(word: str, local: dict[str, str]) -> str:
    for key, value in local.items():
        word = word.replace(f"@{key}@", value)
    return word


def missing_binaries(entry: Entry) -> list[str]:
    """The entry's executables not found on this node (PATH of the node, or absolute paths)."""
    return [b for b in entry.binaries if not (os.access(b, os.X_OK) if b.startswith("/") else _which(b))]


@functools.lru_cache(maxsize=64)
def _which(name: str) -> str | None:
    return shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


@functools.lru_cache(maxsize=8)
def _applets(binary: str) -> tuple[str, tuple[str, ...]]:
    path = _which(binary)
    if path is None:
        return "", ()
    out = subprocess.run([path, "--list"], capture_output=True, text=True, timeout=10, check=False).stdout
    return path, tuple(a for a in out.split() if a and "/" not in a)


def layer(entry: Entry | None, local: dict[str, str] | None = None) -> list[dict]:
    """The files of the entry's layer ({path, content | symlink, mode}), applets included, placeholders filled."""
    if entry is None:
        return []
    files = [dict(f, content=_fill(f["content"], local or {})) if "content" in f else dict(f) for f in entry.files]
    if entry.applets:
        path, names = _applets(entry.applets)
        files += [{"path": f"{APPLET_DIR}/{name}", "symlink": path, "mode": 0o777} for name in names]
    return files


def entry_env(entry: Entry | None) -> dict[str, str]:
    return dict(entry.env) if entry else {}


@dataclass
class Resolved:
    """What the node agent needs for one container: the entry (or None), argv, image env, workingDir, layer."""
    entry: Entry | None
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    layer: list[dict] = field(default_factory=list)
