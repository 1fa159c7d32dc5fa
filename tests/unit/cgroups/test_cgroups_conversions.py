"""Unit conversions against kubelet's / runc's numbers."""
import pytest

from nodeagent import qos
from runtime.cgroups import cpu_quota, cpu_shares, cpu_weight


@pytest.mark.parametrize("millis,shares", [
    (None, 2), (0, 2), (1, 2), (2, 2), (3, 3), (100, 102), (200, 204), (250, 256),
    (500, 512), (1000, 1024), (2000, 2048), (256000, 262144), (300000, 262144),
])
def test_cpu_shares(millis, shares):
    assert cpu_shares(millis) == shares


@pytest.mark.parametrize("shares,weight", [
    (2, 1), (102, 4), (204, 8), (1024, 39), (2048, 79), (262144, 10000), (1, 1), (10**7, 10000),
])
def test_cpu_weight(shares, weight):
    assert cpu_weight(shares) == weight


@pytest.mark.parametrize("millis,quota", [
    (None, None), (0, None), (5, 1000), (10, 1000), (11, 1100), (200, 20000),
    (1000, 100000), (1500, 150000), (4000, 400000),
])
def test_cpu_quota(millis, quota):
    assert cpu_quota(millis) == quota


def test_cpu_quota_other_period():
    assert cpu_quota(250, period=50000) == 12500


def test_qos_module_reexports_the_same_functions():
    assert qos.cpu_shares is cpu_shares and qos.cpu_weight is cpu_weight and qos.cpu_quota is cpu_quota
