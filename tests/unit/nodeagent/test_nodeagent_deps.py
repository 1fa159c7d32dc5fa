"""The node agent's parts depend on narrow interfaces, not on the agent: a PodWorker runs on a WorkerDeps of fakes,
StaticPods on callables and a client, and only the entry point imports nodeagent.agent."""
import ast
import os

from nodeagent.backoff import Backoff
from nodeagent.staticpods import MIRROR, StaticPods
from nodeagent.worker import PodWorker, WorkerDeps

REPO = os.path.join(os.path.dirname(__file__), "..", "..", "..")
ENTRY_POINTS = {os.path.join("kemu", "cli", "daemons.py")}


def test_only_the_entry_point_imports_the_agent():
    importers = set()
    for top in ("nodeagent", "kemu", "runtime", "proxy", "clusterdns", "cni"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(root, name)
                with open(path) as f:
                    tree = ast.parse(f.read())
                if any(isinstance(n, ast.ImportFrom) and n.module == "nodeagent.agent" or
                       isinstance(n, ast.Import) and any(a.name == "nodeagent.agent" for a in n.names)
                       for n in ast.walk(tree)):
                    importers.add(os.path.relpath(path, REPO))
    assert importers <= ENTRY_POINTS, importers


class FakeRuntime:
    def __init__(self, pods_dir: str) -> None:
        self.pods_dir = pods_dir
        self.removed = []

    def pod_dir(self, meta) -> str:
        return os.path.join(self.pods_dir, f"{meta.namespace}_{meta.name}_{meta.uid}")

    def sandbox(self, meta):
        return None

    def remove_pod(self, config) -> None:
        self.removed.append(config)


class FakeProber:
    def __init__(self) -> None:
        self.removed = []

    def remove_pod(self, uid: str) -> None:
        self.removed.append(uid)


def test_a_deleted_pod_is_removed_through_the_deps_alone(tmp_path):
    runtime, prober, terminated, events = FakeRuntime(str(tmp_path)), FakeProber(), [], []
    deps = WorkerDeps(runtime=runtime, prober=prober, status=None, record=lambda *a: events.append(a),
                      backoff=Backoff(10, 300), exit_watcher=None, lookup=lambda *a: None, services=list,
                      on_terminated=terminated.append, node_ip="192.168.56.11", cluster_dns="10.96.0.10",
                      cluster_domain="cluster.local", sync_frequency=10.0, memory_capacity=2**30)
    pod = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1", "deletionTimestamp": "2026-01-01T00:00:00Z",
                        "deletionGracePeriodSeconds": 0},
           "spec": {"containers": [{"name": "app"}]}}
    worker = PodWorker(deps, pod)
    worker.adopt()
    assert worker.pod_dir == os.path.join(str(tmp_path), "team_web_u-1")
    worker._sync()
    assert worker.finished.is_set() and terminated == [pod] and prober.removed == ["u-1"]
    [config] = runtime.removed
    assert (config.metadata.uid, config.linux.cgroup_parent) == ("u-1", "besteffort")


class FakeClient:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict] = {}

    def get(self, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def create(self, obj):
        self.objects[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj

    def delete(self, kind, namespace, name):
        self.objects.pop((kind, namespace, name), None)


WEB = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: kemu/agnhost, args: [netexec]}]
"""


def test_static_pods_start_and_stop_through_callables(tmp_path):
    client, started, stopped = FakeClient(), [], []
    cache: list[dict] | None = None
    static = StaticPods(str(tmp_path), "node1", client, started.append, stopped.append, lambda: cache)
    (tmp_path / "web.yaml").write_text(WEB)
    static.sync()
    [pod] = started
    mirror = client.get("Pod", "default", "web-node1")
    assert mirror["metadata"]["annotations"][MIRROR] == pod["metadata"]["uid"]
    static.sync()
    assert len(started) == 1, "a running static pod is not started again"
    (tmp_path / "web.yaml").unlink()
    cache = [mirror]   # the informer has listed: the mirror of a removed manifest goes
    static.sync()
    assert stopped == [pod] and client.get("Pod", "default", "web-node1") is None
