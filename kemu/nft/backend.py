"""Where transactions go: libnftables in this process, the ``nft`` program (e.g. in another netns), or a fake."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Protocol

from .transaction import NftError, Transaction


class NftBackend(Protocol):
    """What users of the toolkit need from nftables."""

    def run(self, tx: Transaction) -> None: ...
    def list_table(self, family: str, table: str) -> str: ...
    def chain_names(self, family: str, table: str) -> set[str] | None: ...


class LibNftBackend:
    """Real nftables through the libnftables binding (python3-nftables), in this process's netns."""

    def __init__(self) -> None:
        import nftables  # Debian python3-nftables; imported here so the toolkit loads without it
        self.nft = nftables.Nftables()
        self.last_script = ""

    def run(self, tx: Transaction) -> None:
        """Apply ``tx`` as one kernel batch; NftError if rejected (then nothing changed)."""
        script = tx.render()
        self.last_script = script
        rc, _out, err = self.nft.cmd(script)
        if rc != 0:
            raise NftError(err.strip()[:4000])

    def list_table(self, family: str, table: str) -> str:
        rc, out, err = self.nft.cmd(f"list table {family} {table}")
        if rc != 0:
            raise NftError(err.strip())
        return out

    def chain_names(self, family: str, table: str) -> set[str] | None:
        """Names of the table's chains (None if the table is missing); lists no rules or elements."""
        self.nft.set_json_output(True)
        try:
            rc, out, _err = self.nft.cmd(f"list chains {family}")
        finally:
            self.nft.set_json_output(False)
        if rc != 0:
            return None
        return _chains_of(out, table)


class NftCliBackend:
    """The ``nft`` program; ``argv`` may wrap it, e.g. ``["nsenter", "--net=/run/netns/x", "--", "nft"]``."""

    def __init__(self, argv: Sequence[str] = ("nft",), timeout: float = 30.0) -> None:
        self.argv = list(argv)
        self.timeout = timeout

    def _nft(self, args: list[str], script: str | None = None) -> str:
        p = subprocess.run([*self.argv, *args], input=script, capture_output=True, text=True,
                           timeout=self.timeout, check=False)
        if p.returncode != 0:
            raise NftError(p.stderr.strip()[:4000])
        return p.stdout

    def run(self, tx: Transaction) -> None:
        self._nft(["-f", "-"], tx.render())

    def list_table(self, family: str, table: str) -> str:
        return self._nft(["list", "table", family, table])

    def chain_names(self, family: str, table: str) -> set[str] | None:
        try:
            out = self._nft(["-j", "list", "chains", family])
        except NftError:
            return None
        return _chains_of(out, table)


def _chains_of(json_listing: str, table: str) -> set[str] | None:
    """Chain names of ``table`` in a ``nft -j list chains`` answer (None if there are none)."""
    items = json.loads(json_listing).get("nftables", []) if json_listing.strip() else []
    names = {i["chain"]["name"] for i in items if "chain" in i and i["chain"].get("table") == table}
    return names or None
