"""nginx.conf from a route table: a pure function (ingress/routes.py's data in, the configuration text out).

Each server is a `server` block (the default server `_` listens on every port, default_server, and answers 404);
each location proxies to an `upstream` of pod addresses (keepalive, as ingress-nginx), with weights as
`split_clients` on `$request_id`. A location several rules share (method / header matches) selects its rule with
a `map` over the request's method and headers and an internal rewrite to the rule's own location.
"""
from __future__ import annotations

import os
import re

from ingress.routes import Action, Location, RouteTable, Server

SEP = "|~|"                    # joins the method and header values a rule selection looks at
INTERNAL = "/__kemu"           # internal locations of conditional rules
UPSTREAM_KEEPALIVE = 32
STANDARD_HEADERS = [("Host", "$host"), ("X-Real-IP", "$remote_addr"),
                    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"), ("X-Forwarded-Host", "$host"),
                    ("X-Forwarded-Port", "$server_port"), ("X-Forwarded-Proto", "$scheme"),
                    ("X-Request-ID", "$request_id"), ("Connection", "$connection_upgrade"),
                    ("Upgrade", "$http_upgrade")]
LOG_FORMAT = ('\'$remote_addr - [$time_local] "$host" "$request" $status $body_bytes_sent "$http_user_agent" '
              '$request_time [$proxy_upstream_name] $upstream_addr $upstream_status\'')


def q(text: str) -> str:
    """An nginx double-quoted string (backslashes doubled: nginx unescapes them once)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cert_file(certs_dir: str, key: str) -> str:
    return os.path.join(certs_dir, key.replace("/", "_") + ".pem")


class _Writer:
    def __init__(self, table: RouteTable, paths: dict[str, str]) -> None:
        self.table, self.paths = table, paths
        self.http: list[str] = []          # http-level maps and split_clients
        self.counter = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    # ---- actions ---------------------------------------------------------------------------------------------
    def action(self, act: Action, indent: str) -> list[str]:
        out: list[str] = []
        if act.ssl_redirect:
            out.append(f"{indent}if ($scheme = http) {{ return 308 https://$host$request_uri; }}")
        if act.redirect:
            red = act.redirect
            scheme = red.get("scheme") or "$scheme"
            host = red.get("hostname") or "$host"
            port = red.get("port")
            if port:
                suffix = "" if (scheme, port) in (("http", 80), ("https", 443)) else f":{port}"
            else:
                suffix = "" if red.get("scheme") else "$kemu_port_suffix"
            path = red.get("path") or "$uri"
            out.append(f"{indent}return {red.get('code', 302)} {q(f'{scheme}://{host}{suffix}{path}$is_args$args')};")
            return out
        live = [(up, w) for up, w in act.backends if w > 0]
        if act.status or not live:
            out.append(f"{indent}return {act.status or 500};")
            return out
        if len(live) == 1:
            up = live[0][0]
            if not up:
                return out + [f"{indent}return 500;"]
            if not self.table.upstreams.get(up):
                return out + [f"{indent}set $proxy_upstream_name {q(up)};", f"{indent}return 503;"]
            target = up
            out.append(f"{indent}set $proxy_upstream_name {q(up)};")
        else:
            var = f"$kemu_split_{self._next()}"
            total = sum(w for _, w in live)
            lines, acc = [], 0.0
            for i, (up, w) in enumerate(live):
                value = up if up and self.table.upstreams.get(up) else ("kemu-503" if up else "kemu-500")
                if i == len(live) - 1:
                    lines.append(f"    * {q(value)};")
                else:
                    share = round(w * 100.0 / total, 2)
                    acc += share
                    if share > 0:
                        lines.append(f"    {share:.2f}% {q(value)};")
            self.http += [f"split_clients \"$request_id\" {var} {{", *lines, "}"]
            out += [f"{indent}if ({var} = kemu-500) {{ return 500; }}",
                    f"{indent}if ({var} = kemu-503) {{ return 503; }}",
                    f"{indent}set $proxy_upstream_name {var};"]
            target = var
        if act.rewrite:
            out.append(f"{indent}rewrite {q(act.rewrite[0])} {q(act.rewrite[1])} break;")
        headers = dict(STANDARD_HEADERS)
        for name, value in act.set_headers:
            headers[name] = value
        for name, value in act.add_headers:
            var = "$http_" + name.lower().replace("-", "_")
            mapped = f"$kemu_add_{self._next()}"
            self.http += [f"map {var} {mapped} {{", f'    "" {q(value)};', f"    default {q(var + ',' + value)};",
                          "}"]
            headers[name] = mapped
        for name in act.remove_headers:
            headers[name] = ""
        if act.protocol in ("grpc", "grpcs"):
            out += [f"{indent}grpc_set_header {n} {q(v)};" for n, v in headers.items() if n not in
                    ("Connection", "Upgrade")]
            out.append(f"{indent}grpc_pass {act.protocol}://{target};")
        else:
            # the standard headers are set once at http level: a location of its own headers costs nginx a
            # headers hash per location (~0.7 ms each: 1,000 Ingress rules would take ~0.7 s more to load)
            if act.set_headers or act.add_headers or act.remove_headers:
                out += [f"{indent}proxy_set_header {n} {q(v)};" for n, v in headers.items()]
            out.append(f"{indent}proxy_pass {act.protocol}://{target};")
        return out

    # ---- locations -------------------------------------------------------------------------------------------
    @staticmethod
    def _location_head(loc: Location) -> str:
        modifier = {"exact": "= ", "prefix": "", "regex": "~ ", "iregex": "~* "}[loc.match]
        return f"location {modifier}{q(loc.path)} {{"

    def location(self, loc: Location) -> list[str]:
        head = self._location_head(loc)
        if not loc.conditional:
            rule = loc.rules[0]
            return [f"    {head}", f"        # {rule.source}", *self.action(rule.action, "        "), "    }"]
        n = self._next()
        names = sorted({h[0] for r in loc.rules for h in r.headers})
        key_vars = ["$request_method"] + ["$http_" + h.replace("-", "_") for h in names]
        selector = f"$kemu_rule_{n}"
        selection = [f"map {q(SEP.join(key_vars))} {selector} {{"]
        body = []
        for i, rule in enumerate(loc.rules):
            parts = [re.escape(rule.method) if rule.method else ".*"]
            for h in names:
                cond = next((c for c in rule.headers if c[0] == h), None)
                parts.append(".*" if cond is None else re.escape(cond[2]) if cond[1] == "Exact"
                             else f"(?:{cond[2]})")
            selection.append(f"    {q('~^' + re.escape(SEP).join(parts) + '$')} r{i};")
            inner = f"{INTERNAL}/{n}/r{i}"
            body += [f"    location ^~ {inner}/ {{", f"        # {rule.source}", "        internal;",
                     f"        rewrite {q('^' + inner + '(/.*)$')} $1 break;",
                     *self.action(rule.action, "        "), "    }"]
            if not (rule.method or rule.headers):
                break                       # an unconditional rule catches the rest
        self.http += selection + ["    default none;", "}"]
        body += [f"    location ^~ {INTERNAL}/{n}/none/ {{ internal; return 404; }}"]
        return [f"    {head}", f"        rewrite ^ {INTERNAL}/{n}/{selector}$uri last;", "    }", *body]

    # ---- servers ---------------------------------------------------------------------------------------------
    def server(self, server: Server, plain: set[int], tls: set[int]) -> list[str]:
        default = server.hostname == "_"
        flag = " default_server" if default else ""
        ports_plain = sorted(plain if default else server.plain_ports)
        ports_tls = sorted(tls if default else server.tls_ports)
        out = ["server {"]
        out += [f"    listen {p}{flag} reuseport;" if default else f"    listen {p};" for p in ports_plain]
        out += [f"    listen {p} ssl{flag} reuseport;" if default else f"    listen {p} ssl;" for p in ports_tls]
        out.append(f"    server_name {q(server.hostname) if server.hostname != '_' else '_'};")
        out.append("    set $proxy_upstream_name \"-\";")
        # only servers with a certificate of their own get an SSL context (one costs nginx ~0.7 ms to load);
        # the others answer TLS with the default server's certificate (nginx keeps it when SNI picks them)
        if default:
            out += [f"    ssl_certificate {q(self.paths['default_cert'])};",
                    f"    ssl_certificate_key {q(self.paths['default_cert'])};"]
        elif server.certificate and server.certificate in self.table.certificates:
            path = cert_file(self.paths["certs"], server.certificate)
            out += [f"    ssl_certificate {q(path)};", f"    ssl_certificate_key {q(path)};"]
        locs = list(server.locations.values())
        # regex locations are tried in order: longest first, as ingress-nginx sorts them
        locs.sort(key=lambda loc: (loc.match not in ("regex", "iregex"), -len(loc.path), loc.path))
        for loc in locs:
            if loc.rules:
                out += self.location(loc)
        out.append("}")
        return out


def render(table: RouteTable, paths: dict[str, str], workers: int = 2) -> str:
    """The whole nginx.conf. `paths`: dir (prefix), certs, access_log, error_log, pid, default_cert."""
    w = _Writer(table, paths)
    plain = {p for s in table.servers.values() for p in s.plain_ports}
    tls = {p for s in table.servers.values() for p in s.tls_ports}
    servers: list[str] = []
    for name in sorted(table.servers, key=lambda h: (h != "_", h)):
        servers += w.server(table.servers[name], plain, tls)
    upstreams: list[str] = []
    for name, addrs in sorted(table.upstreams.items()):
        if addrs:
            upstreams += [f"upstream {name} {{", *[f"    server {a} max_fails=0;" for a in addrs],
                          f"    keepalive {UPSTREAM_KEEPALIVE};", "}"]
    d = paths["dir"]
    head = [
        "# rendered by kemu ingress (ingress/nginxconf.py): do not edit",
        "user root;",
        f"worker_processes {workers};",
        f"pid {q(paths['pid'])};",
        f"error_log {q(paths['error_log'])} notice;",
        "worker_shutdown_timeout 10s;",
        "events { worker_connections 4096; multi_accept on; }",
        "http {",
        f"log_format kemu {LOG_FORMAT};",
        f"access_log {q(paths['access_log'])} kemu;",
        *[f"{t}_temp_path {q(os.path.join(d, 'tmp', t))};" for t in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                      "scgi")],
        "default_type text/plain;",
        "server_tokens off;",
        "server_names_hash_bucket_size 256;",
        "server_names_hash_max_size 65536;",
        "map_hash_bucket_size 256;",
        "variables_hash_bucket_size 256;",
        "keepalive_timeout 75s;",
        "keepalive_requests 10000;",
        "proxy_http_version 1.1;",
        "proxy_connect_timeout 5s;",
        "proxy_next_upstream error timeout http_502;",
        "proxy_buffering off;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_session_cache shared:SSL:10m;",
        "map $http_upgrade $connection_upgrade { default upgrade; \"\" \"\"; }",
        *[f"proxy_set_header {n} {q(v)};" for n, v in STANDARD_HEADERS],
        "map $server_port $kemu_port_suffix { 80 \"\"; 443 \"\"; default \":$server_port\"; }",
    ]
    return "\n".join(head + upstreams + w.http + servers + ["}", ""])
