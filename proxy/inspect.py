"""Questions about the proxy's table that need its layout (docs/proxy.md), asked of generic table data.

``ProxyTableView`` reads a ``kemu.nft.FakeTable`` (the fake's chains, rules and map elements):
which verdict a ClusterIP/NodePort gets and which endpoints a packet may be DNATed to.
"""
from __future__ import annotations

import re

from kemu.nft import FakeNft, FakeTable
from kemu.nft.fake import CHAIN_REF

from .ruleset import (
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
)

_NUMGEN_MAP = re.compile(r"numgen random mod (\d+) offset (\d+) map @(\S+)")
_DNAT_TO = re.compile(r"dnat to ([0-9.]+):(\d+)")
_SHARED_MAP = re.compile(r"dnat ip addr \. port to (ip daddr \. )?\w+ dport \. numgen random mod (\d+) map @(\S+)")


class ProxyTableView:
    """The proxy's ``ip <table>`` inside a FakeNft, read through the proxy's layout."""

    def __init__(self, fake: FakeNft, table: str = "kemu-proxy", family: str = "ip") -> None:
        self.fake, self.name, self.family = fake, table, family

    def table(self) -> FakeTable:
        return self.fake.table(self.family, self.name)

    def has_table(self) -> bool:
        return self.fake.has_table(self.family, self.name)

    def counts(self) -> dict[str, int]:
        return self.fake.counts(self.family, self.name)

    def service_verdict(self, daddr: str, proto: str, dport: int) -> str | None:
        """Verdict the service-ips map (else no-endpoint-services) gives daddr . proto . dport."""
        t = self.table()
        k = f"{daddr} . {proto} . {dport}"
        return t.elements[SERVICE_IPS].get(k) or t.elements[NO_ENDPOINT_SERVICES].get(k)

    def nodeport_verdict(self, proto: str, port: int) -> str | None:
        """Verdict for a NodePort (else from no-endpoint-nodeports)."""
        t = self.table()
        k = f"{proto} . {port}"
        return t.elements[SERVICE_NODEPORTS].get(k) or t.elements[NO_ENDPOINT_NODEPORTS].get(k)

    def dnat_targets(self, verdict_or_chain: str | None, daddr: str | None = None,
                     dport: int | None = None) -> set[str]:
        """Every ip:port a packet to daddr:dport sent to this verdict/chain may be DNATed to (follows goto/jump)."""
        if not verdict_or_chain:
            return set()
        t = self.table()
        seen: set[str] = set()
        out: set[str] = set()
        todo = [verdict_or_chain.split()[-1]]
        while todo:
            name = todo.pop()
            if name in seen or name not in t.chains:
                continue
            seen.add(name)
            for r in t.chains[name].rules:
                m = _NUMGEN_MAP.search(r)
                if m:
                    n, off, emap = int(m.group(1)), int(m.group(2)), m.group(3)
                    for i in range(off, off + n):
                        v = t.elements[emap].get(str(i))
                        out.add(v.replace(" . ", ":") if v else f"<missing {emap}[{i}]>")
                m = _SHARED_MAP.search(r)
                if m:
                    n, emap = int(m.group(2)), m.group(3)
                    for i in range(n):
                        k = f"{daddr} . {dport} . {i}" if m.group(1) else f"{dport} . {i}"
                        v = t.elements[emap].get(k)
                        out.add(v.replace(" . ", ":") if v else f"<missing {emap}[{k}]>")
                m = _DNAT_TO.search(r)
                if m:
                    out.add(f"{m.group(1)}:{m.group(2)}")
                todo.extend(CHAIN_REF.findall(r))
        return out
