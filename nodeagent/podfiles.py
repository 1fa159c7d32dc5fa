"""What kubelet prepares for every container: the DNS settings of the sandbox (the runtime writes them to
/etc/resolv.conf, with /etc/hostname), and the mounts of /etc/hosts and a private /tmp, bind-mounted inside the
container's own mount namespace."""
from __future__ import annotations

import os
import sys

from runtime.cri import DNSConfig, Mount
from runtime.pods import write_file

MAX_NAMESERVERS, MAX_SEARCHES = 3, 32   # kubelet's validation limits (the resolver reads no more)


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


def dns_config(pod: dict, cluster_dns: str, cluster_domain: str) -> DNSConfig:
    """dnsPolicy ClusterFirst / Default / None (+ dnsConfig), as kubelet's DNS configurer builds it."""
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
    return DNSConfig(tuple(nameservers[:MAX_NAMESERVERS]), tuple(searches[:MAX_SEARCHES]), tuple(options))


def resolv_conf(pod: dict, cluster_dns: str, cluster_domain: str) -> str:
    """The resolv.conf the pod's containers see."""
    return dns_config(pod, cluster_dns, cluster_domain).resolv_conf()


def standard_mounts(pod_dir: str, pod: dict, container: dict, pod_ip: str) -> list[Mount]:
    """Bind mounts kubelet adds to every container: /etc/hosts (it knows the pod IP) and a private /tmp (images
    have their own /tmp); /etc/hostname and /etc/resolv.conf are the sandbox's, mounted by the runtime."""
    cdir = os.path.join(pod_dir, "containers", container["name"])
    tmp = os.path.join(cdir, "tmp")
    os.makedirs(tmp, mode=0o1777, exist_ok=True)
    os.chmod(tmp, 0o1777)
    return [
        Mount("/etc/hosts", write_file(os.path.join(pod_dir, "etc", "hosts"), hosts_file(pod, pod_ip))),
        Mount("/tmp", tmp),
    ] + kemu_install_mounts()


# what a container's own root hides from the host: a private /tmp, a tmpfs /run and /dev (see runtime/shim.py)
MASKED_IN_CONTAINERS = ("/tmp", "/run", "/dev")


def kemu_install_mounts() -> list[Mount]:
    """kemu's own code and venv, bound read-only at the same path when they live somewhere a container's root
    hides (a checkout under /tmp, say), so that `kemu agnhost` and other kemu commands run inside pods."""
    source_tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths: list[str] = []
    for path in sorted({source_tree, os.path.realpath(sys.prefix)}):
        if any(path == m or path.startswith(m + "/") for m in MASKED_IN_CONTAINERS) and \
                not any(path.startswith(p + "/") for p in paths):
            paths.append(path)
    return [Mount(p, p, readonly=True) for p in paths]
