"""Pod -> runtime requests (kubelet's generate*Config): what the runtime is told for a pod and a container."""
from nodeagent.kuberuntime import container_config, container_security, sandbox_config
from runtime.cri import Mount

Mi = 2**20


def pod(**spec):
    base = {"containers": [{"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                                         "limits": {"cpu": "500m", "memory": "128Mi"}}}]}
    return {"metadata": {"name": "web", "namespace": "team", "uid": "u-1"}, "spec": dict(base, **spec)}


def test_sandbox_config_of_a_burstable_pod():
    config = sandbox_config(pod(shareProcessNamespace=True, hostname="front"), "10.96.0.10", "cluster.local",
                            attempt=1)
    assert (config.metadata.name, config.metadata.namespace, config.metadata.uid, config.metadata.attempt) == \
        ("web", "team", "u-1", 1)
    assert config.hostname == "front" and config.linux.share_process_namespace and not config.linux.host_pid
    assert config.linux.cgroup_parent == "burstable"
    res = config.linux.resources
    assert (res.cpu_shares, res.cpu_quota, res.cpu_period, res.memory_limit_in_bytes) == (256, 50000, 100000, 128 * Mi)
    assert config.dns_config.servers == ("10.96.0.10",) and config.dns_config.options == ("ndots:5",)
    assert config.dns_config.searches[0] == "team.svc.cluster.local"


def test_cgroup_parent_per_qos_class():
    guaranteed = pod(containers=[{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
    assert sandbox_config(guaranteed, "d", "c").linux.cgroup_parent == ""
    best_effort = sandbox_config(pod(containers=[{"name": "a"}]), "d", "c")
    assert best_effort.linux.cgroup_parent == "besteffort"
    assert (best_effort.linux.resources.cpu_shares, best_effort.linux.resources.cpu_quota) == (2, None)
    assert sandbox_config(pod(), "d", "c").hostname == "web"


def test_container_config_carries_argv_env_mounts_resources_and_oom_score():
    p = pod()
    mounts = [Mount("/data", "/run/kemu/x", readonly=True)]
    config = container_config(p, p["spec"]["containers"][0], 3, ["sleep", "1"], {"A": "1"}, mounts, 1024 * Mi)
    assert (config.metadata.name, config.metadata.attempt, config.command, config.envs, config.mounts) == \
        ("app", 3, ["sleep", "1"], {"A": "1"}, mounts)
    assert config.termination_message_path == "/dev/termination-log" and config.working_dir is None
    res = config.linux.resources
    assert (res.cpu_shares, res.cpu_quota, res.memory_limit_in_bytes) == (256, 50000, 128 * Mi)
    assert res.oom_score_adj == 1000 - (1000 * 64 * Mi) // (1024 * Mi)    # Burstable: by the memory request


def test_security_context_merges_pod_and_container_and_adds_fs_group():
    p = pod(securityContext={"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000, "supplementalGroups": [4000]})
    c = {"name": "app", "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": True,
                                            "allowPrivilegeEscalation": False,
                                            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    sc = container_security(p, c)
    assert (sc.run_as_user, sc.run_as_group, sc.supplemental_groups) == (1001, 2000, (3000, 4000))
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert (sc.capabilities_add, sc.capabilities_drop) == (("NET_ADMIN",), ("ALL",))
    privileged = container_security(p, {"name": "x", "securityContext": {"privileged": True,
                                                                         "allowPrivilegeEscalation": False}})
    assert privileged.privileged and not privileged.no_new_privs
