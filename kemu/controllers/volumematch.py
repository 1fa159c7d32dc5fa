"""Which volumes a claim may bind and which nodes a volume reaches: pure functions shared by the
PersistentVolume controller (volumebinding.py) and the scheduler's volume filter."""
from __future__ import annotations

from kemu.api.quantity import parse_quantity
from kemu.api.selectors import selector_matches

SELECTED_NODE = "volume.kubernetes.io/selected-node"   # the scheduler's choice for a WaitForFirstConsumer claim


def _term_matches(term: dict, labels: dict) -> bool:
    for expr in term.get("matchExpressions") or []:
        value, values = labels.get(expr.get("key")), expr.get("values") or []
        op = expr.get("operator")
        if op == "In" and value not in values or op == "NotIn" and value in values or \
                op == "Exists" and value is None or op == "DoesNotExist" and value is not None:
            return False
        if op in ("Gt", "Lt"):
            try:
                if not (int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])):
                    return False
            except (TypeError, ValueError, IndexError):
                return False
    return True


def volume_fits_node(pv: dict, node: dict) -> bool:
    """The volume's required node affinity (any term) matches the node's labels (no affinity: any node)."""
    terms = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    if not terms:
        return True
    labels = dict(node["metadata"].get("labels") or {}, **{"kubernetes.io/hostname": node["metadata"]["name"]})
    return any(_term_matches(t, labels) for t in terms)


def claim_request(claim: dict) -> int:
    storage = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", 0)
    return int(parse_quantity(storage))


def volume_matches(pv: dict, claim: dict) -> bool:
    """A volume the claim could bind: free (or reserved for it), same class and mode, enough of everything."""
    spec, cspec = pv.get("spec") or {}, claim.get("spec") or {}
    ref = spec.get("claimRef")
    if ref and (ref.get("namespace") != claim["metadata"]["namespace"] or ref.get("name") !=
                claim["metadata"]["name"] or (ref.get("uid") and ref["uid"] != claim["metadata"].get("uid"))):
        return False
    if pv["metadata"].get("deletionTimestamp") or (pv.get("status") or {}).get("phase") in ("Released", "Failed"):
        return False
    if (spec.get("storageClassName") or "") != (cspec.get("storageClassName") or ""):
        return False
    if spec.get("volumeMode", "Filesystem") != cspec.get("volumeMode", "Filesystem"):
        return False
    if not set(cspec.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return False
    try:
        if parse_quantity((spec.get("capacity") or {}).get("storage", 0)) < claim_request(claim):
            return False
    except ValueError:
        return False
    return cspec.get("selector") is None or selector_matches(cspec["selector"], pv["metadata"].get("labels"))


def best_volume(volumes: list[dict], claim: dict, node: dict | None = None) -> dict | None:
    """The smallest matching volume (one reserved for the claim first), reachable from `node` when given."""
    fits = [pv for pv in volumes if volume_matches(pv, claim) and (node is None or volume_fits_node(pv, node))]
    fits.sort(key=lambda pv: (not pv["spec"].get("claimRef"), parse_quantity(pv["spec"]["capacity"]["storage"]),
                              pv["metadata"]["name"]))
    return fits[0] if fits else None


def claim_names(pod: dict) -> list[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v.get("persistentVolumeClaim"), dict) and v["persistentVolumeClaim"].get("claimName")]
