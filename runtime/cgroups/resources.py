"""Resource values for one cgroup and kubelet's unit conversions (pure, no I/O).

Numbers follow kubelet (pkg/kubelet/cm/helpers_linux.go) and runc's
shares -> cgroup v2 weight conversion.
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
MILLI_CPU_TO_CPU = 1000
QUOTA_PERIOD_US = 100000
MIN_QUOTA_PERIOD_US = 1000


@dataclass(frozen=True)
class Resources:
    """What the kernel is told for one cgroup. None means unset/unlimited."""

    cpu_request_millis: int | None = None
    cpu_limit_millis: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None
    pids_limit: int | None = None


def cpu_shares(millis: int | None) -> int:
    """kubelet MilliCPUToShares: 0/None -> MinShares (2), clamped to [2, 262144]."""
    if not millis:
        return MIN_SHARES
    shares = (millis * SHARES_PER_CPU) // MILLI_CPU_TO_CPU
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def cpu_weight(shares: int) -> int:
    """runc ConvertCPUSharesToCgroupV2Value: [2, 262144] shares -> [1, 10000] weight."""
    shares = max(MIN_SHARES, min(MAX_SHARES, shares))
    return 1 + ((shares - 2) * 9999) // 262142


def cpu_quota(millis: int | None, period: int = QUOTA_PERIOD_US) -> int | None:
    """kubelet MilliCPUToQuota: None when unlimited, else at least 1000 us."""
    if not millis:
        return None
    quota = (millis * period) // MILLI_CPU_TO_CPU
    return max(quota, MIN_QUOTA_PERIOD_US)
