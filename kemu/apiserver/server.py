"""The API server: routes, the authentication/error middleware, TLS, listeners, and the `default/kubernetes`
Endpoints that point at it. `python -m kemu.apiserver --help` runs it (a lab starts it as a daemon)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys

from aiohttp import web

from kemu.api.meta import ManifestError
from kemu.apiserver import openapi, resources
from kemu.apiserver.auth import ANONYMOUS, AUTH, PUBLIC_PATHS, USER, Auth, unauthorized
from kemu.apiserver.bodies import MAX_BODY, respond, too_large
from kemu.apiserver.crd import CRDController
from kemu.apiserver.egress import EGRESS, Egress
from kemu.apiserver.errors import APIError, method_not_allowed
from kemu.apiserver.handlers import ResourceAPI
from kemu.apiserver.listen import listen, listen_in_netns
from kemu.apiserver.metrics import METRICS_KEY, APIServerMetrics, prometheus
from kemu.apiserver.proxy import ROUTE as PROXY_ROUTE
from kemu.apiserver.proxy import Proxy
from kemu.apiserver.rbac import Attributes
from kemu.apiserver.reviews import SIGNER
from kemu.client.tokens import ISSUER, Signer, Verifier
from kemu.client import Client
from kemu.client.nodeclient import ClientTLS
from kemu.store import Store, open_store

log = logging.getLogger("kemu.apiserver")
SECURE_PORT = 6443
NOT_FOUND = "the server could not find the requested resource"


@web.middleware
async def middleware(request: web.Request, handler) -> web.StreamResponse:
    """Authenticate, then turn every failure into a metav1.Status."""
    try:
        auth = request.app[AUTH]
        user = auth.authenticate(request)
        if user is None and request.path not in PUBLIC_PATHS:
            raise unauthorized()
        request[USER] = auth.impersonate(request, user) if user else ANONYMOUS
        if "Content-Type" not in request.headers and request.body_exists:   # upstream reads it as JSON (the
            request = request.clone(headers={**request.headers, "Content-Type": "application/json"})  # Python client)
        if "tail" not in request.match_info:      # resource requests are authorized by ResourceAPI.handle
            auth.check(Attributes(request[USER], request.method.lower(), False, path=request.path))
        return await handler(request)
    except APIError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge:
        return too_large().response()
    except web.HTTPNotFound:
        return APIError(404, NOT_FOUND, "NotFound").response()
    except web.HTTPMethodNotAllowed:
        return method_not_allowed().response()
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:        # a bug: answer 500 and log it, never drop the connection silently
        log.exception("%s %s", request.method, request.path)
        return APIError(500, f"Internal error occurred: {exc}", "InternalError").response()


def _raw(data: bytes) -> web.Response:
    return web.Response(body=data, content_type="application/json")


def make_app(store: Store, signer: Signer | None = None, verifier: Verifier | None = None,
             egress: Egress | None = None) -> web.Application:
    """The aiohttp application serving the Kubernetes API over `store`; `signer` issues service-account tokens
    (TokenRequest), `verifier` authenticates them (default: the signer's own key); `egress` reaches node agents
    and pods (streams, proxy)."""
    request_metrics = APIServerMetrics()
    app = web.Application(middlewares=[request_metrics.middleware, middleware], client_max_size=MAX_BODY + 1)
    app[METRICS_KEY] = request_metrics
    api = ResourceAPI(store)
    issuer = signer.issuer if signer else verifier.issuer if verifier else ISSUER
    app[AUTH] = Auth(api.client, verifier or (signer.verifier() if signer else None), [issuer])
    if signer is not None:
        app[SIGNER] = signer
    crds = CRDController(store)

    async def serve_crds(_: web.Application) -> None:
        crds.loop = asyncio.get_running_loop()
        await asyncio.to_thread(crds.start)

    async def stop_crds(_: web.Application) -> None:
        await asyncio.to_thread(crds.stop)      # off the loop: an event being served may still need it
    app.on_startup.append(serve_crds)
    app.on_cleanup.append(stop_crds)
    app[EGRESS] = egress or Egress(None, None)

    async def close_egress(_: web.Application) -> None:
        await app[EGRESS].close()
    app.on_cleanup.append(close_egress)

    async def version(_: web.Request) -> web.Response:
        return respond(resources.VERSION)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api_versions(_: web.Request) -> web.Response:
        return _raw(resources.api_versions())

    async def api_groups(_: web.Request) -> web.Response:
        return _raw(resources.api_groups())

    async def resource_list(request: web.Request) -> web.Response:
        data = resources.resource_list(request.match_info.get("group", ""), request.match_info.get("version", "v1"))
        if data is None:
            raise APIError(404, NOT_FOUND, "NotFound")
        return _raw(data)

    async def openapi_index(_: web.Request) -> web.Response:
        return _raw(openapi.index())

    async def openapi_document(request: web.Request) -> web.Response:
        data = openapi.document(request.match_info["gv"])
        if data is None:
            raise APIError(404, NOT_FOUND, "NotFound")
        return web.Response(body=data, content_type="application/json",
                            headers={"Cache-Control": "public, immutable" if "hash" in request.query else
                                     "no-cache, private"})

    r = app.router
    r.add_get("/version", version)
    r.add_get("/metrics", prometheus)
    for path in ("/healthz", "/livez", "/readyz"):
        r.add_get(path, health)
    r.add_get("/api", api_versions)
    r.add_get("/api/v1", resource_list)
    r.add_get("/apis", api_groups)
    r.add_get("/apis/{group}/{version}", resource_list)
    r.add_get("/openapi/v3", openapi_index)
    r.add_get("/openapi/v3/{gv:.+}", openapi_document)
    r.add_route("*", PROXY_ROUTE, Proxy(api.client).handle)   # its {tail}: authorized by the handler
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        r.add_route(method, "/api/v1/{tail:.+}", api.handle)
        r.add_route(method, "/apis/{group}/{version}/{tail:.+}", api.handle)
    return app


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Serving TLS: our certificate, client certificates from `client_ca` verified when presented (requests
    without one are anonymous: 401)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def reconcile_endpoints(client: Client, address: str, port: int) -> None:
    """`default/kubernetes` Endpoints → this server (the kube-apiserver's endpoint reconciler)."""
    ep = {"apiVersion": "v1", "kind": "Endpoints",
          "metadata": {"name": "kubernetes", "namespace": "default"},
          "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port,
                                                                 "protocol": "TCP"}]}]}
    client.apply([ep], source="apiserver")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(args: argparse.Namespace) -> None:
    store = open_store(args.store)
    signer = Signer.load(args.service_account_signing_key_file, args.service_account_issuer) \
        if args.service_account_signing_key_file else None
    verifier = Verifier.load(args.service_account_key_file, args.service_account_issuer) \
        if args.service_account_key_file else None
    kubelet_tls = ClientTLS(args.kubelet_certificate_authority, args.kubelet_client_certificate,
                            args.kubelet_client_key) if args.kubelet_client_certificate else None
    egress_netns = args.egress_netns or next((s.partition("=")[0] for s in args.listen_netns), None)
    app = make_app(store, signer, verifier, Egress(kubelet_tls, egress_netns))
    runner = web.AppRunner(app, access_log=log if args.access_log else None, handle_signals=False,
                           shutdown_timeout=1.0)
    await runner.setup()
    ctx = None if args.insecure else tls_context(args.tls_cert, args.tls_key, args.client_ca)
    bound = []
    for spec in args.listen:
        sock = listen(*_host_port(spec))
        bound.append(f"{sock.getsockname()[0]}:{sock.getsockname()[1]}")
        await web.SockSite(runner, sock, ssl_context=ctx).start()
    for spec in args.listen_netns:
        path, _, addr = spec.partition("=")
        sock = listen_in_netns(path, *_host_port(addr))
        bound.append(f"{path}={addr}")
        await web.SockSite(runner, sock, ssl_context=ctx).start()
    if args.advertise_address:
        reconcile_endpoints(Client(store), args.advertise_address, args.advertise_port)
    if args.ready_file:
        ports = [int(b.rpartition(":")[2]) for b in bound]
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "listen": bound, "ports": ports}, f)
        os.replace(tmp, args.ready_file)
    log.info("serving on %s (%s)", ", ".join(bound), "plain HTTP" if args.insecure else "TLS")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kemu.apiserver", description="kemu's Kubernetes API server")
    p.add_argument("--store", required=True, help="store URL (sqlite:///PATH, etcd://HOST:PORT, ...)")
    p.add_argument("--listen", action="append", default=[], metavar="HOST:PORT",
                   help="listen here (port 0: pick a free one)")
    p.add_argument("--listen-netns", action="append", default=[], metavar="NETNS_PATH=HOST:PORT",
                   help="listen on HOST:PORT inside the network namespace at NETNS_PATH")
    p.add_argument("--tls-cert", help="serving certificate (PEM)")
    p.add_argument("--tls-key", help="serving key (PEM)")
    p.add_argument("--client-ca", help="CA whose client certificates authenticate users")
    p.add_argument("--insecure", action="store_true", help="plain HTTP without authentication (tests, benchmarks)")
    p.add_argument("--service-account-signing-key-file", metavar="F",
                   help="EC private key (PEM) that signs service-account tokens (TokenRequest)")
    p.add_argument("--service-account-key-file", metavar="F",
                   help="public (or private) key that verifies service-account tokens (default: the signing key)")
    p.add_argument("--service-account-issuer", default=ISSUER, help="the tokens' iss (and accepted audience)")
    p.add_argument("--kubelet-client-certificate", metavar="F", help="client certificate shown to node agents")
    p.add_argument("--kubelet-client-key", metavar="F")
    p.add_argument("--kubelet-certificate-authority", metavar="F", help="CA of node agents' serving certificates")
    p.add_argument("--egress-netns", metavar="NETNS_PATH",
                   help="make connections to node agents and pods inside this network namespace (default: the "
                        "first --listen-netns one)")
    p.add_argument("--advertise-address", help="IP written into the default/kubernetes Endpoints")
    p.add_argument("--advertise-port", type=int, default=SECURE_PORT)
    p.add_argument("--ready-file", help="write {pid, listen, ports} here once serving")
    p.add_argument("--access-log", action="store_true", help="log every request")
    args = p.parse_args(argv)
    if not args.insecure and not (args.tls_cert and args.tls_key and args.client_ca):
        p.error("TLS needs --tls-cert, --tls-key and --client-ca (or --insecure for plain HTTP)")
    if not args.listen and not args.listen_netns:
        args.listen = [f"127.0.0.1:{SECURE_PORT}"]
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except (OSError, ManifestError) as exc:
        print(f"kemu apiserver: {exc}", file=sys.stderr)
        return 1
    return 0
