"""`kemu lab up --node-transport api`: the lab's own node daemons (agent, proxy, DNS, NetworkPolicy enforcer) reach
the cluster only through the API server, each node with its certificate CN=system:node:<name>; the lab works as
with the default in-process store access: nodes Ready, pods across nodes, Services, DNS."""
from __future__ import annotations

import json
import os

import pytest

from kemu.client.rest import load_kubeconfig

pytestmark = pytest.mark.root

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints: []
      containers:
      - name: web
        image: kemu/agnhost
        args: ["netexec", "--http-port=8080"]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.mark.kemu_lab(nodes=2, node_transport="api")
def test_a_lab_whose_nodes_use_the_api(kemu_lab):
    lab = kemu_lab.lab
    for node in lab.state.nodes:
        with open(os.path.join(lab.dir, "nodes", node, "node.json")) as f:
            config = json.load(f)
        assert config["store_url"] == "" and config["kubeconfig"].endswith(f"/nodes/{node}/kubelet.conf")
        creds = load_kubeconfig(config["kubeconfig"])
        assert creds.server == "https://192.168.56.1:6443" and creds.cert_data and not creds.token
    kemu_lab.apply(WEB)
    ips = kemu_lab.wait_endpoints("web", 2, timeout=60)
    pods, _ = kemu_lab.client.list("Pod", "default")
    assert {p["spec"]["nodeName"] for p in pods} == {"node1", "node2"}, "spread over both nodes"
    # from node1's host each pod by IP (routed to both nodes); from a pod the Service by name (the nodes' DNS)
    for ip in ips:
        assert kemu_lab.wait_http("node1", f"http://{ip}:8080/hostname", from_host=True).startswith("web-")
    assert kemu_lab.wait_http(pods[0]["metadata"]["name"], "http://web/hostname").startswith("web-")
