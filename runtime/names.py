"""Names that become host objects: one directory entry, a cgroup, a network interface, a CNI container id.

Values from manifests (and from anything else that reached the store) end up in host paths run as root; each is
checked here, where it is turned into a path or name, so a value such as `../../etc` can never leave the directory
it is meant for whatever validation ran (or did not run) before it was stored. Rules are the kernel's and libcni's.
"""
from __future__ import annotations

import re

NAME_MAX = 255                     # bytes in one path component (Linux NAME_MAX)
IFNAMSIZ = 16                      # an interface name has at most IFNAMSIZ - 1 bytes
CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")   # libcni's ValidateContainerID


class UnsafeNameError(ValueError):
    """A value cannot be used as a host path component, cgroup or interface name."""


def path_component(value: object, what: str) -> str:
    """`value` as exactly one directory entry: non-empty, not `.` or `..`, no `/`, NUL or newline, ≤ 255 bytes."""
    if not isinstance(value, str) or value in ("", ".", "..") or any(c in value for c in "/\0\n") \
            or len(value.encode(errors="surrogateescape")) > NAME_MAX:
        raise UnsafeNameError(f"{what} {value!r} cannot be a file name: use one path component without '/', "
                              f"'..' or control characters, at most {NAME_MAX} bytes")
    return value


def cgroup_name(value: object, what: str = "cgroup name") -> str:
    """`value` as one cgroup directory name (the same rules as a path component)."""
    return path_component(value, what)


def interface_name(value: object, what: str = "interface name") -> str:
    """A network interface name as the kernel accepts it (dev_valid_name): 1-15 bytes, not `.`/`..`, no `/`, `:`
    or whitespace."""
    if not isinstance(value, str) or value in ("", ".", "..") or len(value.encode()) >= IFNAMSIZ \
            or any(c in value for c in "/:\0") or any(c.isspace() for c in value):
        raise UnsafeNameError(f"{what} {value!r} is not a valid interface name: 1-{IFNAMSIZ - 1} bytes without "
                              "'/', ':' or whitespace")
    return value


def container_id(value: object) -> str:
    """A CNI container id (libcni's rule: alphanumerics, then alphanumerics, '_', '.', '-'); it names cache files."""
    if not isinstance(value, str) or not CONTAINER_ID.match(value) or len(value) > NAME_MAX // 2:
        raise UnsafeNameError(f"CNI container id {value!r} is invalid: use letters, digits, '_', '.' and '-', "
                              "starting with a letter or digit")
    return value
