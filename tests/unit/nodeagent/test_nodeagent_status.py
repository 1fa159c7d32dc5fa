"""Pod phase and conditions as kubelet's getPhase / generateAPIPodStatus compute them."""
import pytest

from kemu.api.tables import pod_status_reason
from nodeagent.status import ContainerState, PodState, build_status, compute_phase

EXIT0 = {"exitCode": 0, "reason": "Completed"}
EXIT1 = {"exitCode": 1, "reason": "Error"}


def pod(policy="Always", containers=("a",), inits=(), sidecars=()):
    init = [{"name": n} for n in inits] + [{"name": n, "restartPolicy": "Always"} for n in sidecars]
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": n} for n in containers],
                     "initContainers": init}}


def running(name, started=True):
    return ContainerState(name, running_since=1.0, waiting_reason=None, started=started, ready=started)


def done(name, result):
    return ContainerState(name, terminated=result, waiting_reason=None)


def restarting(name, result):
    return ContainerState(name, last_terminated=result)


def state(*containers):
    return PodState(containers={c.name: c for c in containers})


@pytest.mark.parametrize("policy, containers, phase", [
    ("Always", [], "Pending"),                                            # nothing started yet
    ("Always", [ContainerState("a")], "Pending"),                         # waiting, never ran
    ("Always", [running("a")], "Running"),
    ("Always", [restarting("a", EXIT1)], "Running"),                      # crash loop stays Running
    ("OnFailure", [restarting("a", EXIT1)], "Running"),
    ("OnFailure", [done("a", EXIT0)], "Succeeded"),
    ("Never", [done("a", EXIT1)], "Failed"),
    ("Never", [done("a", EXIT0)], "Succeeded"),
])
def test_phase_of_one_container(policy, containers, phase):
    assert compute_phase(pod(policy), state(*containers)) == phase


def test_phase_with_two_containers():
    p = pod("Never", containers=("a", "b"))
    assert compute_phase(p, state(done("a", EXIT0), running("b"))) == "Running"
    assert compute_phase(p, state(done("a", EXIT0), done("b", EXIT1))) == "Failed"


def test_phase_with_init_containers():
    p = pod("Always", inits=("i1", "i2"))
    assert compute_phase(p, state()) == "Pending"
    assert compute_phase(p, state(done("i1", EXIT0), running("i2"))) == "Pending"
    assert compute_phase(p, state(done("i1", EXIT0), restarting("i2", EXIT1))) == "Pending"
    assert compute_phase(p, state(done("i1", EXIT0), done("i2", EXIT0), running("a"))) == "Running"
    never = pod("Never", inits=("i1",))
    assert compute_phase(never, state(done("i1", EXIT1))) == "Failed"


def test_sidecar_must_start_first_and_does_not_hold_the_pod_after():
    p = pod("Never", sidecars=("side",))
    assert compute_phase(p, state(running("side", started=False))) == "Pending"
    assert compute_phase(p, state(running("side"), running("a"))) == "Running"
    assert compute_phase(p, state(running("side"), done("a", EXIT0))) == "Running"    # until it is stopped
    assert compute_phase(p, state(done("side", {"exitCode": 137}), done("a", EXIT0))) == "Succeeded"


def test_terminal_phase_sticks():
    s = state(running("a"))
    s.phase = "Failed"
    assert compute_phase(pod(), s) == "Failed"


def test_conditions_and_transition_times():
    p = pod("Always", inits=("i1",))
    st = state(running("i1"))
    first = build_status(p, st, {}, now=lambda: "T1")
    cond = {c["type"]: c for c in first["conditions"]}
    assert cond["Initialized"]["status"] == "False" and cond["Initialized"]["reason"] == "ContainersNotInitialized"
    assert cond["Ready"]["message"] == "containers with unready status: [a]"
    assert first["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod_status_reason(dict(p, status=first)) == "Init:0/1"
    st.containers["i1"] = done("i1", EXIT0)
    st.containers["a"] = running("a")
    second = build_status(p, st, first, now=lambda: "T2")
    cond2 = {c["type"]: c for c in second["conditions"]}
    assert cond2["Ready"]["status"] == "True" and cond2["Ready"]["lastTransitionTime"] == "T2"
    assert cond2["PodScheduled"]["lastTransitionTime"] == "T1"     # unchanged condition keeps its time
    assert pod_status_reason(dict(p, status=second)) == "Running"


def test_status_column_reasons():
    p = pod("Always")
    st = state(restarting("a", EXIT1))
    st.containers["a"].waiting_reason = "CrashLoopBackOff"
    assert pod_status_reason(dict(p, status=build_status(p, st, {}))) == "CrashLoopBackOff"
    failing_init = pod("Always", inits=("i1",))
    st = state(restarting("i1", EXIT1))
    st.containers["i1"].waiting_reason = "CrashLoopBackOff"
    assert pod_status_reason(dict(failing_init, status=build_status(failing_init, st, {}))) == "Init:CrashLoopBackOff"
    never = pod("Never", inits=("i1",))
    assert pod_status_reason(dict(never, status=build_status(never, state(done("i1", EXIT1)), {}))) == "Init:Error"
    completed = pod("OnFailure")
    status = build_status(completed, state(done("a", EXIT0)), {})
    assert (status["phase"], pod_status_reason(dict(completed, status=status))) == ("Succeeded", "Completed")


class FakeClient:
    def __init__(self, pod):
        self.pod, self.gets, self.writes = pod, 0, 0

    def mutate(self, kind, ns, name, fn):
        import copy
        self.gets += 1
        obj = copy.deepcopy(self.pod)
        before = repr(obj)
        if fn(obj) is False or repr(obj) == before:
            return obj
        self.writes += 1
        self.pod = obj
        return obj


def test_status_manager_skips_the_store_while_nothing_changed_but_rechecks():
    import copy

    from nodeagent.status import StatusManager
    now = [0.0]
    client = FakeClient(dict(pod(), status={}))
    informer_view = lambda: copy.deepcopy(client.pod)   # noqa: E731 (what the worker holds: the informer's copy)
    manager = StatusManager(client, recheck=10, clock=lambda: now[0])
    st = state(running("a"))
    manager.write(informer_view(), st, "BestEffort")
    manager.write(informer_view(), st, "BestEffort")
    assert (client.gets, client.writes) == (1, 1)
    st.containers["a"].ready = False              # a change goes to the store at once
    manager.write(informer_view(), st, "BestEffort")
    assert (client.gets, client.writes) == (2, 2)
    client.pod["status"]["phase"] = "Pending"     # someone else changed it (e.g. the node lifecycle controller):
    manager.write(informer_view(), st, "BestEffort")   # seen in the informer's copy, corrected at once
    assert (client.gets, client.writes) == (3, 3) and client.pod["status"]["phase"] == "Running"
    stale = dict(pod(), status={})                # a copy older than our own write: checked against the store,
    now[0] = 11                                   # which needs no write
    manager.write(stale, st, "BestEffort")
    assert (client.gets, client.writes) == (4, 3)