"""networking.k8s.io/v1 Ingress and IngressClass, gateway.networking.k8s.io/v1 GatewayClass, Gateway and HTTPRoute:
their field types (merged into kemu.api.schema), defaults and validation, worded as upstream's
(ValidateIngress; the Gateway API CRDs' OpenAPI and CEL rules)."""
from __future__ import annotations

import ipaddress
import re

from kemu.api.meta import is_dns1123_label, is_dns1123_subdomain

Problems = list[tuple[str, str]]
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
GATEWAY_GROUP = "gateway.networking.k8s.io"
LISTENER_PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP", "UDP")
ROUTE_PATH_TYPES = ("Exact", "PathPrefix", "RegularExpression")
HEADER_MATCH_TYPES = ("Exact", "RegularExpression")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
FILTER_TYPES = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite",
                "RequestMirror", "ExtensionRef")
SUPPORTED_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
GW_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def types(STR: object, BOOL: object, INT32: object, PORT: object, OPEN: object, ListOf: type, MapOf: type) \
        -> tuple[dict, dict]:
    """(named types, TOP entries) for kemu.api.schema, built from its primitives (this module must not import
    schema: schema imports the kinds this module describes)."""
    named = {
        "IngressSpec": {"ingressClassName": STR, "defaultBackend": "IngressBackend", "tls": ListOf("IngressTLS"),
                        "rules": ListOf("IngressRule")},
        "IngressBackend": {"service": "IngressServiceBackend", "resource": "TypedLocalObjectReference"},
        "IngressServiceBackend": {"name": STR, "port": "ServiceBackendPort"},
        "ServiceBackendPort": {"name": STR, "number": INT32},
        "TypedLocalObjectReference": {"apiGroup": STR, "kind": STR, "name": STR},
        "IngressTLS": {"hosts": ListOf(STR), "secretName": STR},
        "IngressRule": {"host": STR, "http": "HTTPIngressRuleValue"},
        "HTTPIngressRuleValue": {"paths": ListOf("HTTPIngressPath")},
        "HTTPIngressPath": {"path": STR, "pathType": STR, "backend": "IngressBackend"},
        "IngressStatus": {"loadBalancer": "LoadBalancerStatus", "conditions": ListOf("Condition", "type", "merge")},
        "IngressClassSpec": {"controller": STR, "parameters": OPEN},
        "GatewayClassSpec": {"controllerName": STR, "parametersRef": OPEN, "description": STR},
        "GatewaySpec": {"gatewayClassName": STR, "listeners": ListOf("Listener", "name", "merge"),
                        "addresses": ListOf(OPEN), "infrastructure": OPEN, "backendTLS": OPEN},
        "Listener": {"name": STR, "hostname": STR, "port": PORT, "protocol": STR, "tls": "GatewayTLSConfig",
                     "allowedRoutes": OPEN},
        "GatewayTLSConfig": {"mode": STR, "certificateRefs": ListOf("SecretObjectReference"), "options": MapOf(STR),
                             "frontendValidation": OPEN},
        "SecretObjectReference": {"group": STR, "kind": STR, "name": STR, "namespace": STR},
        "HTTPRouteSpec": {"parentRefs": ListOf("ParentReference"), "hostnames": ListOf(STR),
                          "rules": ListOf("HTTPRouteRule")},
        "ParentReference": {"group": STR, "kind": STR, "namespace": STR, "name": STR, "sectionName": STR,
                            "port": PORT},
        "HTTPRouteRule": {"name": STR, "matches": ListOf("HTTPRouteMatch"), "filters": ListOf("HTTPRouteFilter"),
                          "backendRefs": ListOf("HTTPBackendRef"), "timeouts": OPEN, "retry": OPEN,
                          "sessionPersistence": OPEN},
        "HTTPRouteMatch": {"path": "HTTPPathMatch", "headers": ListOf("HTTPHeaderMatch"),
                           "queryParams": ListOf(OPEN), "method": STR},
        "HTTPPathMatch": {"type": STR, "value": STR},
        "HTTPHeaderMatch": {"type": STR, "name": STR, "value": STR},
        "HTTPRouteFilter": {"type": STR, "requestHeaderModifier": "HTTPHeaderFilter",
                            "responseHeaderModifier": "HTTPHeaderFilter", "requestRedirect": "HTTPRequestRedirect",
                            "urlRewrite": OPEN, "requestMirror": OPEN, "extensionRef": OPEN, "cors": OPEN},
        "HTTPHeaderFilter": {"set": ListOf("HTTPHeader"), "add": ListOf("HTTPHeader"), "remove": ListOf(STR)},
        "HTTPHeader": {"name": STR, "value": STR},
        "HTTPRequestRedirect": {"scheme": STR, "hostname": STR, "path": OPEN, "port": PORT, "statusCode": INT32},
        "HTTPBackendRef": {"group": STR, "kind": STR, "name": STR, "namespace": STR, "port": PORT,
                           "weight": INT32, "filters": ListOf("HTTPRouteFilter")},
    }
    top = {
        "Ingress": {"spec": "IngressSpec", "status": "IngressStatus"},
        "IngressClass": {"spec": "IngressClassSpec"},
        "GatewayClass": {"spec": "GatewayClassSpec", "status": OPEN},
        "Gateway": {"spec": "GatewaySpec", "status": OPEN},
        "HTTPRoute": {"spec": "HTTPRouteSpec", "status": OPEN},
    }
    return named, top


# ---- defaults ----------------------------------------------------------------------------------------------------
def default_gateway(obj: dict) -> None:
    """Listeners' allowedRoutes: namespaces from Same (the CRD's defaults)."""
    for listener in (obj.get("spec") or {}).get("listeners") or []:
        if isinstance(listener, dict):
            routes = listener.setdefault("allowedRoutes", {"namespaces": {"from": "Same"}})
            if isinstance(routes, dict):
                routes.setdefault("namespaces", {"from": "Same"})
            tls = listener.get("tls")
            if isinstance(tls, dict):
                tls.setdefault("mode", "Terminate")


def default_httproute(obj: dict) -> None:
    """parentRefs group/kind, a rule's matches ([PathPrefix /]), path match type, backendRef weight 1."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for ref in spec.get("parentRefs") or []:
        if isinstance(ref, dict):
            ref.setdefault("group", GATEWAY_GROUP)
            ref.setdefault("kind", "Gateway")
    for rule in spec.setdefault("rules", [{}]) or []:
        if not isinstance(rule, dict):
            continue
        matches = rule.setdefault("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
        for match in matches if isinstance(matches, list) else []:
            if isinstance(match, dict):
                path = match.setdefault("path", {"type": "PathPrefix", "value": "/"})
                if isinstance(path, dict):
                    path.setdefault("type", "PathPrefix")
                    path.setdefault("value", "/")
                for header in match.get("headers") or []:
                    if isinstance(header, dict):
                        header.setdefault("type", "Exact")
        for ref in rule.get("backendRefs") or []:
            if isinstance(ref, dict):
                ref.setdefault("group", "")
                ref.setdefault("kind", "Service")
                ref.setdefault("weight", 1)


DEFAULTERS = {"Gateway": default_gateway, "HTTPRoute": default_httproute}


# ---- Ingress -----------------------------------------------------------------------------------------------------
def _ingress_host(host: object, path: str, problems: Problems) -> None:
    """A rule's host: a DNS-1123 subdomain, optionally `*.` + one; never an IP address (ValidateIngressSpec)."""
    if not isinstance(host, str) or not host:
        return
    try:
        ipaddress.ip_address(host)
        problems.append((path, f'Invalid value: "{host}": must be a DNS name, not an IP address'))
        return
    except ValueError:
        pass
    name = host[2:] if host.startswith("*.") else host
    if "*" in name or not is_dns1123_subdomain(name):
        what = "a wildcard DNS-1123 subdomain" if host.startswith("*.") else "a DNS-1123 subdomain"
        problems.append((path, f'Invalid value: "{host}": must be {what} (lower-case letters, digits, \'-\' and '
                               "'.'; a wildcard only as the whole first label, e.g. '*.example.com')"))


def _ingress_backend(backend: object, path: str, problems: Problems) -> None:
    if not isinstance(backend, dict):
        problems.append((path, "Required value: set backend.service (name and port)"))
        return
    service, resource = backend.get("service"), backend.get("resource")
    if service and resource:
        problems.append((path, "Invalid value: cannot set both `resource` and `service` backends"))
    elif not service and not resource:
        problems.append((path, "Required value: set backend.service (name and port) or backend.resource"))
    elif service:
        if not service.get("name") or not is_dns1123_label(service["name"]):
            problems.append((f"{path}.service.name", f'Invalid value: "{service.get("name", "")}": must be a '
                                                     "Service name (a DNS-1123 label)"))
        port = service.get("port") or {}
        if bool(port.get("name")) == ("number" in port):
            problems.append((f"{path}.service.port", "Invalid value: set exactly one of port.name and port.number"))
        elif "number" in port and not 1 <= port["number"] <= 65535:
            problems.append((f"{path}.service.port.number", f"Invalid value: {port['number']}: must be between 1 "
                                                            "and 65535, inclusive"))


def validate_ingress(obj: dict, problems: Problems) -> None:
    """upstream's ValidateIngress (networking/v1): rules or a defaultBackend, pathType, paths, hosts, backends."""
    spec = obj.get("spec") or {}
    if not spec.get("rules") and not spec.get("defaultBackend"):
        problems.append(("spec", "Invalid value: either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        _ingress_backend(spec["defaultBackend"], "spec.defaultBackend", problems)
    cls = spec.get("ingressClassName")
    if cls is not None and not is_dns1123_subdomain(cls):
        problems.append(("spec.ingressClassName", f'Invalid value: "{cls}": must be a DNS-1123 subdomain'))
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate(tls.get("hosts") or []):
            _ingress_host(host, f"spec.tls[{i}].hosts[{j}]", problems)
    for i, rule in enumerate(spec.get("rules") or []):
        where = f"spec.rules[{i}]"
        _ingress_host(rule.get("host"), f"{where}.host", problems)
        http = rule.get("http")
        if http is None:
            continue
        if not http.get("paths"):
            problems.append((f"{where}.http.paths", "Required value: give at least one path"))
        for j, p in enumerate(http.get("paths") or []):
            pw = f"{where}.http.paths[{j}]"
            ptype, value = p.get("pathType"), p.get("path", "")
            if ptype is None:
                problems.append((f"{pw}.pathType", "Required value: pathType must be specified"))
            elif ptype not in PATH_TYPES:
                problems.append((f"{pw}.pathType", f'Unsupported value: "{ptype}": supported values: '
                                                   + ", ".join(f'"{t}"' for t in PATH_TYPES)))
            elif ptype in ("Exact", "Prefix") and (not value.startswith("/") or
                                                     any(s in value for s in ("//", "/./", "/../", "%2f", "%2F"))
                                                     or value.endswith(("/..", "/."))):
                problems.append((f"{pw}.path", f'Invalid value: "{value}": must be an absolute path without '
                                               "'//', '/./' or '/../'"))
            elif ptype == "ImplementationSpecific" and value and not value.startswith("/"):
                problems.append((f"{pw}.path", f'Invalid value: "{value}": must be an absolute path'))
            _ingress_backend(p.get("backend"), f"{pw}.backend", problems)


def validate_ingress_class(obj: dict, problems: Problems) -> None:
    controller = (obj.get("spec") or {}).get("controller")
    if not controller:
        problems.append(("spec.controller", "Required value: name the controller, e.g. k8s.io/ingress-nginx"))
    elif len(controller) > 250 or "/" not in controller:
        problems.append(("spec.controller", f'Invalid value: "{controller}": must be a domain-prefixed path '
                                            "such as k8s.io/ingress-nginx"))


# ---- Gateway API -------------------------------------------------------------------------------------------------
def _gw_hostname(value: object, path: str, problems: Problems) -> None:
    if isinstance(value, str) and (not GW_HOSTNAME.match(value) or len(value) > 253):
        problems.append((path, f'Invalid value: "{value}": must be a hostname, optionally prefixed by `*.` '
                               "(no IP addresses, no port)"))


def validate_gateway_class(obj: dict, problems: Problems) -> None:
    name = (obj.get("spec") or {}).get("controllerName")
    if not name or "/" not in name:
        problems.append(("spec.controllerName", f'Invalid value: "{name or ""}": must be a domain-prefixed path '
                                                "such as example.net/gateway-controller"))


def validate_gateway(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    if not spec.get("gatewayClassName"):
        problems.append(("spec.gatewayClassName", "Required value: name a GatewayClass"))
    listeners = spec.get("listeners") or []
    if not listeners:
        problems.append(("spec.listeners", "Required value: give at least one listener"))
    seen: set[str] = set()
    for i, listener in enumerate(listeners):
        where = f"spec.listeners[{i}]"
        name = listener.get("name")
        if not name or not is_dns1123_label(name):
            problems.append((f"{where}.name", f'Invalid value: "{name or ""}": must be a DNS-1123 label'))
        elif name in seen:
            problems.append((f"{where}.name", f'Duplicate value: "{name}": listener names must be unique'))
        seen.add(name or "")
        if listener.get("port") is None:
            problems.append((f"{where}.port", "Required value: give the listener's port"))
        proto = listener.get("protocol")
        if proto not in LISTENER_PROTOCOLS:
            problems.append((f"{where}.protocol", f'Unsupported value: "{proto}": supported values: '
                                                  + ", ".join(f'"{p}"' for p in LISTENER_PROTOCOLS)))
        elif proto == "HTTPS" and not ((listener.get("tls") or {}).get("certificateRefs")):
            problems.append((f"{where}.tls", "Invalid value: certificateRefs must be specified when protocol is "
                                             "HTTPS and TLS mode is Terminate"))
        _gw_hostname(listener.get("hostname"), f"{where}.hostname", problems)


def _route_filters(filters: list, where: str, problems: Problems) -> None:
    for k, f in enumerate(filters or []):
        ftype = f.get("type")
        if ftype not in FILTER_TYPES:
            problems.append((f"{where}[{k}].type", f'Unsupported value: "{ftype}": supported values: '
                                                   + ", ".join(f'"{t}"' for t in FILTER_TYPES)))
            continue
        field = ftype[0].lower() + ftype[1:]
        if f.get(field) is None:
            problems.append((f"{where}[{k}].{field}", f"Required value: filter type {ftype} needs `{field}`"))
        for hk in ("set", "add"):
            for h in (f.get(field) or {}).get(hk) or [] if ftype.endswith("HeaderModifier") else []:
                if not HEADER_NAME.match(h.get("name") or ""):
                    problems.append((f"{where}[{k}].{field}.{hk}", f'Invalid value: "{h.get("name")}": must be an '
                                                                    "HTTP header name"))
        if ftype == "RequestRedirect":
            code = (f.get("requestRedirect") or {}).get("statusCode")
            if code is not None and code not in (301, 302):
                problems.append((f"{where}[{k}].requestRedirect.statusCode",
                                 f'Unsupported value: {code}: supported values: "301", "302"'))
            scheme = (f.get("requestRedirect") or {}).get("scheme")
            if scheme is not None and scheme not in ("http", "https"):
                problems.append((f"{where}[{k}].requestRedirect.scheme",
                                 f'Unsupported value: "{scheme}": supported values: "http", "https"'))


def validate_httproute(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    for i, host in enumerate(spec.get("hostnames") or []):
        _gw_hostname(host, f"spec.hostnames[{i}]", problems)
    for i, ref in enumerate(spec.get("parentRefs") or []):
        if not ref.get("name"):
            problems.append((f"spec.parentRefs[{i}].name", "Required value: name the parent Gateway"))
    for i, rule in enumerate(spec.get("rules") or []):
        where = f"spec.rules[{i}]"
        for j, match in enumerate(rule.get("matches") or []):
            path = match.get("path") or {}
            ptype, value = path.get("type"), path.get("value", "/")
            if ptype not in ROUTE_PATH_TYPES:
                problems.append((f"{where}.matches[{j}].path.type", f'Unsupported value: "{ptype}": supported '
                                 "values: " + ", ".join(f'"{t}"' for t in ROUTE_PATH_TYPES)))
            elif ptype != "RegularExpression" and not str(value).startswith("/"):
                problems.append((f"{where}.matches[{j}].path.value", f'Invalid value: "{value}": must be an '
                                                                     "absolute path"))
            for k, header in enumerate(match.get("headers") or []):
                if header.get("type", "Exact") not in HEADER_MATCH_TYPES or \
                        not HEADER_NAME.match(header.get("name") or ""):
                    problems.append((f"{where}.matches[{j}].headers[{k}]", "Invalid value: a header match needs a "
                                     "header name and type Exact or RegularExpression"))
            method = match.get("method")
            if method is not None and method not in METHODS:
                problems.append((f"{where}.matches[{j}].method", f'Unsupported value: "{method}": supported '
                                 "values: " + ", ".join(f'"{m}"' for m in METHODS)))
        _route_filters(rule.get("filters") or [], f"{where}.filters", problems)
        for j, ref in enumerate(rule.get("backendRefs") or []):
            if not ref.get("name"):
                problems.append((f"{where}.backendRefs[{j}].name", "Required value: name the backend Service"))
            weight = ref.get("weight", 1)
            if not 0 <= weight <= 1_000_000:
                problems.append((f"{where}.backendRefs[{j}].weight", f"Invalid value: {weight}: must be between 0 "
                                                                     "and 1000000, inclusive"))
            if ref.get("kind", "Service") == "Service" and ref.get("port") is None:
                problems.append((f"{where}.backendRefs[{j}].port", "Required value: must be specified when the "
                                                                   "referent is a Service"))


CHECKS = {"Ingress": validate_ingress, "IngressClass": validate_ingress_class, "GatewayClass": validate_gateway_class,
          "Gateway": validate_gateway, "HTTPRoute": validate_httproute}


# ---- kubectl columns (kemu.api.tables) ---------------------------------------------------------------------------
def _cond(obj: dict, ctype: str) -> str:
    return next((c.get("status", "Unknown") for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == ctype), "Unknown")


def tables(age) -> dict:
    """kubectl's columns for these kinds; `age` renders a creationTimestamp (tables.py's)."""
    def ingress(obj: dict, wide: bool) -> list[str]:
        spec = obj.get("spec") or {}
        hosts = [r.get("host") or "*" for r in spec.get("rules") or []] or ["*"]
        lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [obj["metadata"]["name"], spec.get("ingressClassName") or "<none>", ",".join(hosts),
                ",".join(i.get("ip") or i.get("hostname", "") for i in lb), "80, 443" if spec.get("tls") else "80",
                age(obj["metadata"].get("creationTimestamp"))]

    def ingress_class(obj: dict, wide: bool) -> list[str]:
        spec = obj.get("spec") or {}
        return [obj["metadata"]["name"], spec.get("controller", ""), "<none>" if not spec.get("parameters") else
                str(spec["parameters"].get("name")), age(obj["metadata"].get("creationTimestamp"))]

    def gateway_class(obj: dict, wide: bool) -> list[str]:
        return [obj["metadata"]["name"], (obj.get("spec") or {}).get("controllerName", ""), _cond(obj, "Accepted"),
                age(obj["metadata"].get("creationTimestamp"))]

    def gateway(obj: dict, wide: bool) -> list[str]:
        addrs = [a.get("value", "") for a in (obj.get("status") or {}).get("addresses") or []]
        return [obj["metadata"]["name"], (obj.get("spec") or {}).get("gatewayClassName", ""), ",".join(addrs),
                _cond(obj, "Programmed"), age(obj["metadata"].get("creationTimestamp"))]

    def route(obj: dict, wide: bool) -> list[str]:
        return [obj["metadata"]["name"], ",".join((obj.get("spec") or {}).get("hostnames") or []) or "*",
                age(obj["metadata"].get("creationTimestamp"))]

    return {"Ingress": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], [], ingress),
            "IngressClass": (["NAME", "CONTROLLER", "PARAMETERS", "AGE"], [], ingress_class),
            "GatewayClass": (["NAME", "CONTROLLER", "ACCEPTED", "AGE"], [], gateway_class),
            "Gateway": (["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"], [], gateway),
            "HTTPRoute": (["NAME", "HOSTNAMES", "AGE"], [], route)}
