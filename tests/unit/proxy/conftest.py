"""Fixtures for the proxy unit tests."""
from __future__ import annotations

import pytest
from pxhelpers import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()
