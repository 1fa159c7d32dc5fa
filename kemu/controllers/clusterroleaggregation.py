"""The clusterrole-aggregation controller: a ClusterRole with an `aggregationRule` gets the rules of every
ClusterRole its label selectors match (so `view`, `edit` and `admin` grow with roles labelled
`rbac.authorization.k8s.io/aggregate-to-*`)."""
from __future__ import annotations

import copy

from kemu.api.selectors import selector_matches
from kemu.client import Client
from kemu.client.informer import Informer
from kemu.controllers.queue import WorkQueue

ALL = "all"


def aggregated_rules(role: dict, cluster_roles: list[dict]) -> list[dict]:
    """The rules of an aggregated ClusterRole: those of every other ClusterRole its selectors match, by name,
    without duplicates."""
    selectors = ((role.get("aggregationRule") or {}).get("clusterRoleSelectors")) or []
    rules: list[dict] = []
    for other in sorted(cluster_roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == role["metadata"]["name"]:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(selector_matches(s, labels) for s in selectors):
            rules += [r for r in other.get("rules") or [] if r not in rules]
    return rules


def aggregate(cluster_roles: list[dict]) -> dict[str, list[dict]]:
    """name → new rules for every aggregated ClusterRole in `cluster_roles` whose rules are stale, applied to the
    list in place until nothing changes (an aggregated role may feed another: view → edit → admin)."""
    changed: dict[str, list[dict]] = {}
    for _ in range(len(cluster_roles) + 1):
        progress = False
        for role in cluster_roles:
            if not role.get("aggregationRule"):
                continue
            rules = aggregated_rules(role, cluster_roles)
            if rules != (role.get("rules") or []):
                role["rules"] = rules
                changed[role["metadata"]["name"]] = rules
                progress = True
        if not progress:
            break
    return changed


class ClusterRoleAggregationController:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.queue = WorkQueue("clusterrole-aggregation", self.sync)
        self.roles = Informer(client, "ClusterRole", lambda key, old, new: self.queue.add(ALL))

    def start(self) -> None:
        self.queue.start()
        self.roles.start()

    def sync(self, _: str) -> None:
        for name, rules in aggregate(copy.deepcopy(self.roles.items())).items():
            def set_rules(role: dict, rules: list[dict] = rules) -> bool | None:
                if not role.get("aggregationRule"):
                    return False
                role["rules"] = rules
                return None
            self.client.mutate("ClusterRole", None, name, set_rules)
