"""The resolv.conf kubelet writes for each dnsPolicy (nodeagent/podfiles.py), as the cluster DNS expects it."""
from __future__ import annotations

from nodeagent.podfiles import resolv_conf


def pod(**spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": [], **spec}}


def test_cluster_first_uses_the_service_ip_and_the_search_path():
    assert resolv_conf(pod(), "10.96.0.10", "cluster.local") == (
        "nameserver 10.96.0.10\nsearch team.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")


def test_host_network_pods_fall_back_to_default_unless_cluster_first_with_host_net():
    assert "search" not in resolv_conf(pod(hostNetwork=True), "10.96.0.10", "cluster.local")
    assert "search team.svc.cluster.local" in resolv_conf(
        pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), "10.96.0.10", "cluster.local")


def test_none_takes_everything_from_dns_config_and_config_merges_into_cluster_first():
    config = {"nameservers": ["10.96.0.10"], "searches": ["corp.example"],
              "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert resolv_conf(pod(dnsPolicy="None", dnsConfig=config), "10.96.0.10", "cluster.local") == (
        "nameserver 10.96.0.10\nsearch corp.example\noptions ndots:2 edns0\n")
    merged = resolv_conf(pod(dnsConfig=config), "10.96.0.10", "cluster.local")
    assert "search team.svc.cluster.local svc.cluster.local cluster.local corp.example" in merged
    assert "options ndots:2 edns0" in merged and merged.count("nameserver") == 1


def test_default_policy_stays_inside_the_lab():
    # upstream copies the node's resolv.conf; kemu points at the cluster DNS so nothing leaves the lab
    assert resolv_conf(pod(dnsPolicy="Default"), "10.96.0.10", "cluster.local") == "nameserver 10.96.0.10\n"
