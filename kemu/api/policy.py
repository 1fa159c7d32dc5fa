"""Validation and defaults of the autoscaling and resource-policy kinds (HorizontalPodAutoscaler, LimitRange,
ResourceQuota, PodDisruptionBudget, PriorityClass) and of a pod's scheduling constraints (affinity, tolerations,
topologySpreadConstraints), worded as the kube-apiserver's validation words them. Registered into
kemu.api.validation's and kemu.api.defaults' tables; imports nothing of them."""
from __future__ import annotations

from kemu.api.quantity import parse_quantity

Problems = list[tuple[str, str]]
HPA_METRIC_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
HPA_SERVED_METRICS = ("ContainerResource", "Resource")   # what kemu's HPA controller computes
HPA_RESOURCES = ("cpu", "memory")
TARGET_TYPES = ("AverageValue", "Utilization", "Value")
SELECT_POLICIES = ("Disabled", "Max", "Min")
SCALING_POLICY_TYPES = ("Percent", "Pods")
LIMIT_TYPES = ("Container", "PersistentVolumeClaim", "Pod")
QUOTA_SCOPES = ("BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating", "PriorityClass",
                "Terminating")
# resources a BestEffort/NotBestEffort-scoped quota may track (upstream: podComputeQuotaResources + pods)
BEST_EFFORT_RESOURCES = {"pods", "count/pods"}
COMPUTE_RESOURCES = {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
NODE_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
LABEL_OPERATORS = ("DoesNotExist", "Exists", "In", "NotIn")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
MAX_SCALE_PERIOD = 1800          # behavior policies' periodSeconds (upstream: 0 < p <= 1800)
MAX_STABILIZATION = 3600         # stabilizationWindowSeconds (upstream: 0 <= w <= 3600)
HIGHEST_USER_PRIORITY = 1_000_000_000


def _supported(value: object, allowed: tuple[str, ...]) -> str:
    shown = ", ".join(f'"{a}"' for a in allowed)
    return f'Unsupported value: "{value}": supported values: {shown}'


def _typed_items(items: list, path: str, known: tuple[str, ...], problems: Problems):
    """(item path, item, its type) for each mapping of `items` whose `type` is known; a problem for each other."""
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            problems.append((where, "Invalid value: must be a mapping with type"))
            continue
        kind = item.get("type")
        if kind not in known:
            problems.append((f"{where}.type", _supported(kind, known) if kind else "Required value"))
            continue
        yield where, item, kind


def _required(problems: Problems, path: str) -> None:
    problems.append((path, "Required value"))


# ---- HorizontalPodAutoscaler -----------------------------------------------------------------------------------------
def hpa_defaults(obj: dict) -> None:
    """minReplicas 1; no metrics: CPU utilisation 80 % (autoscaling/v2 SetDefaults_HorizontalPodAutoscaler)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):     # upstream's defaults for each direction the user left out in part
        up = behavior.setdefault("scaleUp", {})
        down = behavior.setdefault("scaleDown", {})
        if isinstance(up, dict):
            up.setdefault("stabilizationWindowSeconds", 0)
            up.setdefault("selectPolicy", "Max")
            up.setdefault("policies", [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                       {"type": "Percent", "value": 100, "periodSeconds": 15}])
        if isinstance(down, dict):
            down.setdefault("selectPolicy", "Max")
            down.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])


def _hpa_target(target: object, path: str, problems: Problems) -> None:
    if not isinstance(target, dict):
        _required(problems, path)
        return
    ttype = target.get("type")
    if ttype not in TARGET_TYPES:
        problems.append((f"{path}.type", _supported(ttype, TARGET_TYPES) if ttype else "Required value"))
        return
    field = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}[ttype]
    if target.get(field) is None:
        problems.append((f"{path}.{field}", f"Required value: must set {field} when type is {ttype}"))
    if ttype == "Utilization" and isinstance(target.get(field), int) and target[field] <= 0:
        problems.append((f"{path}.averageUtilization", f"Invalid value: {target[field]}: must be greater than 0"))
    for qfield in ("averageValue", "value"):
        if target.get(qfield) is not None:
            try:
                if parse_quantity(target[qfield]) <= 0:
                    problems.append((f"{path}.{qfield}", f"Invalid value: \"{target[qfield]}\": must be positive"))
            except ValueError:
                problems.append((f"{path}.{qfield}", f"Invalid value: \"{target[qfield]}\": quantities must match "
                                                     "the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?"
                                                     "[0-9]*)$'"))


def _hpa_rules(rules: object, path: str, problems: Problems) -> None:
    if not isinstance(rules, dict):
        return
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int) and not 0 <= window <= MAX_STABILIZATION:
        problems.append((f"{path}.stabilizationWindowSeconds", f"Invalid value: {window}: must be less than or "
                                                               f"equal to {MAX_STABILIZATION}" if window > 0 else
                         f"Invalid value: {window}: must be greater than or equal to zero"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        problems.append((f"{path}.selectPolicy", _supported(select, SELECT_POLICIES)))
    policies = rules.get("policies")
    if select != "Disabled" and isinstance(policies, list) and not policies:
        problems.append((f"{path}.policies", "Required value: must specify at least one Policy"))
    for i, policy in enumerate(policies or []):
        ppath = f"{path}.policies[{i}]"
        if not isinstance(policy, dict):
            problems.append((ppath, "Invalid value: must be a mapping with type, value and periodSeconds"))
            continue
        if policy.get("type") not in SCALING_POLICY_TYPES:
            problems.append((f"{ppath}.type", _supported(policy.get("type"), SCALING_POLICY_TYPES)))
        value, period = policy.get("value"), policy.get("periodSeconds")
        if not isinstance(value, int) or value <= 0:
            problems.append((f"{ppath}.value", f"Invalid value: {value}: must be greater than zero"))
        if not isinstance(period, int) or not 0 < period <= MAX_SCALE_PERIOD:
            problems.append((f"{ppath}.periodSeconds",
                             f"Invalid value: {period}: must be greater than zero and less than or equal to "
                             f"{MAX_SCALE_PERIOD}"))


def validate_hpa(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        _required(problems, "spec")
        return
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, dict):
        _required(problems, "spec.scaleTargetRef")
    else:
        for field in ("kind", "name"):
            if not ref.get(field):
                _required(problems, f"spec.scaleTargetRef.{field}")
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        problems.append(("spec.minReplicas", f"Invalid value: {low}: must be greater than or equal to 1"))
    if high is None:
        _required(problems, "spec.maxReplicas")
    elif isinstance(high, int) and isinstance(low, int) and high < low:
        problems.append(("spec.maxReplicas", f"Invalid value: {high}: must be greater than or equal to "
                                             "`minReplicas`"))
    elif isinstance(high, int) and high < 1:
        problems.append(("spec.maxReplicas", f"Invalid value: {high}: must be greater than 0"))
    for path, metric, mtype in _typed_items(spec.get("metrics") or [], "spec.metrics", HPA_METRIC_TYPES, problems):
        if mtype not in HPA_SERVED_METRICS:
            problems.append((f"{path}.type", f'Unsupported value: "{mtype}": kemu serves resource metrics only: '
                                             'supported values: "ContainerResource", "Resource"'))
            continue
        field = "resource" if mtype == "Resource" else "containerResource"
        source = metric.get(field)
        if not isinstance(source, dict):
            problems.append((f"{path}.{field}", "Required value: must populate information for the given metric "
                                                "source"))
            continue
        name = source.get("name")
        if name not in HPA_RESOURCES:
            problems.append((f"{path}.{field}.name", _supported(name, HPA_RESOURCES) if name else "Required value"))
        if mtype == "ContainerResource" and not source.get("container"):
            _required(problems, f"{path}.containerResource.container")
        target = source.get("target")
        _hpa_target(target, f"{path}.{field}.target", problems)
        if isinstance(target, dict) and target.get("type") == "Value":
            problems.append((f"{path}.{field}.target.type", 'Unsupported value: "Value": supported values: '
                                                            '"AverageValue", "Utilization"'))
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        for direction in ("scaleUp", "scaleDown"):
            _hpa_rules(behavior.get(direction), f"spec.behavior.{direction}", problems)


# ---- LimitRange ------------------------------------------------------------------------------------------------------
def _quantities(values: object, path: str, problems: Problems) -> dict:
    out = {}
    for name, value in (values or {}).items() if isinstance(values, dict) else ():
        try:
            out[name] = parse_quantity(value)
        except ValueError:
            problems.append((f"{path}[{name}]", f'Invalid value: "{value}": quantities must match the regular '
                                                "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
    return out


def validate_limit_range(obj: dict, problems: Problems) -> None:
    limits = (obj.get("spec") or {}).get("limits")
    if not isinstance(limits, list):
        _required(problems, "spec.limits")
        return
    for path, item, ltype in _typed_items(limits, "spec.limits", LIMIT_TYPES, problems):
        q = {f: _quantities(item.get(f), f"{path}.{f}", problems)
             for f in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")}
        if ltype == "Pod":
            for f in ("default", "defaultRequest"):
                if item.get(f):
                    problems.append((f"{path}.{f}", "Forbidden: may not be specified when `type` is 'Pod'"))
        for name in set().union(*[set(v) for v in q.values()]):
            low, high = q["min"].get(name), q["max"].get(name)
            default, request = q["default"].get(name), q["defaultRequest"].get(name)
            ratio = q["maxLimitRequestRatio"].get(name)
            shown = {f: (item.get(f) or {}).get(name) for f in q}
            if low is not None and high is not None and low > high:
                problems.append((f"{path}[{name}]", f'Invalid value: "{shown["min"]}": min value {shown["min"]} is '
                                                    f'greater than max value {shown["max"]}'))
            if request is not None and low is not None and low > request:
                problems.append((f"{path}[{name}]", f'Invalid value: "{shown["defaultRequest"]}": min value '
                                                    f'{shown["min"]} is greater than default request value '
                                                    f'{shown["defaultRequest"]}'))
            if request is not None and high is not None and request > high:
                problems.append((f"{path}[{name}]", f'Invalid value: "{shown["defaultRequest"]}": default request '
                                                    f'value {shown["defaultRequest"]} is greater than max value '
                                                    f'{shown["max"]}'))
            if request is not None and default is not None and request > default:
                problems.append((f"{path}[{name}]", f'Invalid value: "{shown["defaultRequest"]}": default request '
                                                    f'value {shown["defaultRequest"]} is greater than default limit '
                                                    f'value {shown["default"]}'))
            if default is not None and high is not None and default > high:
                problems.append((f"{path}[{name}]", f'Invalid value: "{shown["default"]}": default value '
                                                    f'{shown["default"]} is greater than max value {shown["max"]}'))
            if default is not None and low is not None and low > default:
                problems.append((f"{path}[{name}]", f'Invalid value: "{shown["default"]}": min value '
                                                    f'{shown["min"]} is greater than default value '
                                                    f'{shown["default"]}'))
            if ratio is not None and ratio < 1:
                problems.append((f"{path}.maxLimitRequestRatio[{name}]",
                                 f'Invalid value: "{shown["maxLimitRequestRatio"]}": ratio '
                                 f'{shown["maxLimitRequestRatio"]} is less than 1'))


# ---- ResourceQuota ---------------------------------------------------------------------------------------------------
def validate_resource_quota(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    hard = _quantities(spec.get("hard"), "spec.hard", problems)
    for name, value in hard.items():
        if value < 0:
            problems.append((f"spec.hard[{name}]", f'Invalid value: "{spec["hard"][name]}": must be greater than '
                                                   "or equal to 0"))
    scopes = list(spec.get("scopes") or [])
    for i, scope in enumerate(scopes):
        if scope not in QUOTA_SCOPES:
            problems.append((f"spec.scopes[{i}]", _supported(scope, QUOTA_SCOPES)))
    if "BestEffort" in scopes and "NotBestEffort" in scopes:
        problems.append(("spec.scopes", 'Invalid value: ["BestEffort","NotBestEffort"]: conflicting scopes'))
    if "BestEffort" in scopes:
        for name in hard:
            if name not in BEST_EFFORT_RESOURCES:
                problems.append((f"spec.hard[{name}]", f'Invalid value: "{name}": unsupported scope applied to '
                                                       "resource"))


# ---- PodDisruptionBudget and PriorityClass --------------------------------------------------------------------------
def _int_or_percent(value: object, path: str, problems: Problems) -> None:
    if isinstance(value, bool):
        problems.append((path, f"Invalid value: {value}: must be an integer or a percentage"))
    elif isinstance(value, int) and value < 0:
        problems.append((path, f"Invalid value: {value}: must be greater than or equal to 0"))
    elif isinstance(value, str):
        digits = value[:-1]
        if not value.endswith("%") or not digits.isdigit():
            problems.append((path, f'Invalid value: "{value}": a valid percent string must be a numeric string '
                                   "followed by an ending '%'"))
        elif int(digits) > 100:
            problems.append((path, f'Invalid value: "{value}": must not be greater than 100%'))


def validate_pdb(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        problems.append(("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    for field in ("minAvailable", "maxUnavailable"):
        if spec.get(field) is not None:
            _int_or_percent(spec[field], f"spec.{field}", problems)
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        problems.append(("spec.unhealthyPodEvictionPolicy", _supported(policy, ("AlwaysAllow", "IfHealthyBudget"))))
    _selector(spec.get("selector"), "spec.selector", problems)


def validate_priority_class(obj: dict, problems: Problems) -> None:
    value = obj.get("value")
    if value is None:
        _required(problems, "value")
    elif isinstance(value, int) and value > HIGHEST_USER_PRIORITY and \
            not obj["metadata"]["name"].startswith("system-"):
        problems.append(("value", f"Invalid value: {value}: must be less than or equal to {HIGHEST_USER_PRIORITY}"))
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in ("Never", "PreemptLowerPriority"):
        problems.append(("preemptionPolicy", _supported(policy, ("Never", "PreemptLowerPriority"))))


# ---- a pod's scheduling constraints ----------------------------------------------------------------------------------
def _selector(sel: object, path: str, problems: Problems) -> None:
    if not isinstance(sel, dict):
        return
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        epath = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            continue
        op, values = expr.get("operator"), expr.get("values")
        if op not in LABEL_OPERATORS:
            problems.append((f"{epath}.operator", f'Invalid value: "{op}": not a valid selector operator'))
        elif op in ("In", "NotIn") and not values:
            problems.append((f"{epath}.values", "Required value: must be specified when `operator` is 'In' or "
                                                "'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            problems.append((f"{epath}.values", "Forbidden: may not be specified when `operator` is 'Exists' or "
                                                "'DoesNotExist'"))


def _node_selector_term(term: object, path: str, problems: Problems) -> None:
    if not isinstance(term, dict):
        return
    for field in ("matchExpressions", "matchFields"):
        for i, expr in enumerate(term.get(field) or []):
            epath = f"{path}.{field}[{i}]"
            if not isinstance(expr, dict):
                continue
            op, values = expr.get("operator"), expr.get("values") or []
            if op not in NODE_SELECTOR_OPERATORS:
                problems.append((f"{epath}.operator", _supported(op, NODE_SELECTOR_OPERATORS)))
            elif op in ("In", "NotIn") and not values:
                problems.append((f"{epath}.values", "Required value: must be specified when `operator` is 'In' or "
                                                    "'NotIn'"))
            elif op in ("Exists", "DoesNotExist") and values:
                problems.append((f"{epath}.values", "Forbidden: may not be specified when `operator` is 'Exists' "
                                                    "or 'DoesNotExist'"))
            elif op in ("Gt", "Lt") and (len(values) != 1 or not str(values[0]).lstrip("-").isdigit()):
                problems.append((f"{epath}.values", "Required value: must be specified single value when "
                                                    "`operator` is 'Lt' or 'Gt'"))


def _pod_affinity_term(term: object, path: str, problems: Problems) -> None:
    if not isinstance(term, dict):
        return
    if not term.get("topologyKey"):
        problems.append((f"{path}.topologyKey", "Required value: can not be empty"))
    _selector(term.get("labelSelector"), f"{path}.labelSelector", problems)
    _selector(term.get("namespaceSelector"), f"{path}.namespaceSelector", problems)


def _weight(item: dict, path: str, problems: Problems) -> None:
    weight = item.get("weight")
    if not isinstance(weight, int) or not 1 <= weight <= 100:
        problems.append((f"{path}.weight", f"Invalid value: {weight}: must be in the range 1-100"))


def pod_scheduling_problems(spec: dict, path: str) -> Problems:
    """Problems with a PodSpec's affinity, tolerations and topologySpreadConstraints."""
    problems: Problems = []
    affinity = spec.get("affinity")
    if isinstance(affinity, dict):
        node = affinity.get("nodeAffinity")
        if isinstance(node, dict):
            apath = f"{path}.affinity.nodeAffinity"
            required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
            if isinstance(required, dict):
                terms = required.get("nodeSelectorTerms")
                if not terms:
                    problems.append((f"{apath}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
                                     "Required value: must have at least one node selector term"))
                for i, term in enumerate(terms or []):
                    _node_selector_term(term, f"{apath}.requiredDuringSchedulingIgnoredDuringExecution."
                                              f"nodeSelectorTerms[{i}]", problems)
            for i, pref in enumerate(node.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
                ppath = f"{apath}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
                if isinstance(pref, dict):
                    _weight(pref, ppath, problems)
                    _node_selector_term(pref.get("preference"), f"{ppath}.preference", problems)
        for kind in ("podAffinity", "podAntiAffinity"):
            rules = affinity.get(kind)
            if not isinstance(rules, dict):
                continue
            apath = f"{path}.affinity.{kind}"
            for i, term in enumerate(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
                _pod_affinity_term(term, f"{apath}.requiredDuringSchedulingIgnoredDuringExecution[{i}]", problems)
            for i, pref in enumerate(rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
                ppath = f"{apath}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
                if isinstance(pref, dict):
                    _weight(pref, ppath, problems)
                    _pod_affinity_term(pref.get("podAffinityTerm"), f"{ppath}.podAffinityTerm", problems)
    for i, tol in enumerate(spec.get("tolerations") or []):
        tpath = f"{path}.tolerations[{i}]"
        if not isinstance(tol, dict):
            continue
        op = tol.get("operator", "Equal")
        if op not in ("Equal", "Exists"):
            problems.append((f"{tpath}.operator", _supported(op, ("Equal", "Exists"))))
        elif op == "Exists" and tol.get("value"):
            problems.append((f"{tpath}.operator", "Invalid value: value must be empty when `operator` is 'Exists'"))
        effect = tol.get("effect")
        if effect and effect not in TAINT_EFFECTS:
            problems.append((f"{tpath}.effect", _supported(effect, TAINT_EFFECTS)))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            problems.append((f"{tpath}.effect", f'Invalid value: "{effect or ""}": effect must be \'NoExecute\' '
                                                "when `tolerationSeconds` is set"))
    for i, c in enumerate(spec.get("topologySpreadConstraints") or []):
        cpath = f"{path}.topologySpreadConstraints[{i}]"
        if not isinstance(c, dict):
            continue
        skew = c.get("maxSkew")
        if not isinstance(skew, int) or skew <= 0:
            problems.append((f"{cpath}.maxSkew", f"Invalid value: {skew}: must be greater than zero"))
        if not c.get("topologyKey"):
            problems.append((f"{cpath}.topologyKey", "Required value: can not be empty"))
        when = c.get("whenUnsatisfiable")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            problems.append((f"{cpath}.whenUnsatisfiable", _supported(when, ("DoNotSchedule", "ScheduleAnyway"))))
        _selector(c.get("labelSelector"), f"{cpath}.labelSelector", problems)
    return problems


CHECKS = {"HorizontalPodAutoscaler": validate_hpa, "LimitRange": validate_limit_range,
          "ResourceQuota": validate_resource_quota, "PodDisruptionBudget": validate_pdb,
          "PriorityClass": validate_priority_class}
DEFAULTERS = {"HorizontalPodAutoscaler": hpa_defaults}


def tables(age) -> dict:
    """kubectl's columns for these kinds; `age` renders a creationTimestamp (tables.py's)."""
    def when(obj: dict) -> str:
        return age(obj["metadata"].get("creationTimestamp"))

    def hpa(obj: dict, wide: bool) -> list[str]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ref = spec.get("scaleTargetRef") or {}
        current = {((m.get("resource") or m.get("containerResource") or {}).get("name")): m
                   for m in status.get("currentMetrics") or []}
        targets = []
        for m in spec.get("metrics") or []:
            source = m.get("resource") or m.get("containerResource") or {}
            name, target = source.get("name", ""), source.get("target") or {}
            seen = ((current.get(name) or {}).get("resource") or (current.get(name) or {}).get("containerResource")
                    or {}).get("current") or {}
            if target.get("type") == "Utilization":
                now = f"{seen['averageUtilization']}%" if "averageUtilization" in seen else "<unknown>"
                targets.append(f"{name}: {now}/{target.get('averageUtilization')}%")
            else:
                targets.append(f"{name}: {seen.get('averageValue', '<unknown>')}/{target.get('averageValue')}")
        return [obj["metadata"]["name"], f"{ref.get('kind')}/{ref.get('name')}", ", ".join(targets) or "<none>",
                str(spec.get("minReplicas", 1)), str(spec.get("maxReplicas")), str(status.get("currentReplicas", 0)),
                when(obj)]

    def pdb(obj: dict, wide: bool) -> list[str]:
        spec = obj.get("spec") or {}
        return [obj["metadata"]["name"], str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
                str((obj.get("status") or {}).get("disruptionsAllowed", 0)), when(obj)]

    def quota(obj: dict, wide: bool) -> list[str]:
        hard, used = (obj.get("spec") or {}).get("hard") or {}, (obj.get("status") or {}).get("used") or {}
        request = [f"{n}: {used.get(n, '0')}/{v}" for n, v in sorted(hard.items()) if not n.startswith("limits.")]
        limit = [f"{n}: {used.get(n, '0')}/{v}" for n, v in sorted(hard.items()) if n.startswith("limits.")]
        return [obj["metadata"]["name"], when(obj), ", ".join(request), ", ".join(limit)]

    def limit_range(obj: dict, wide: bool) -> list[str]:
        return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp") or ""]

    def priority_class(obj: dict, wide: bool) -> list[str]:
        return [obj["metadata"]["name"], str(obj.get("value", 0)), str(bool(obj.get("globalDefault"))).lower(),
                when(obj), obj.get("preemptionPolicy", "PreemptLowerPriority")]
    return {"HorizontalPodAutoscaler": (["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
                                        [], hpa),
            "PodDisruptionBudget": (["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], [],
                                    pdb),
            "ResourceQuota": (["NAME", "AGE", "REQUEST", "LIMIT"], [], quota),
            "LimitRange": (["NAME", "CREATED AT"], [], limit_range),
            "PriorityClass": (["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"], [], priority_class)}
