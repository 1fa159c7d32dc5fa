"""RBAC, as the kube-apiserver's authorizer evaluates it (plugin/pkg/auth/authorizer/rbac): a request is allowed
when some ClusterRoleBinding, or some RoleBinding of the request's namespace, binds one of the requester's
identities (User, Group, ServiceAccount) to a role with a rule that covers the request. There are no deny rules.

A rule covers a resource request when its verbs, apiGroups, resources (`pods/log` for a subresource, `*`, `*/scale`)
and resourceNames (if any) match; a non-resource request (`/api`, `/healthz`) when its verbs and nonResourceURLs
(`*` or a `/prefix/*`) match. Also here: the rules a user has in a namespace (SelfSubjectRulesReview) and upstream's 403
wording.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kemu.client.tokens import service_account_user

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class User:
    """An authenticated identity (user.Info)."""
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Attributes:
    """What a request asks (authorizer.Attributes): a resource request, or a non-resource `path`."""
    user: User
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = "v1"
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


# ---- one rule ------------------------------------------------------------------------------------------------
def _verb(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return "*" in verbs or verb in verbs


def _group(rule: dict, group: str) -> bool:
    groups = rule.get("apiGroups") or []
    return "*" in groups or group in groups


def _resource(rule: dict, combined: str, subresource: str) -> bool:
    for res in rule.get("resources") or []:
        if res in ("*", combined):
            return True
        if subresource and res == f"*/{subresource}":
            return True
    return False


def _name(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def _url(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    """Whether one PolicyRule covers the request (upstream's RuleAllows)."""
    if not _verb(rule, attrs.verb):
        return False
    if not attrs.resource_request:
        return _url(rule, attrs.path)
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    return _group(rule, attrs.api_group) and _resource(rule, combined, attrs.subresource) and \
        _name(rule, attrs.name)


# ---- bindings ------------------------------------------------------------------------------------------------
def applies_to(user: User, subject: dict, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_user(namespace, name or "")
    return False


class RBAC:
    """The authorizer over the store (`client`: kemu.client.Client, read on every decision)."""

    def __init__(self, client) -> None:
        self.client = client

    def _role_rules(self, ref: dict, namespace: str) -> tuple[list[dict], str | None]:
        kind, name = ref.get("kind"), ref.get("name", "")
        role = self.client.get(kind, namespace if kind == "Role" else None, name) \
            if kind in ("Role", "ClusterRole") else None
        if role is None:
            what = "role" if kind == "Role" else "clusterrole"
            return [], f'{what}.{RBAC_GROUP} "{name}" not found'
        return list(role.get("rules") or []), None

    def _bound_rules(self, user: User, namespace: str):
        """(rules, error) of every binding that applies to `user`: cluster-wide, then in `namespace`."""
        bindings = [(b, "") for b in self.client.list("ClusterRoleBinding")[0]]
        if namespace:
            bindings += [(b, namespace) for b in self.client.list("RoleBinding", namespace)[0]]
        for binding, ns in bindings:
            if any(applies_to(user, s, ns) for s in binding.get("subjects") or [] if isinstance(s, dict)):
                yield self._role_rules(binding.get("roleRef") or {}, ns)

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the reason names roles that could not be read, as upstream's `RBAC: ...`."""
        errors = []
        for rules, error in self._bound_rules(attrs.user, attrs.namespace if attrs.resource_request else ""):
            if error:
                errors.append(error)
            if any(rule_allows(attrs, r) for r in rules):
                return True, ""
        return False, f"RBAC: [{', '.join(errors)}]" if len(errors) > 1 else \
            (f"RBAC: {errors[0]}" if errors else "")

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        """(resourceRules, nonResourceRules, incomplete) `user` has in `namespace` (SelfSubjectRulesReview)."""
        resource_rules: list[dict] = []
        url_rules: list[dict] = []
        incomplete = False
        for rules, error in self._bound_rules(user, namespace):
            incomplete |= error is not None
            for r in rules:
                if r.get("nonResourceURLs"):
                    url_rules.append({"verbs": r.get("verbs") or [], "nonResourceURLs": r["nonResourceURLs"]})
                else:
                    out = {"verbs": r.get("verbs") or [], "apiGroups": r.get("apiGroups") or [],
                           "resources": r.get("resources") or []}
                    if r.get("resourceNames"):
                        out["resourceNames"] = r["resourceNames"]
                    resource_rules.append(out)
        return resource_rules, url_rules, incomplete


# ---- 403 ------------------------------------------------------------------------------------------------------
def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """Upstream's words: `pods "x" is forbidden: User "u" cannot delete resource "pods" in API group "" in the
    namespace "default"` (responsewriters.forbiddenMessage wrapped by apierrors.NewForbidden)."""
    user = attrs.user.name
    if not attrs.resource_request:
        text = f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        text = f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {where}'
    if reason:
        text = f"{text}: {reason}"
    if not attrs.resource_request or not attrs.resource:
        return f"forbidden: {text}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    return f'{qualified} "{attrs.name}" is forbidden: {text}' if attrs.name else f"{qualified} is forbidden: {text}"
