"""The route table: Ingresses, Gateways and HTTPRoutes (with the Services, EndpointSlices and Secrets they name)
turned into servers, locations and upstreams of pod addresses — a pure function of the objects, like
proxy/ruleset.py. Problems (a missing Service or Secret, a route no listener accepts) come back as data for the
controller to report as events and status conditions.

Ingress semantics are ingress-nginx's: a server per host (wildcards as single-label regex server names), Prefix
paths as `location /p/` + `location = /p`, Exact as `location =`, ImplementationSpecific as an nginx prefix,
regex locations when rewrite-target is set, 308 to HTTPS for TLS hosts unless ssl-redirect is "false",
backend-protocol HTTP/HTTPS/GRPC/GRPCS, 503 for a backend without endpoints, the oldest Ingress winning a
conflicting path. HTTPRoutes follow the Gateway API: hostname intersection with the listener, precedence (exact
path, longest prefix, method, most headers, oldest route), weighted backendRefs, RequestHeaderModifier and
RequestRedirect filters, and a 500 for a rule whose backends are all unresolved.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

INGRESS_CLASS = "nginx"
INGRESS_CONTROLLER = "k8s.io/ingress-nginx"
GATEWAY_CONTROLLER = "kemu.dev/nginx-gateway"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
ANNOTATION = "nginx.ingress.kubernetes.io/"
BACKEND_PROTOCOLS = {"HTTP": "http", "HTTPS": "https", "GRPC": "grpc", "GRPCS": "grpcs"}
HTTP_PORT, HTTPS_PORT = 80, 443


@dataclass
class Action:
    """What a matched request gets: a redirect, a fixed status, or a proxy to weighted upstreams."""
    backends: list[tuple[str, int]] = field(default_factory=list)   # (upstream name, weight); "" = unresolved
    protocol: str = "http"
    status: int = 0                         # a fixed answer (404, 500, 503) when there is nothing to proxy to
    redirect: dict | None = None            # {code, scheme, hostname, port, path}
    rewrite: tuple[str, str] | None = None  # (regex, replacement): ingress-nginx rewrite-target
    set_headers: list[tuple[str, str]] = field(default_factory=list)
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    ssl_redirect: bool = False              # 308 to https:// on a plain port (an Ingress TLS host)


@dataclass
class Rule:
    """One way into a location: extra conditions (method, headers) and its action; `source` names the object."""
    action: Action
    source: str
    method: str = ""
    headers: list[tuple[str, str, str]] = field(default_factory=list)   # (name, Exact|RegularExpression, value)
    key: str = ""                          # the route rule and match it comes from (added once per location)


@dataclass
class Location:
    match: str                  # "exact" (=), "prefix", "regex" (~), "iregex" (~*)
    path: str
    rules: list[Rule] = field(default_factory=list)

    @property
    def conditional(self) -> bool:
        return len(self.rules) > 1 or any(r.method or r.headers for r in self.rules)


@dataclass
class Server:
    hostname: str                          # "_" is the default server
    plain_ports: set[int] = field(default_factory=set)
    tls_ports: set[int] = field(default_factory=set)
    certificate: str = ""                  # a Secret's "ns/name" ("" = the default certificate)
    locations: dict[tuple[str, str], Location] = field(default_factory=dict)

    def location(self, match: str, path: str) -> Location:
        return self.locations.setdefault((match, path), Location(match, path))


@dataclass
class Problem:
    """Something to report on `obj_key` ("Kind ns/name"): an event reason and message, and a condition."""
    kind: str
    namespace: str
    name: str
    reason: str
    message: str


@dataclass
class RouteTable:
    servers: dict[str, Server] = field(default_factory=dict)
    upstreams: dict[str, list[str]] = field(default_factory=dict)      # name -> ["ip:port", ...]
    certificates: dict[str, bytes] = field(default_factory=dict)       # "ns/name" -> PEM cert + key
    problems: list[Problem] = field(default_factory=list)
    ingresses: list[str] = field(default_factory=list)                 # "ns/name" of the Ingresses served
    gateways: dict[str, dict] = field(default_factory=dict)            # "ns/name" -> status facts
    routes: dict[str, list[dict]] = field(default_factory=dict)        # "ns/name" -> parent statuses

    def server(self, hostname: str) -> Server:
        return self.servers.setdefault(hostname, Server(hostname))


@dataclass
class Cluster:
    """The objects the table is built from, each a dict keyed "ns/name" (cluster-scoped: "name")."""
    ingresses: dict[str, dict] = field(default_factory=dict)
    ingress_classes: dict[str, dict] = field(default_factory=dict)
    services: dict[str, dict] = field(default_factory=dict)
    slices: dict[str, dict] = field(default_factory=dict)
    secrets: dict[str, dict] = field(default_factory=dict)
    gateway_classes: dict[str, dict] = field(default_factory=dict)
    gateways: dict[str, dict] = field(default_factory=dict)
    routes: dict[str, dict] = field(default_factory=dict)
    namespaces: dict[str, dict] = field(default_factory=dict)


def _key(obj: dict) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def _age(obj: dict) -> tuple[str, str]:
    """Oldest first (creationTimestamp, then name): who wins a conflict, as upstream."""
    return obj["metadata"].get("creationTimestamp") or "", _key(obj)


# ---- Services and endpoints -------------------------------------------------------------------------------------
def upstream_name(namespace: str, service: str, port: str | int) -> str:
    return f"{namespace}-{service}-{port}"


def resolve_backend(cluster: Cluster, table: RouteTable, namespace: str, service: str, port: str | int) \
        -> tuple[str, str]:
    """(upstream name, problem): the Service port's ready endpoints as an upstream; ("", why) if unresolved."""
    svc = cluster.services.get(f"{namespace}/{service}")
    if svc is None:
        return "", f'service "{namespace}/{service}" not found'
    ports = (svc.get("spec") or {}).get("ports") or []
    sport = next((p for p in ports if (p.get("port") == port if isinstance(port, int) else p.get("name") == port)),
                 None)
    if sport is None:
        return "", f'service "{namespace}/{service}" has no port {port}'
    name = upstream_name(namespace, service, port)
    if name in table.upstreams:
        return name, ""
    servers: list[str] = []
    for sl in cluster.slices.values():
        meta = sl["metadata"]
        if meta.get("namespace") != namespace or (meta.get("labels") or {}).get("kubernetes.io/service-name") \
                != service or sl.get("addressType", "IPv4") != "IPv4":
            continue
        eport = next((p.get("port") for p in sl.get("ports") or [] if (p.get("name") or "") == (sport.get("name")
                                                                                             or "")), None)
        if eport is None:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            servers += [f"{addr}:{eport}" for addr in ep.get("addresses") or []]
    table.upstreams[name] = sorted(set(servers))
    return name, ""


def _tls_secret(cluster: Cluster, table: RouteTable, namespace: str, name: str) -> tuple[str, str]:
    """("ns/name", problem): a kubernetes.io/tls Secret's certificate and key, as one PEM."""
    key = f"{namespace}/{name}"
    secret = cluster.secrets.get(key)
    if secret is None:
        return "", f'secret "{key}" not found'
    data = secret.get("data") or {}
    try:
        crt, pem_key = base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])
    except (KeyError, ValueError):
        return "", f'secret "{key}" has no tls.crt and tls.key'
    if b"-----BEGIN" not in crt or b"-----BEGIN" not in pem_key:
        return "", f'secret "{key}" does not hold a PEM certificate and key'
    table.certificates[key] = crt.rstrip(b"\n") + b"\n" + pem_key.rstrip(b"\n") + b"\n"
    return key, ""


# ---- Ingress ----------------------------------------------------------------------------------------------------
def ingress_is_ours(cluster: Cluster, ing: dict) -> bool:
    """Its class is an IngressClass of our controller, or it names none and our class is the default."""
    cls = (ing.get("spec") or {}).get("ingressClassName") or \
        (ing["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
    if cls:
        obj = cluster.ingress_classes.get(cls)
        return cls == INGRESS_CLASS if obj is None else (obj.get("spec") or {}).get("controller") == \
            INGRESS_CONTROLLER
    return any((c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true" and
               (c.get("spec") or {}).get("controller") == INGRESS_CONTROLLER for c in cluster.ingress_classes.values())


def _ingress_locations(path: str, path_type: str, regex: bool) -> list[tuple[str, str]]:
    """(match, path) nginx locations for an Ingress path, as ingress-nginx writes them."""
    path = path or "/"
    if regex:
        return [("iregex", f"^{path}")]
    if path_type == "Exact":
        return [("exact", path)]
    if path_type == "Prefix":
        trimmed = path.rstrip("/")
        return [("prefix", "/")] if not trimmed else [("prefix", trimmed + "/"), ("exact", trimmed)]
    return [("prefix", path)]


def _wildcard(host: str) -> str:
    """A server name: `*.example.com` matches exactly one label, as ingress-nginx's buildServerName."""
    if host.startswith("*."):
        return "~^(?<subdomain>[\\w-]+)" + re.escape(host[1:]).replace("\\-", "-") + "$"
    return host


def add_ingresses(cluster: Cluster, table: RouteTable) -> None:
    ours = sorted((i for i in cluster.ingresses.values() if ingress_is_ours(cluster, i)), key=_age)
    for ing in ours:
        _add_ingress(cluster, table, ing)
    default = table.server("_")
    default.plain_ports.add(HTTP_PORT)
    default.tls_ports.add(HTTPS_PORT)
    if ("prefix", "/") not in default.locations:
        default.location("prefix", "/").rules.append(Rule(Action(status=404), "default backend"))


def _add_ingress(cluster: Cluster, table: RouteTable, ing: dict) -> None:
    ns, name = ing["metadata"]["namespace"], ing["metadata"]["name"]
    source = f"ingress {ns}/{name}"
    table.ingresses.append(f"{ns}/{name}")
    spec = ing.get("spec") or {}
    notes = ing["metadata"].get("annotations") or {}
    protocol = BACKEND_PROTOCOLS.get(notes.get(ANNOTATION + "backend-protocol", "HTTP").upper(), "http")
    target = notes.get(ANNOTATION + "rewrite-target")
    regex = bool(target) or notes.get(ANNOTATION + "use-regex") == "true"
    ssl_redirect = notes.get(ANNOTATION + "ssl-redirect", "true") != "false"

    def problem(reason: str, message: str) -> None:
        table.problems.append(Problem("Ingress", ns, name, reason, message))

    def action(backend: dict | None, path: str) -> Action:
        service = (backend or {}).get("service")
        if not service:
            return Action(status=404)
        port = service.get("port") or {}
        upstream, why = resolve_backend(cluster, table, ns, service["name"], port.get("number") or port.get("name"))
        if why:
            problem("BackendNotFound", why)
            return Action(status=503)
        act = Action(backends=[(upstream, 1)], protocol=protocol)
        if not table.upstreams[upstream]:
            act.status = 503
        if target:
            act.rewrite = (f"(?i)^{path or '/'}", target)
        return act

    tls_hosts: dict[str, str] = {}
    for tls in spec.get("tls") or []:
        cert, why = "", ""
        if tls.get("secretName"):
            cert, why = _tls_secret(cluster, table, ns, tls["secretName"])
            if why:
                problem("SecretNotFound", why + "; serving the default certificate")
        for host in tls.get("hosts") or []:
            tls_hosts[host] = cert
    hosts = [r.get("host") or "_" for r in spec.get("rules") or []]
    default_backend = spec.get("defaultBackend")
    for rule in spec.get("rules") or []:
        host = rule.get("host") or "_"
        server = table.server(_wildcard(host) if host != "_" else "_")
        server.plain_ports.add(HTTP_PORT)
        server.tls_ports.add(HTTPS_PORT)
        if host in tls_hosts and tls_hosts[host] and not server.certificate:
            server.certificate = tls_hosts[host]
        for p in (rule.get("http") or {}).get("paths") or []:
            act = action(p.get("backend"), p.get("path", "/"))
            act.ssl_redirect = ssl_redirect and host in tls_hosts
            for match, path in _ingress_locations(p.get("path", "/"), p.get("pathType", "Prefix"), regex):
                loc = server.location(match, path)
                if not loc.rules:          # the oldest Ingress keeps a conflicting path
                    loc.rules.append(Rule(act, source))
        if ("prefix", "/") not in server.locations:
            act = action(default_backend, "/") if default_backend else Action(status=404)
            act.ssl_redirect = ssl_redirect and host in tls_hosts
            server.location("prefix", "/").rules.append(Rule(act, source if default_backend else "default backend"))
    if default_backend and "_" not in hosts:
        loc = table.server("_").location("prefix", "/")
        if not loc.rules:
            loc.rules.append(Rule(action(default_backend, "/"), source))


# ---- Gateway API ------------------------------------------------------------------------------------------------
def _host_matches(listener: str | None, host: str) -> bool:
    """Whether a route hostname and a listener hostname intersect (both may be `*.` wildcards)."""
    if not listener:
        return True
    if listener == host:
        return True
    if listener.startswith("*.") and host.endswith(listener[1:]) and not host.startswith("*."):
        return True
    if host.startswith("*.") and listener.endswith(host[1:]):
        return True
    return False


def _intersect(listener: str | None, hosts: list[str]) -> list[str]:
    """The hostnames a route serves on a listener: of each intersecting pair, the more specific one."""
    if not hosts:
        return [listener or "_"]
    out = []
    for host in hosts:
        if not listener or listener == host:
            out.append(host)
        elif _host_matches(listener, host):
            more_specific = host if not host.startswith("*.") else listener if not listener.startswith("*.") \
                else max(host, listener, key=len)
            out.append(more_specific)
    return out


def _namespace_allowed(cluster: Cluster, listener: dict, gw_ns: str, route_ns: str) -> bool:
    spec = ((listener.get("allowedRoutes") or {}).get("namespaces") or {})
    mode = spec.get("from", "Same")
    if mode == "All":
        return True
    if mode == "Same":
        return route_ns == gw_ns
    if mode == "Selector":
        labels = (cluster.namespaces.get(route_ns, {}).get("metadata") or {}).get("labels") or {}
        want = (spec.get("selector") or {}).get("matchLabels") or {}
        return all(labels.get(k) == v for k, v in want.items())
    return False


def gateway_is_ours(cluster: Cluster, gw: dict) -> bool:
    cls = cluster.gateway_classes.get((gw.get("spec") or {}).get("gatewayClassName", ""))
    return cls is not None and (cls.get("spec") or {}).get("controllerName") == GATEWAY_CONTROLLER


def _route_locations(path: dict) -> list[tuple[str, str]]:
    ptype, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if ptype == "Exact":
        return [("exact", value)]
    if ptype == "RegularExpression":
        return [("regex", f"^{value}$" if not value.startswith("^") else value)]
    trimmed = value.rstrip("/")
    return [("prefix", "/")] if not trimmed else [("prefix", trimmed + "/"), ("exact", trimmed)]


def _rule_action(cluster: Cluster, table: RouteTable, ns: str, rule: dict, refs_ok: list[str]) -> Action:
    act = Action()
    for f in rule.get("filters") or []:
        if f.get("type") == "RequestHeaderModifier":
            mod = f.get("requestHeaderModifier") or {}
            act.set_headers += [(h["name"], h.get("value", "")) for h in mod.get("set") or []]
            act.add_headers += [(h["name"], h.get("value", "")) for h in mod.get("add") or []]
            act.remove_headers += list(mod.get("remove") or [])
        elif f.get("type") == "RequestRedirect":
            red = f.get("requestRedirect") or {}
            path = red.get("path") or {}
            act.redirect = {"code": red.get("statusCode", 302), "scheme": red.get("scheme"),
                            "hostname": red.get("hostname"), "port": red.get("port"),
                            "path": path.get("replaceFullPath") if path.get("type") == "ReplaceFullPath" else None}
    if act.redirect:
        return act
    for ref in rule.get("backendRefs") or []:
        weight = ref.get("weight", 1)
        if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
            refs_ok.append(f"InvalidKind:{ref.get('kind')} {ref.get('name')} is not a Service")
            act.backends.append(("", weight))
            continue
        if ref.get("namespace", ns) != ns:
            refs_ok.append(f"RefNotPermitted:a backendRef to namespace {ref['namespace']} needs a ReferenceGrant")
            act.backends.append(("", weight))
            continue
        upstream, why = resolve_backend(cluster, table, ns, ref["name"], ref.get("port", 0))
        if why:
            refs_ok.append(f"BackendNotFound:{why}")
        act.backends.append((upstream, weight))
    if not act.backends:
        act.status = 500 if rule.get("backendRefs") else 404
    elif all(not up or w == 0 for up, w in act.backends):
        act.status = 500
    return act


def add_gateways(cluster: Cluster, table: RouteTable) -> None:
    gateways = sorted((g for g in cluster.gateways.values() if gateway_is_ours(cluster, g)), key=_age)
    listeners: dict[str, list[dict]] = {}
    for gw in gateways:
        gkey = _key(gw)
        facts = {"listeners": {}, "problems": []}
        table.gateways[gkey] = facts
        for listener in (gw.get("spec") or {}).get("listeners") or []:
            lname, proto = listener["name"], listener.get("protocol")
            lfacts = {"attached": 0, "resolved": True, "reason": "", "message": "", "accepted": True}
            facts["listeners"][lname] = lfacts
            if proto not in ("HTTP", "HTTPS"):
                lfacts.update(accepted=False, reason="UnsupportedProtocol",
                              message=f"protocol {proto} is not supported by this controller")
                continue
            cert = ""
            if proto == "HTTPS":
                for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
                    cert, why = _tls_secret(cluster, table, ref.get("namespace", gw["metadata"]["namespace"]),
                                            ref["name"])
                    if why:
                        lfacts.update(resolved=False, reason="InvalidCertificateRef", message=why)
                        table.problems.append(Problem("Gateway", gw["metadata"]["namespace"],
                                                      gw["metadata"]["name"], "InvalidCertificateRef", why))
                    break
            listeners.setdefault(gkey, []).append({"listener": listener, "cert": cert, "facts": lfacts})
    routes = sorted(cluster.routes.values(), key=_age)
    for route in routes:
        _add_route(cluster, table, route, gateways, listeners)


def _add_route(cluster: Cluster, table: RouteTable, route: dict, gateways: list[dict],
               listeners: dict[str, list[dict]]) -> None:
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    spec = route.get("spec") or {}
    source = f"httproute {ns}/{name}"
    parents = []
    for ref in spec.get("parentRefs") or []:
        if ref.get("kind", "Gateway") != "Gateway" or ref.get("group", "gateway.networking.k8s.io") != \
                "gateway.networking.k8s.io":
            continue
        gkey = f"{ref.get('namespace', ns)}/{ref['name']}"
        gw = cluster.gateways.get(gkey)
        if gw is None or not gateway_is_ours(cluster, gw):
            continue          # not ours: another controller reports on it
        status = {"parentRef": ref, "accepted": True, "reason": "Accepted", "message": "Route is accepted",
                  "resolved": True, "refs_reason": "ResolvedRefs", "refs_message": "all references resolved"}
        parents.append(status)
        chosen = [lst for lst in listeners.get(gkey, []) if
                  (not ref.get("sectionName") or lst["listener"]["name"] == ref["sectionName"]) and
                  (not ref.get("port") or lst["listener"].get("port") == ref["port"])]
        chosen = [lst for lst in chosen if _namespace_allowed(cluster, lst["listener"], gkey.split("/")[0], ns)]
        if not chosen:
            status.update(accepted=False, reason="NotAllowedByListeners",
                          message="no listener of the Gateway accepts this route")
            continue
        placed = [(lst, _intersect(lst["listener"].get("hostname"), spec.get("hostnames") or []))
                  for lst in chosen]
        placed = [(lst, hosts) for lst, hosts in placed if hosts]
        if not placed:
            status.update(accepted=False, reason="NoMatchingListenerHostname",
                          message="no listener hostname intersects the route's hostnames")
            continue
        refs: list[str] = []
        actions = [_rule_action(cluster, table, ns, rule, refs) for rule in spec.get("rules") or []]
        if refs:
            reason, _, message = refs[0].partition(":")
            status.update(resolved=False, refs_reason=reason, refs_message=message)
            table.problems.append(Problem("HTTPRoute", ns, name, reason, message))
        for lst, hosts in placed:
            lst["facts"]["attached"] += 1
            port, tls = lst["listener"]["port"], lst["listener"].get("protocol") == "HTTPS"
            for host in hosts:
                server = table.server(_wildcard(host) if host != "_" else "_")
                (server.tls_ports if tls else server.plain_ports).add(port)
                if tls and lst["cert"] and not server.certificate:
                    server.certificate = lst["cert"]
                for i, (rule, act) in enumerate(zip(spec.get("rules") or [], actions)):
                    for j, match in enumerate(rule.get("matches") or [{}]):
                        for m, path in _route_locations(match.get("path") or {}):
                            headers = [(h["name"].lower(), h.get("type", "Exact"), h.get("value", ""))
                                       for h in match.get("headers") or []]
                            loc = server.location(m, path)
                            key = f"{source}/{i}/{j}"
                            if all(r.key != key for r in loc.rules):   # two listeners, one server: once
                                loc.rules.append(Rule(act, source, match.get("method", ""), headers, key))
    table.routes[f"{ns}/{name}"] = parents


def _precedence(rule: Rule) -> tuple[int, int]:
    """Gateway API: a method match before none, more header matches first (the sort is stable: oldest first)."""
    return (0 if rule.method else 1, -len(rule.headers))


def build(cluster: Cluster) -> RouteTable:
    """The route table for everything this controller serves."""
    table = RouteTable()
    add_ingresses(cluster, table)
    add_gateways(cluster, table)
    for server in table.servers.values():
        for loc in server.locations.values():
            if len(loc.rules) > 1:      # a route on the default server replaces the 404 default backend
                loc.rules = [r for r in loc.rules if r.source != "default backend"]
            loc.rules.sort(key=_precedence)
    return table
