"""The route table and nginx.conf as pure functions of the objects (ingress/routes.py, ingress/nginxconf.py), the
rendered configuration accepted by the distribution's `nginx -t`, and the API's one-line errors for bad input."""
from __future__ import annotations

import base64
import shutil

import pytest

from ingress import nginxconf, routes
from ingress.nginx import Nginx, default_certificate
from kemu.api.defaults import apply_defaults
from kemu.api.validation import validate


def svc(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def eps(name: str, ips: list[str]) -> dict:
    return {"metadata": {"name": f"{name}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def backend(name: str) -> dict:
    return {"service": {"name": name, "port": {"number": 80}}}


def tls_secret() -> dict:
    pem = default_certificate()
    crt, key = pem.split(b"-----BEGIN PRIVATE")
    return {"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(b"-----BEGIN PRIVATE" + key).decode()}}


def cluster() -> routes.Cluster:
    c = routes.Cluster()
    c.ingress_classes = {"nginx": {"metadata": {"name": "nginx", "annotations": {
        routes.DEFAULT_CLASS_ANNOTATION: "true"}}, "spec": {"controller": routes.INGRESS_CONTROLLER}}}
    c.services = {f"default/{n}": svc(n) for n in "abcd"}
    c.slices = {f"default/{n}-x": eps(n, [f"10.244.0.{i}"]) for i, n in enumerate("abcd", 2)}
    c.secrets = {"default/tls": tls_secret()}
    c.ingresses = {"default/i": {
        "metadata": {"name": "i", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"tls": [{"hosts": ["foo.example.com"], "secretName": "tls"}], "rules": [
            {"host": "foo.example.com", "http": {"paths": [
                {"path": "/a", "pathType": "Prefix", "backend": backend("a")},
                {"path": "/b", "pathType": "Exact", "backend": backend("b")}]}},
            {"host": "*.bar.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend("c")},
                {"path": "/x", "pathType": "ImplementationSpecific", "backend": backend("missing")}]}}]}}}
    c.gateway_classes = {"nginx": {"metadata": {"name": "nginx"},
                                   "spec": {"controllerName": routes.GATEWAY_CONTROLLER}}}
    c.gateways = {"default/gw": {"metadata": {"name": "gw", "namespace": "default"}, "spec": {
        "gatewayClassName": "nginx", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}}
    c.routes = {"default/hr": {"metadata": {"name": "hr", "namespace": "default"}, "spec": {
        "parentRefs": [{"name": "gw"}], "hostnames": ["w.gw.com"], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "a", "port": 80, "weight": 90}, {"name": "b", "port": 80, "weight": 10}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "method": "GET",
                          "headers": [{"name": "X-Env", "type": "Exact", "value": "canary"}]}],
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                 "set": [{"name": "X-A", "value": "1"}], "remove": ["X-C"]}}],
             "backendRefs": [{"name": "c", "port": 80}]},
            {"matches": [{"path": {"type": "Exact", "value": "/old"}}], "filters": [
                {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/gone"}}],
             "backendRefs": [{"name": "nope", "port": 80}]}]}}}
    return c


def test_ingress_locations_follow_ingress_nginx():
    table = routes.build(cluster())
    foo = table.servers["foo.example.com"]
    assert set(foo.locations) == {("prefix", "/a/"), ("exact", "/a"), ("exact", "/b"), ("prefix", "/")}
    assert foo.certificate == "default/tls"
    assert foo.locations[("prefix", "/a/")].rules[0].action.ssl_redirect
    assert foo.locations[("prefix", "/")].rules[0].action.status == 404
    wildcard = next(s for h, s in table.servers.items() if "bar" in h)
    assert wildcard.hostname.startswith("~^(?<subdomain>[\\w-]+)")
    assert wildcard.locations[("prefix", "/x")].rules[0].action.status == 503
    assert table.upstreams["default-a-80"] == ["10.244.0.2:8080"]
    assert [(p.kind, p.reason) for p in table.problems] == [("Ingress", "BackendNotFound"),
                                                            ("HTTPRoute", "BackendNotFound")]


def test_ingress_of_another_class_is_ignored():
    c = cluster()
    c.ingresses["default/i"]["spec"]["ingressClassName"] = "other"
    assert "foo.example.com" not in routes.build(c).servers


def test_httproute_precedence_weights_and_status():
    table = routes.build(cluster())
    loc = table.servers["w.gw.com"].locations[("prefix", "/")]
    assert loc.conditional and loc.rules[0].method == "GET"          # the header + method match first
    assert loc.rules[1].action.backends == [("default-a-80", 90), ("default-b-80", 10)]
    assert table.servers["w.gw.com"].locations[("prefix", "/gone/")].rules[0].action.status == 500
    (parent,) = table.routes["default/hr"]
    assert parent["accepted"] and not parent["resolved"] and parent["refs_reason"] == "BackendNotFound"
    assert table.gateways["default/gw"]["listeners"]["http"]["attached"] == 1


def test_rendered_config_passes_nginx_t(tmp_path):
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed")
    table = routes.build(cluster())
    nginx = Nginx(str(tmp_path))
    nginx.prepare()
    for key, pem in table.certificates.items():
        with open(nginxconf.cert_file(nginx.paths["certs"], key), "wb") as f:
            f.write(pem)
    text = nginxconf.render(table, nginx.paths)
    assert 'split_clients "$request_id" $kemu_split_' in text and "90.00% \"default-a-80\"" in text
    assert "return 301 \"https://$host$uri$is_args$args\";" in text
    conf = tmp_path / "candidate.conf"
    conf.write_text(text)
    assert nginx.check(str(conf)) == ""
    conf.write_text(text.replace("proxy_pass", "proxy_pas", 1))
    assert "unknown directive" in nginx.check(str(conf))


def ingress(path_type: str = "Prefix", host: str = "a.example.com", path: str = "/") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "default"},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": path_type, "backend": backend("a")}]}}]}}


@pytest.mark.parametrize("obj,field,words", [
    (ingress("Foo"), "spec.rules[0].http.paths[0].pathType", 'Unsupported value: "Foo"'),
    (ingress(host="Bad_Host"), "spec.rules[0].host", '"Bad_Host": must be a DNS-1123 subdomain'),
    (ingress(host="10.0.0.1"), "spec.rules[0].host", "not an IP address"),
    (ingress(host="a.*.com"), "spec.rules[0].host", "must be a DNS-1123 subdomain"),
    (ingress(path="nope"), "spec.rules[0].http.paths[0].path", "absolute path"),
])
def test_bad_ingress_is_one_line_naming_the_field(obj, field, words):
    problems = validate(apply_defaults(obj))
    assert len(problems) == 1 and problems[0][0] == field and words in problems[0][1], problems


def test_wildcard_host_and_route_defaults_are_valid():
    assert validate(apply_defaults(ingress(host="*.example.com"))) == []
    route = apply_defaults({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                            "metadata": {"name": "r", "namespace": "default"},
                            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
                                {"name": "a", "port": 80}]}]}})
    assert validate(route) == []
    assert route["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 1
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    assert [p[0] for p in validate(route)] == ["spec.rules[0].backendRefs[0].weight"]
