"""The files kubelet manages for every container: /etc/hosts, /etc/hostname, /etc/resolv.conf and a private
/tmp. They are bind-mounted inside the container's own mount namespace."""
from __future__ import annotations

import os
import sys


def hosts_file(pod: dict, pod_ip: str) -> str:
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    subdomain = pod["spec"].get("subdomain")
    if subdomain:
        fqdn = f"{hostname}.{subdomain}.{pod['metadata']['namespace']}.svc.cluster.local"
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    for alias in pod["spec"].get("hostAliases") or []:
        lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def resolv_conf(pod: dict, cluster_dns: str, cluster_domain: str) -> str:
    """dnsPolicy ClusterFirst / Default / None (+ dnsConfig), as kubelet writes it."""
    spec = pod["spec"]
    policy = spec.get("dnsPolicy", "ClusterFirst")
    if spec.get("hostNetwork") and policy == "ClusterFirst":
        policy = "Default"
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        ns = pod["metadata"]["namespace"]
        nameservers = [cluster_dns]
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = ["ndots:5"]
    elif policy == "Default":
        nameservers = [cluster_dns]   # the node's resolver is the lab's DNS: nothing leaves the lab
    config = spec.get("dnsConfig") or {}
    nameservers += [n for n in config.get("nameservers") or [] if n not in nameservers]
    searches += [s for s in config.get("searches") or [] if s not in searches]
    for opt in config.get("options") or []:
        text = opt["name"] + (f":{opt['value']}" if opt.get("value") is not None else "")
        options = [o for o in options if o.split(":")[0] != opt["name"]] + [text]
    out = [f"nameserver {n}" for n in nameservers[:3]]
    if searches:
        out.append("search " + " ".join(searches[:32]))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def write(path: str, content: str) -> str:
    """Replace `path` atomically, but only when the content changes: running containers have the file
    bind-mounted, and a replaced file would leave them holding the old, deleted inode."""
    try:
        with open(path) as f:
            if f.read() == content:
                return path
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(content)
    os.replace(tmp, path)
    return path


def standard_mounts(pod_dir: str, pod: dict, container: dict, pod_ip: str, cluster_dns: str,
                    cluster_domain: str) -> list[dict]:
    """Bind mounts every container gets; /tmp is private per container (images have their own /tmp)."""
    etc = os.path.join(pod_dir, "etc")
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    cdir = os.path.join(pod_dir, "containers", container["name"])
    tmp = os.path.join(cdir, "tmp")
    os.makedirs(tmp, mode=0o1777, exist_ok=True)
    os.chmod(tmp, 0o1777)
    return [
        {"source": write(os.path.join(etc, "hosts"), hosts_file(pod, pod_ip)), "target": "/etc/hosts"},
        {"source": write(os.path.join(etc, "hostname"), hostname + "\n"), "target": "/etc/hostname"},
        {"source": write(os.path.join(etc, "resolv.conf"), resolv_conf(pod, cluster_dns, cluster_domain)),
         "target": "/etc/resolv.conf"},
        {"source": tmp, "target": "/tmp"},
    ] + kemu_install_mounts()


# what a container's own root hides from the host: a private /tmp, a tmpfs /run and /dev (see runtime/shim.py)
MASKED_IN_CONTAINERS = ("/tmp", "/run", "/dev")


def kemu_install_mounts() -> list[dict]:
    """kemu's own code and venv, bound read-only at the same path when they live somewhere a container's root
    hides (a checkout under /tmp, say), so that `kemu agnhost` and other kemu commands run inside pods."""
    source_tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths: list[str] = []
    for path in sorted({source_tree, os.path.realpath(sys.prefix)}):
        if any(path == m or path.startswith(m + "/") for m in MASKED_IN_CONTAINERS) and \
                not any(path.startswith(p + "/") for p in paths):
            paths.append(path)
    return [{"source": p, "target": p, "readonly": True} for p in paths]
