"""nftables as typed data, built in transactions (modelled on knftables).

A leaf toolkit: it imports nothing else of kemu, so any component may use it.

    from kemu.nft import Chain, Element, LibNftBackend, Map, Rule, Table, Transaction

    tx = Transaction("inet", "kemu-example")
    tx.add(Table())
    tx.add(Chain("input", type="filter", hook="input", priority=0, policy="accept"))
    tx.add(Map("ports", type="inet_service : verdict"))
    tx.add(Rule("input", "tcp dport vmap @ports"))
    tx.add(Element("ports", "22", "accept"))
    LibNftBackend().run(tx)        # one kernel batch: all or nothing; NftError if rejected

``FakeNft`` applies the same transactions in memory (tests, no root); ``NftCliBackend``
runs the ``nft`` program, e.g. inside another network namespace through ``nsenter``.
"""
from .backend import LibNftBackend, NftBackend, NftCliBackend
from .fake import FakeChain, FakeNft, FakeTable
from .objects import Chain, Element, Elements, Map, Rule, Set, Table, concat
from .transaction import FAMILIES, NftError, Op, Transaction

__all__ = [
           "FAMILIES",
           "Chain",
           "Element",
           "Elements",
           "FakeChain",
           "FakeNft",
           "FakeTable",
           "LibNftBackend",
           "Map",
           "NftBackend",
           "NftCliBackend",
           "NftError",
           "Op",
           "Rule",
           "Set",
           "Table",
           "Transaction",
           "concat",
]
