"""Suite-wide: root-only tests are skipped (with the reason) when not root."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, nftables, cgroups)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
