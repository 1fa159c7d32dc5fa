"""`kemu rollout|scale|set command`: driving workload controllers (Deployments, DaemonSets, StatefulSets,
ReplicaSets)."""
from __future__ import annotations

import argparse
import copy
import time

from kemu.cli.common import (
    CLIError,
    namespace_of,
    open_client,
    resolve_kind,
    split_kind_name,
)

ROLLABLE = ("Deployment", "DaemonSet", "StatefulSet")
TEMPLATED = ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet")
HISTORY = ("Deployment", "StatefulSet")


def register(sub: argparse._SubParsersAction) -> None:
    """Add rollout, scale and set to kemu's parser."""
    def target(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", help="deployment/NAME, or KIND NAME")
        parser.add_argument("name", nargs="?")
        parser.add_argument("-n", "--namespace")

    rollout = sub.add_parser("rollout", help="manage the rollout of a Deployment, DaemonSet or StatefulSet").add_subparsers(
        dest="rollout_command", required=True)
    status = rollout.add_parser("status", help="watch the rollout until it completes")
    target(status)
    status.add_argument("--timeout", type=lambda v: float(v.rstrip("s")), default=300.0)
    status.add_argument("-w", "--watch", default=True, type=lambda v: v.lower() != "false")
    status.set_defaults(func=cmd_rollout_status)
    history = rollout.add_parser("history", help="list revisions (or show one with --revision)")
    target(history)
    history.add_argument("--revision", type=int)
    history.set_defaults(func=cmd_rollout_history)
    undo = rollout.add_parser("undo", help="roll back to the previous (or a given) revision")
    target(undo)
    undo.add_argument("--to-revision", type=int, default=0)
    undo.set_defaults(func=cmd_rollout_undo)
    for verb, doc in (("pause", "stop rolling out template changes"), ("resume", "resume a paused rollout"),
                      ("restart", "replace every pod (sets a restartedAt template annotation)")):
        p = rollout.add_parser(verb, help=doc)
        target(p)
        p.set_defaults(func=cmd_rollout_toggle, verb_name=verb)

    scale = sub.add_parser("scale", help="set the number of replicas")
    target(scale)
    scale.add_argument("--replicas", type=int, required=True)
    scale.set_defaults(func=cmd_scale)

    set_ = sub.add_parser("set", help="change a pod template field").add_subparsers(dest="set_command",
                                                                                    required=True)
    command = set_.add_parser("command", help="set a container's command (kemu's `set image`): "
                                              "kemu set command deploy/web [-c NAME] [--args] -- CMD...")
    command.add_argument("kind")
    command.add_argument("name", nargs="?")
    command.add_argument("-n", "--namespace")
    command.add_argument("-c", "--container", help="container name (default: all containers)")
    command.add_argument("--args", action="store_true", dest="set_args",
                         help="set the container's args instead (keeps the image's command, e.g. agnhost)")
    command.add_argument("command", nargs="*", help="after --: the new command (or args)")
    command.set_defaults(func=cmd_set_command)


# ---- helpers -------------------------------------------------------------------------------------------------------
def _target(args: argparse.Namespace, allowed: tuple[str, ...]) -> tuple[object, dict]:
    kind_name, name = split_kind_name(args.kind, args.name)
    if not name:
        raise CLIError("error: give KIND/NAME, e.g. deployment/web")
    kind = resolve_kind(kind_name)
    if kind.name not in allowed:
        raise CLIError(f'error: no {args.verb} support for {kind.plural}: use {", ".join(k.lower() for k in allowed)}')
    client = open_client(args)
    obj = client.get(kind, namespace_of(args), name)
    if obj is None:
        raise CLIError(f'Error from server (NotFound): {kind.plural}.{kind.group} "{name}" not found')
    return client, obj


def _ref(obj: dict) -> str:
    from kemu.api.kinds import kind_of
    kind = kind_of(obj)
    return f"{kind.name.lower()}.{kind.group}/{obj['metadata']['name']}" if kind.group else \
        f"{kind.name.lower()}/{obj['metadata']['name']}"


def _replicasets(client, d: dict) -> list[dict]:
    from kemu.controllers.common import controller_ref
    from kemu.controllers.deployment import revision_of
    items, _ = client.list("ReplicaSet", d["metadata"]["namespace"],
                           where=lambda rs: (controller_ref(rs) or {}).get("uid") == d["metadata"]["uid"])
    return sorted(items, key=revision_of)


def _owned_pods(client, owner: dict) -> list[dict]:
    from kemu.controllers.common import controller_ref
    items, _ = client.list("Pod", owner["metadata"]["namespace"],
                           where=lambda p: (controller_ref(p) or {}).get("uid") == owner["metadata"]["uid"])
    return items


def _mutate(client, obj: dict, fn) -> dict | None:
    meta = obj["metadata"]
    return client.mutate(obj["kind"], meta.get("namespace"), meta["name"], fn)


# ---- rollout -------------------------------------------------------------------------------------------------------
def deployment_rollout_state(d: dict, replicasets: list[dict]) -> tuple[bool, str]:
    """(done, message) for `rollout status`, judged from the ReplicaSets themselves (kemu has no generation)."""
    from kemu.controllers.deployment import condition, without_hash_label
    name = d["metadata"]["name"]
    template = without_hash_label(d["spec"]["template"])
    new = next((rs for rs in replicasets if without_hash_label(rs["spec"]["template"]) == template), None)
    if d["spec"].get("paused"):
        return False, f'Waiting for deployment "{name}" rollout to finish: deployment is paused (kemu rollout resume)'
    if new is None:
        return False, f'Waiting for deployment "{name}" rollout to finish: 0 out of ' \
                      f'{d["spec"].get("replicas", 1)} new replicas have been updated...'
    progressing = condition((d.get("status") or {}).get("conditions") or [], "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded" and \
            f'"{new["metadata"]["name"]}"' in progressing.get("message", ""):
        raise RuntimeError(f'deployment "{name}" exceeded its progress deadline')
    desired = d["spec"].get("replicas", 1)
    st = lambda rs, f: (rs.get("status") or {}).get(f, 0)  # noqa: E731
    updated = st(new, "replicas")
    total = sum(st(rs, "replicas") for rs in replicasets)
    available = sum(st(rs, "availableReplicas") for rs in replicasets)
    if updated < desired or new["spec"]["replicas"] < desired:
        return False, f'Waiting for deployment "{name}" rollout to finish: {updated} out of {desired} new ' \
                      "replicas have been updated..."
    if total > updated:
        return False, f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are ' \
                      "pending termination..."
    if available < updated:
        return False, f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated ' \
                      "replicas are available..."
    return True, f'deployment "{name}" successfully rolled out'


def daemonset_rollout_state(ds: dict, pods: list[dict]) -> tuple[bool, str]:
    """(done, message) for a DaemonSet: every scheduled pod runs the current template and is available."""
    from kemu.controllers.common import pod_available
    from kemu.controllers.daemonset import REVISION_HASH
    from kemu.controllers.deployment import template_hash
    name, desired = ds["metadata"]["name"], (ds.get("status") or {}).get("desiredNumberScheduled", 0)
    current = template_hash(ds["spec"]["template"])
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    updated = [p for p in live if (p["metadata"].get("labels") or {}).get(REVISION_HASH) == current]
    available = [p for p in updated if pod_available(p, ds["spec"].get("minReadySeconds") or 0)]
    if "desiredNumberScheduled" not in (ds.get("status") or {}):
        return False, f'Waiting for daemon set "{name}" rollout to finish: not observed by its controller yet...'
    if len(updated) < desired or len(live) > len(updated):
        return False, f'Waiting for daemon set "{name}" rollout to finish: {len(updated)} out of {desired} new ' \
                      "pods have been updated..."
    if len(available) < desired:
        return False, f'Waiting for daemon set "{name}" rollout to finish: {len(available)} of {desired} updated ' \
                      "pods are available..."
    return True, f'daemon set "{name}" successfully rolled out'


def statefulset_rollout_state(sts: dict) -> tuple[bool, str]:
    """(done, message) for a StatefulSet, as kubectl's StatefulSetStatusViewer words it."""
    spec, st = sts["spec"], sts.get("status") or {}
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        raise RuntimeError("rollout status is only available for RollingUpdate strategy type")
    if "updateRevision" not in st or (sts["metadata"].get("generation") or 0) > (st.get("observedGeneration") or 0):
        return False, "Waiting for statefulset spec update to be observed..."
    replicas = spec.get("replicas", 1)
    if st.get("readyReplicas", 0) < replicas:
        return False, f"Waiting for {replicas - st.get('readyReplicas', 0)} pods to be ready..."
    partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0
    if partition > 0:
        if st.get("updatedReplicas", 0) < replicas - partition:
            return False, f"Waiting for partitioned roll out to finish: {st.get('updatedReplicas', 0)} out of " \
                          f"{replicas - partition} new pods have been updated..."
        return True, f"partitioned roll out complete: {st.get('updatedReplicas', 0)} new pods have been updated..."
    if st["updateRevision"] != st.get("currentRevision"):
        return False, f"waiting for statefulset rolling update to complete {st.get('updatedReplicas', 0)} pods " \
                      f"at revision {st['updateRevision']}..."
    return True, f"statefulset rolling update complete {st.get('currentReplicas', 0)} pods at revision " \
                 f"{st.get('currentRevision')}..."


def _controller_revisions(client, owner: dict) -> list[dict]:
    from kemu.controllers.common import controller_ref
    items, _ = client.list("ControllerRevision", owner["metadata"]["namespace"],
                           where=lambda r: (controller_ref(r) or {}).get("uid") == owner["metadata"]["uid"])
    return sorted(items, key=lambda r: r.get("revision", 0))


def _history(client, obj: dict) -> list[tuple[int, dict, str]]:
    """(revision, pod template, change-cause) of a Deployment's ReplicaSets or a StatefulSet's revisions."""
    from kemu.controllers.deployment import CHANGE_CAUSE, revision_of, without_hash_label
    if obj["kind"] == "StatefulSet":
        return [(r.get("revision", 0), r["data"]["spec"]["template"],
                 (r["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>"))
                for r in _controller_revisions(client, obj)]
    return [(revision_of(r), without_hash_label(r["spec"]["template"]),
             (r["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>")) for r in _replicasets(client, obj)]


def cmd_rollout_status(args: argparse.Namespace) -> int:
    client, obj = _target(args, ROLLABLE)
    deadline = time.monotonic() + args.timeout
    last = ""
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    time.sleep(0.2)   # let the controller see a change made just before (kubectl waits on observedGeneration)
    while True:
        obj = client.get(obj["kind"], ns, name)
        if obj is None:
            raise CLIError(f"error: {name} was deleted")
        try:
            done, message = deployment_rollout_state(obj, _replicasets(client, obj)) \
                if obj["kind"] == "Deployment" else statefulset_rollout_state(obj) \
                if obj["kind"] == "StatefulSet" else daemonset_rollout_state(obj, _owned_pods(client, obj))
        except RuntimeError as exc:
            raise CLIError(f"error: {exc}") from None
        if message != last:
            print(message, flush=True)
            last = message
        if done:
            return 0
        if not args.watch:
            return 1
        if time.monotonic() > deadline:
            raise CLIError("error: timed out waiting for the condition")
        time.sleep(0.1)


def cmd_rollout_history(args: argparse.Namespace) -> int:
    from kemu.cli.printers import dump
    client, obj = _target(args, HISTORY)
    history = _history(client, obj)
    if args.revision:
        entry = next((h for h in history if h[0] == args.revision), None)
        if entry is None:
            raise CLIError(f"error: unable to find the specified revision {args.revision}")
        print(f"{_ref(obj)} with revision #{args.revision}")
        print("Pod Template:")
        print(dump(entry[1], "yaml"))
        return 0
    print(_ref(obj))
    for row in [("REVISION", "CHANGE-CAUSE")] + [(str(n), cause) for n, _, cause in history]:
        print(f"{row[0]:<10}{row[1]}")
    return 0


def cmd_rollout_undo(args: argparse.Namespace) -> int:
    from kemu.controllers.deployment import without_hash_label
    client, obj = _target(args, HISTORY)
    history = _history(client, obj)
    if args.to_revision:
        entry = next((h for h in history if h[0] == args.to_revision), None)
        if entry is None:
            raise CLIError(f"error: unable to find specified revision {args.to_revision} in history")
    else:
        older = [h for h in history if h[0] < max([n for n, _, _ in history] or [0])]
        if not older:
            raise CLIError(f"error: no rollout history found for {_ref(obj)}")
        entry = older[-1]
    template = entry[1]
    if without_hash_label(obj["spec"]["template"]) == template:
        print(f"{_ref(obj)} skipped rollback (current template already matches revision {entry[0]})")
        return 0

    def roll(live: dict) -> None:
        live["spec"]["template"] = copy.deepcopy(template)
    _mutate(client, obj, roll)
    print(f"{_ref(obj)} rolled back")
    return 0


def cmd_rollout_toggle(args: argparse.Namespace) -> int:
    from kemu.api.timeutil import now_rfc3339
    verb = args.verb_name
    client, obj = _target(args, ROLLABLE if verb == "restart" else ("Deployment",))
    if verb in ("pause", "resume"):
        want = verb == "pause"
        if bool(obj["spec"].get("paused")) == want:
            raise CLIError(f"error: {_ref(obj)} is {'already' if want else 'not'} paused")

        def toggle(live: dict) -> None:
            live["spec"]["paused"] = want
        _mutate(client, obj, toggle)
        print(f"{_ref(obj)} {'paused' if want else 'resumed'}")
        return 0
    if obj["spec"].get("paused"):
        raise CLIError(f"error: {_ref(obj)} is paused; resume it before restarting")
    stamp = now_rfc3339()

    def restart(live: dict) -> None:
        meta = live["spec"]["template"].setdefault("metadata", {})
        meta.setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = stamp
    _mutate(client, obj, restart)
    print(f"{_ref(obj)} restarted")
    return 0


# ---- scale, set ----------------------------------------------------------------------------------------------------
def cmd_scale(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise CLIError("error: --replicas must be a non-negative integer")
    client, obj = _target(args, ("Deployment", "ReplicaSet", "ReplicationController", "StatefulSet"))

    def scale(live: dict) -> None:
        live["spec"]["replicas"] = args.replicas
    _mutate(client, obj, scale)
    print(f"{_ref(obj)} scaled")
    return 0


def cmd_set_command(args: argparse.Namespace) -> int:
    from kemu.api.defaults import apply_defaults
    from kemu.api.validation import validate
    if not args.command:
        raise CLIError("usage: kemu set command deploy/NAME [-c CONTAINER] [--args] -- CMD...")
    client, obj = _target(args, TEMPLATED)
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    if args.container and args.container not in names:
        raise CLIError(f"error: unable to find container named {args.container!r} (containers: {names})")
    field = "args" if args.set_args else "command"

    def edit(live: dict) -> None:
        for c in live["spec"]["template"]["spec"]["containers"]:
            if args.container in (None, c["name"]):
                c[field] = list(args.command)
                if field == "command":
                    c.pop("args", None)
        problems = validate(apply_defaults(copy.deepcopy(live)))
        if problems:
            raise CLIError(f"error: {_ref(live)}: {problems[0][0]}: {problems[0][1]}")
    _mutate(client, obj, edit)
    print(f"{_ref(obj)} {field} updated")
    return 0
