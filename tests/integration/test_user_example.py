"""The worked example from docs/testing.md: testing a NetworkPolicy-like nftables rule against a kemu lab.

A user's networking code (here: a rule that isolates pods labelled role=db so that only role=api pods reach them)
is applied to a real lab node, and the test checks what packets do. It runs as shown in the guide.
"""
import pytest

pytestmark = pytest.mark.root

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {role: db}}
spec:
  containers: [{name: db, image: kemu/agnhost, args: ["netexec", "--http-port=8080"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: api, labels: {role: api}}
spec:
  containers: [{name: api, command: ["sleep", "infinity"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: intruder}
spec:
  containers: [{name: x, command: ["sleep", "infinity"]}]
"""


def isolate(lab, protected_ip: str, allowed_ips: list[str]) -> None:
    """The code under test: allow only `allowed_ips` to reach `protected_ip` (bridged pod traffic)."""
    node = "node1"
    lab.host_exec(node, ["nft", "add", "table", "ip", "policy-example"])
    lab.host_exec(node, ["nft", "add", "chain", "ip", "policy-example", "forward",
                         "{ type filter hook forward priority 0; policy accept; }"])
    allowed = "{ " + ", ".join(allowed_ips) + " }"
    lab.host_exec(node, ["nft", "add", "rule", "ip", "policy-example", "forward", "ip", "daddr", protected_ip,
                         "ip", "saddr", "!=", allowed, "ct", "state", "new", "reject"])


def test_only_api_pods_reach_the_database(kemu_lab):
    kemu_lab.apply(PODS)
    pods = {name: kemu_lab.wait_pod(name, ready=True) for name in ("db", "api", "intruder")}
    ip = {name: pod["status"]["podIP"] for name, pod in pods.items()}
    url = f"http://{ip['db']}:8080/hostname"
    assert kemu_lab.wait_http("intruder", url) == "db", "before the policy everyone gets in"

    isolate(kemu_lab, ip["db"], [ip["api"]])

    assert kemu_lab.http("api", url) == "db"
    res = kemu_lab.kemu("exec", "intruder", "--", "curl", "-sS", "-m", "3", url, check=False)
    assert res.returncode == 7, "rejected: connection refused, not a timeout"
    assert kemu_lab.http("api", f"http://{ip['db']}:8080/clientip").startswith(ip["api"] + ":")
