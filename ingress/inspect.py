"""`kemu describe ingress|httproute|gateway`: the route table the controllers render for an object (the same pure
build as theirs, ingress/routes.py, from the cluster's objects) as one line per host, port, path and backends."""
from __future__ import annotations

from ingress import routes

KINDS = {"ingresses": "Ingress", "ingress_classes": "IngressClass", "services": "Service",
         "slices": "EndpointSlice", "secrets": "Secret", "gateway_classes": "GatewayClass", "gateways": "Gateway",
         "routes": "HTTPRoute", "namespaces": "Namespace"}
MATCH = {"exact": "=", "prefix": "", "regex": "~", "iregex": "~*"}


def cluster_of(client) -> routes.Cluster:
    cluster = routes.Cluster()
    for attr, kind in KINDS.items():
        setattr(cluster, attr, {routes._key(o): o for o in client.list(kind)[0]})
    return cluster


def _action(act: routes.Action, table: routes.RouteTable) -> str:
    if act.redirect:
        return f"redirect {act.redirect.get('code', 302)} -> {act.redirect.get('scheme') or '(same scheme)'}://" \
               f"{act.redirect.get('hostname') or '(same host)'}"
    if act.status:
        return f"return {act.status}"
    parts = []
    for up, weight in act.backends:
        addrs = table.upstreams.get(up) or []
        parts.append(f"{up or '(unresolved)'} [{', '.join(addrs) or 'no endpoints'}]"
                     + (f" weight {weight}" if len(act.backends) > 1 else ""))
    extra = (" rewrite " + act.rewrite[1] if act.rewrite else "") + (" (308 to https)" if act.ssl_redirect else "")
    return f"{act.protocol}: " + "; ".join(parts) + extra


def route_lines(client, obj: dict) -> list[tuple[str, str]]:
    """(label, line) rows of the rendered route table that `obj` (Ingress, HTTPRoute, Gateway) contributes."""
    table = routes.build(cluster_of(client))
    meta = obj["metadata"]
    kind = obj["kind"]
    source = f"{kind.lower()} {meta.get('namespace')}/{meta['name']}"
    out: list[tuple[str, str]] = []
    for server in table.servers.values():
        ports = ",".join([str(p) for p in sorted(server.plain_ports)] + [f"{p}/tls" for p in
                                                                           sorted(server.tls_ports)])
        for loc in server.locations.values():
            for rule in loc.rules:
                if kind != "Gateway" and rule.source != source:
                    continue
                cond = (f" method={rule.method}" if rule.method else "") + "".join(
                    f" {h}{'=' if t == 'Exact' else '~'}{v}" for h, t, v in rule.headers)
                cert = f" cert={server.certificate or 'default'}" if server.tls_ports else ""
                out.append(("Route", f"{server.hostname} :{ports} {MATCH[loc.match]}{loc.path}{cond} -> "
                                     f"{_action(rule.action, table)}{cert if kind == 'Ingress' else ''}"))
    if kind == "Gateway":
        out = sorted(set(out))
    return out or [("Route", "(none: not served by kemu's nginx ingress controller)")]
