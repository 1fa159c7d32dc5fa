"""The runtime's CRI-shaped requests: kubelet's cgroup numbers survive the trip into the cgroup drivers exactly,
sandbox configs round-trip through the pod directory, credentials come from the security context alone, and the
runtime package imports nothing above it."""
import ast
import os

import pytest

from nodeagent.kuberuntime import linux_resources
from runtime.cgroups.resources import Resources, cpu_quota, cpu_shares
from runtime.cri import (DNSConfig, LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
                         PodSandboxConfig, PodSandboxMetadata)
from runtime.pods import credentials

RUNTIME = os.path.join(os.path.dirname(__file__), "..", "..", "..", "runtime")


@pytest.mark.parametrize("millis", [None, 0, 1, 2, 9, 10, 11, 99, 100, 250, 333, 999, 1000, 1001, 1500, 3999,
                                    255999, 256000, 400000])
def test_cpu_values_reach_the_drivers_unchanged(millis):
    sent = linux_resources(Resources(cpu_request_millis=millis, cpu_limit_millis=millis))
    got = sent.cgroup_values()
    assert cpu_shares(got.cpu_request_millis) == cpu_shares(millis) == sent.cpu_shares
    assert cpu_quota(got.cpu_limit_millis) == cpu_quota(millis) == sent.cpu_quota


def test_every_request_between_1m_and_8_cpus_keeps_its_shares_and_quota():
    for millis in range(1, 8001):
        got = linux_resources(Resources(millis, millis)).cgroup_values()
        assert (cpu_shares(got.cpu_request_millis), cpu_quota(got.cpu_limit_millis)) == \
            (cpu_shares(millis), cpu_quota(millis)), millis


def test_memory_and_pids_pass_through_and_unset_stays_unset():
    res = LinuxContainerResources(memory_limit_in_bytes=64 << 20, pids_limit=100).cgroup_values()
    assert (res.memory_limit_bytes, res.pids_limit, res.cpu_request_millis, res.cpu_limit_millis) == \
        (64 << 20, 100, None, None)
    assert LinuxContainerResources().cgroup_values() == Resources()


def test_sandbox_config_round_trips_through_json():
    config = PodSandboxConfig(PodSandboxMetadata("web", "team", "u-1", attempt=2), "web",
                              DNSConfig(("10.96.0.10",), ("team.svc.cluster.local",), ("ndots:5",)),
                              LinuxPodSandboxConfig("burstable", LinuxContainerResources(cpu_shares=512, cpu_quota=None,
                                                                                         memory_limit_in_bytes=1 << 30),
                                                    share_process_namespace=True, host_pid=True))
    assert PodSandboxConfig.from_json(config.to_json()) == config


def test_resolv_conf_of_an_empty_dns_config_is_an_empty_file():
    assert DNSConfig().resolv_conf() == "\n"


def test_credentials_from_the_security_context():
    root = credentials(LinuxContainerSecurityContext())
    assert root["uid"] is None and root["caps"]["ambient"] == 0 and root["caps"]["bounding"] > 0
    user = credentials(LinuxContainerSecurityContext(run_as_user=1000, run_as_group=1000, supplemental_groups=(5,),
                                                     capabilities_add=("NET_BIND_SERVICE",),
                                                     capabilities_drop=("ALL",), no_new_privs=True))
    assert (user["uid"], user["gid"], user["supplemental_groups"], user["no_new_privs"]) == (1000, 1000, [5], True)
    assert user["caps"]["bounding"] == user["caps"]["ambient"] == 1 << 10   # CAP_NET_BIND_SERVICE only
    privileged = credentials(LinuxContainerSecurityContext(privileged=True, no_new_privs=True))
    assert privileged["caps"] is None and privileged["privileged"] and privileged["no_new_privs"] is False


def _imported_modules(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_runtime_imports_nothing_above_it():
    for root, _, files in os.walk(RUNTIME):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                above = {m for m in _imported_modules(path)
                         if m.split(".")[0] in ("kemu", "nodeagent", "proxy", "clusterdns")}
                assert not above, f"{os.path.relpath(path, RUNTIME)} imports {sorted(above)}"
