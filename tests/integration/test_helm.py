"""Helm 3 (v3.17, the real binary) against a lab's API server: install, upgrade, rollback and uninstall of a small
chart (a Deployment, a Service, a ConfigMap) leave the expected objects and release Secrets
(`sh.helm.release.v1.<name>.v<N>`, label owner=helm); `helm list` and `helm status` read them back."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.root]

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
    "values.yaml": "greeting: hi\nreplicas: 1\n",
    "templates/configmap.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n"
                                 "data:\n  greeting: {{ .Values.greeting | quote }}\n"),
    "templates/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n"
        "  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n"
        "  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers:\n"
        "      - name: web\n        image: kemu/agnhost\n        args: [netexec, --http-port=8080]\n"),
    "templates/service.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-svc\nspec:\n"
        "  selector: {app: {{ .Release.Name }}}\n  ports: [{port: 80, targetPort: 8080}]\n"),
}


@pytest.fixture
def chart(tmp_path) -> str:
    root = tmp_path / "hello"
    for name, text in CHART.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return str(root)


def _releases(kemu_lab) -> list[str]:
    items, _ = kemu_lab.client.list("Secret", "default")
    return sorted(s["metadata"]["name"] for s in items if (s["metadata"].get("labels") or {}).get("owner") == "helm")


def test_install_upgrade_rollback_uninstall(kemu_lab, helm, chart):
    helm("install", "demo", chart, "--wait", "--timeout", "60s")
    assert kemu_lab.get("ConfigMap", "demo-cfg")["data"] == {"greeting": "hi"}
    assert kemu_lab.get("Service", "demo-svc")["spec"]["ports"][0]["port"] == 80
    assert kemu_lab.get("Deployment", "demo-web")["spec"]["replicas"] == 1
    assert _releases(kemu_lab) == ["sh.helm.release.v1.demo.v1"]
    listed = json.loads(helm("list", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in listed] == [("demo", "1", "deployed")]
    helm("upgrade", "demo", chart, "--set", "greeting=hello,replicas=2")
    assert kemu_lab.get("ConfigMap", "demo-cfg")["data"] == {"greeting": "hello"}
    assert kemu_lab.get("Deployment", "demo-web")["spec"]["replicas"] == 2
    assert "REVISION: 2" in helm("status", "demo").stdout
    helm("rollback", "demo", "1")
    assert kemu_lab.get("ConfigMap", "demo-cfg")["data"] == {"greeting": "hi"}
    assert _releases(kemu_lab) == [f"sh.helm.release.v1.demo.v{n}" for n in (1, 2, 3)]
    assert "STATUS: deployed" in helm("status", "demo").stdout
    helm("uninstall", "demo")
    assert kemu_lab.get("ConfigMap", "demo-cfg") is None and kemu_lab.get("Service", "demo-svc") is None
    assert _releases(kemu_lab) == []
    assert json.loads(helm("list", "-o", "json").stdout) == []
