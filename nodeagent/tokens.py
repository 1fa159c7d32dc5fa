"""The node agent's token manager (kubelet's pkg/kubelet/token): bound service-account tokens for its pods'
projected `serviceAccountToken` sources, cached and renewed once 80% of their lifetime has passed.

kubelet obtains them with a TokenRequest to the API server; kemu's agent has no API credentials (it uses the store
directly), so it runs the same TokenRequest in-process (kemu.client.tokens.request_token) with the lab's
service-account signing key, which the lab hands each node (NodeConfig.service_account_key_file). The tokens are
the ones the API server would issue: bound to the pod (and its node), so they stop authenticating when it is gone.
"""
from __future__ import annotations

import threading
import time

from kemu.client.tokens import KUBELET_EXPIRATION, Signer, TokenRequestError, request_token

SA_WAIT = 2.0          # a new namespace's `default` account may be a few milliseconds behind the pod


class TokenError(ValueError):
    """No token can be issued for the pod (its ServiceAccount does not exist): the volume waits (FailedMount)."""


class TokenManager:
    def __init__(self, client, key_file: str, ca_file: str = "") -> None:
        self.client = client
        self.signer = Signer.load(key_file)
        self.ca = open(ca_file, "rb").read() if ca_file else None      # the API server's CA, projected as ca.crt
        self._cache: dict[tuple, tuple[bytes, float, float]] = {}      # key -> (token, issued, expires)
        self._lock = threading.Lock()

    def token(self, pod: dict, audience: str | None = None, expiration: int | None = None) -> bytes:
        """A token for the pod's ServiceAccount bound to the pod, from the cache while it is fresh."""
        meta = pod["metadata"]
        namespace, sa = meta["namespace"], pod["spec"].get("serviceAccountName") or "default"
        expiration = max(expiration or KUBELET_EXPIRATION, 600)
        key = (namespace, sa, meta["uid"], audience, expiration)
        now = time.time()
        with self._lock:
            cached = self._cache.get(key)
            if cached and now < cached[1] + 0.8 * (cached[2] - cached[1]):
                return cached[0]
        spec = {"expirationSeconds": expiration, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                                   "name": meta["name"], "uid": meta["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        deadline = time.monotonic() + SA_WAIT
        while True:
            try:
                status = request_token(self.client, self.signer, namespace, sa, spec)
                break
            except TokenRequestError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise TokenError(f'failed to fetch token: {exc}') from None
                time.sleep(0.1)
        token = status["token"].encode()
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v[2] > now}
            self._cache[key] = (token, now, now + expiration)
        return token
