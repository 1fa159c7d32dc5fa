"""Node configuration: a KubeletConfiguration-like YAML plus what the lab tells each node."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields

import yaml

from kemu.api.network import CLUSTER_CIDR, CLUSTER_DNS_IP, CLUSTER_DOMAIN, SERVICE_CIDR


def seconds(value: str | int | float) -> float:
    """A Go duration ("10s", "1m30s", "500ms") or a number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise ValueError(f"{value!r} is not a duration like 10s, 1m30s or 500ms")
    return total


@dataclass
class NodeConfig:
    node_name: str
    state_dir: str                    # everything this node writes: pods, CNI config and IPAM, logs
    store_url: str                    # the store (in-process client); "" when `kubeconfig` is set
    node_ip: str
    pod_cidr: str
    cluster_cidr: str = CLUSTER_CIDR
    service_cidr: str = SERVICE_CIDR
    cluster_dns: str = CLUSTER_DNS_IP
    cluster_domain: str = CLUSTER_DOMAIN
    cgroup_root: str = ""             # default kemu-<lab>-<node>
    cni_plugin: str = "kemu-bridge"   # or "bridge" (the reference bridge + host-local)
    cni_bin_dirs: list[str] = field(default_factory=list)
    bridge: str = "kemu0"
    # kubelet knobs (KubeletConfiguration names, durations in seconds here)
    crash_loop_initial: float = 10.0
    crash_loop_max: float = 300.0
    node_status_update_frequency: float = 10.0
    sync_frequency: float = 10.0      # periodic pod resync; exits, probes, updates and ConfigMaps wake a pod at once
    max_pods: int = 110
    static_pod_path: str = ""         # directory of static pod manifests ("" = none)
    # the agent's own HTTPS server (kubelet's :10250: logs, exec, port-forward, stats); off without a certificate
    port: int = 10250                 # KubeletConfiguration port; it listens on node_ip only
    tls_cert_file: str = ""           # tlsCertFile: serving certificate (SANs: node IP, node name)
    tls_private_key_file: str = ""    # tlsPrivateKeyFile
    client_ca_file: str = ""          # authentication.x509.clientCAFile: clients must present a cert it signed
    # service-account tokens: the agent signs its pods' bound tokens with this key ("" = placeholder tokens) and
    # projects root_ca_file as their ca.crt (the API server's CA)
    service_account_key_file: str = ""
    root_ca_file: str = ""
    # image catalog entries the lab adds or overrides (`images:` in the config; kemu/api/images.py, docs/images.md)
    image_catalog: list = field(default_factory=list)
    # joining through the API server (docs/cluster.md "Joining through the API"): a kubeconfig (kubelet's
    # --kubeconfig: server, CA, the node's client certificate) instead of store_url; pod_cidr may then be empty:
    # the agent waits for the node IPAM controller to set its Node's spec.podCIDR
    kubeconfig: str = ""
    # "host-gw": the agent keeps a route to every other Node's spec.podCIDR via its InternalIP (flannel's host-gw
    # backend), for nodes whose peers the lab does not program (joined VMs); "" = someone else routes
    pod_routes: str = ""

    @property
    def pods_dir(self) -> str:
        return os.path.join(self.state_dir, "pods")

    @property
    def cni_dir(self) -> str:
        return os.path.join(self.state_dir, "cni")


# KubeletConfiguration field → (NodeConfig field, converter)
_KUBELET_FIELDS = {
    "nodeStatusUpdateFrequency": ("node_status_update_frequency", seconds),
    "syncFrequency": ("sync_frequency", seconds),
    "maxPods": ("max_pods", int),
    "clusterDomain": ("cluster_domain", str),
    "staticPodPath": ("static_pod_path", str),
    "port": ("port", int),
    "tlsCertFile": ("tls_cert_file", str),
    "tlsPrivateKeyFile": ("tls_private_key_file", str),
}


def load_kubelet_config(path: str) -> dict:
    """Read a KubeletConfiguration-like YAML into NodeConfig overrides; unknown fields are an error."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: must be a KubeletConfiguration mapping")
    out: dict = {}
    for key, value in doc.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "clusterDNS":
            out["cluster_dns"] = value[0] if isinstance(value, list) else value
        elif key == "crashLoopBackOff":
            for sub, target in (("initialContainerRestartPeriod", "crash_loop_initial"),
                                ("maxContainerRestartPeriod", "crash_loop_max")):
                if sub in (value or {}):
                    out[target] = seconds(value[sub])
            unknown = set(value or {}) - {"initialContainerRestartPeriod", "maxContainerRestartPeriod"}
            if unknown:
                raise ValueError(f"{path}: crashLoopBackOff.{sorted(unknown)[0]}: unknown field; use "
                                 "initialContainerRestartPeriod or maxContainerRestartPeriod")
        elif key == "authentication":
            out.update(_authentication(path, value))
        elif key == "images":
            from kemu.api.images import ImageError, load_overrides
            try:
                load_overrides(value, path)
            except ImageError as exc:
                raise ValueError(str(exc)) from None
            out["image_catalog"] = value
        elif key == "cniPlugin":
            if value not in ("kemu-bridge", "bridge"):
                raise ValueError(f"{path}: cniPlugin: must be kemu-bridge or bridge")
            out["cni_plugin"] = value
        elif key in _KUBELET_FIELDS:
            target, conv = _KUBELET_FIELDS[key]
            try:
                out[target] = conv(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: {key}: {exc}") from exc
        else:
            raise ValueError(f"{path}: {key}: unknown field; kemu reads {', '.join(sorted(KNOWN_FIELDS))}")
    return out


KNOWN_FIELDS = set(_KUBELET_FIELDS) | {"clusterDNS", "crashLoopBackOff", "cniPlugin", "authentication", "images"}


def _authentication(path: str, value) -> dict:
    """authentication.x509.clientCAFile (kemu's only authenticator: client certificates)."""
    x509 = (value or {}).get("x509") if isinstance(value, dict) else None
    unknown = set(value or {}) - {"x509"} if isinstance(value, dict) else {"(not a mapping)"}
    if unknown or not isinstance(x509, dict) or set(x509) - {"clientCAFile"}:
        raise ValueError(f"{path}: authentication: kemu reads only authentication.x509.clientCAFile")
    return {"client_ca_file": str(x509.get("clientCAFile", ""))}


def node_config_fields() -> set[str]:
    return {f.name for f in fields(NodeConfig)}
