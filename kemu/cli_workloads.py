"""`kemu` subcommands for workload controllers (rollout, scale, set command)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, lab: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to kemu's parser (`sub`) and to `kemu lab` (`lab`)."""
