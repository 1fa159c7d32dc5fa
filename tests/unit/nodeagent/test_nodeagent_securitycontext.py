"""The node agent's securityContext checks: runAsNonRoot (upstream's messages) and fsGroup volume ownership."""
import os
import stat

import pytest

from nodeagent.securitycontext import SecurityContextError, fs_group_modes, set_volume_ownership, \
    verify_run_as_non_root


def pod(pod_sc: dict | None = None, container_sc: dict | None = None) -> tuple[dict, dict]:
    container = {"name": "app", **({"securityContext": container_sc} if container_sc else {})}
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "spec": {"securityContext": pod_sc or {}, "containers": [container]}}, container


def test_run_as_non_root_refuses_the_image_user_and_uid_0():
    with pytest.raises(SecurityContextError) as exc:
        verify_run_as_non_root(*pod({"runAsNonRoot": True}))
    assert str(exc.value) == \
        'container has runAsNonRoot and image will run as root (pod: "web_default(u-1)", container: app)'
    with pytest.raises(SecurityContextError, match="container's runAsUser breaks non-root policy"):
        verify_run_as_non_root(*pod({"runAsNonRoot": True}, {"runAsUser": 0}))


def test_run_as_non_root_accepts_a_user_and_the_container_overrides_the_pod():
    verify_run_as_non_root(*pod({"runAsNonRoot": True, "runAsUser": 1000}))
    verify_run_as_non_root(*pod({"runAsNonRoot": True}, {"runAsUser": 1000}))
    verify_run_as_non_root(*pod({"runAsNonRoot": True}, {"runAsNonRoot": False}))
    verify_run_as_non_root(*pod())


def test_fs_group_ownership_of_an_empty_dir_and_projected_files(tmp_path):
    gid = os.getgid() if os.getuid() else 2000   # without root only our own group can be given
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "f").write_text("x")
    os.chmod(empty, 0o777)
    set_volume_ownership(str(empty), gid, readonly=False)
    assert (os.stat(empty).st_gid, stat.S_IMODE(os.stat(empty).st_mode)) == (gid, 0o2777)
    assert stat.S_IMODE(os.stat(empty / "sub" / "f").st_mode) & 0o660 == 0o660
    projected = tmp_path / "proj"
    projected.mkdir(mode=0o755)
    (projected / "key").write_text("v")
    os.chmod(projected / "key", 0o400)
    os.symlink("key", projected / "link")
    set_volume_ownership(str(projected), gid, readonly=True)
    assert (os.stat(projected / "key").st_gid, stat.S_IMODE(os.stat(projected / "key").st_mode)) == (gid, 0o440)
    assert stat.S_IMODE(os.stat(projected).st_mode) == 0o2755
    assert fs_group_modes({"key": (b"v", 0o400)}, gid) == {"key": (b"v", 0o440)}
    assert fs_group_modes({"key": (b"v", 0o400)}, None) == {"key": (b"v", 0o400)}
