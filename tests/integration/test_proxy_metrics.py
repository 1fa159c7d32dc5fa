"""The proxy's /metrics (prometheus_client, kube-proxy's names) scraped inside the node netns (root only).

Topology: kemu/testing/proxybed.py; the Proxier runs in the node netns (kemu.testing.proxydriver)
and serves :10249 there, like `kemu proxy`.
"""
from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.root

if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
    pytest.skip("needs root, nft and ip", allow_module_level=True)

from kemu.testing.proxybed import PY, Testbed, endpoint_slice, service

SCRAPE = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


@pytest.fixture
def bed():
    tb = Testbed(prefix="kemu-t-pxm-", pods=1)
    try:
        tb.up()
        yield tb
    finally:
        tb.down()
    assert not any(n.startswith(tb.tag) for n in os.listdir("/run/netns"))


def _scrape(tb: Testbed, ns: str, url: str) -> dict[str, float]:
    """{series: value} of a Prometheus text scrape run from namespace ``ns``."""
    out = tb.run(ns, PY, "-c", SCRAPE, url, timeout=30).stdout
    series = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


def test_scrape_in_the_node_netns_shows_kube_proxy_metrics(bed: Testbed) -> None:
    drv = bed.start_driver()
    drv.call("serve_metrics", port=10249)
    drv.apply(service("web", "10.96.0.10"), endpoint_slice("web", bed.pod_ips))
    drv.sync()
    drv.apply(endpoint_slice("web", bed.pod_ips[:1]))
    assert drv.sync()["kind"] == "partial"
    m = _scrape(bed, bed.node, "http://127.0.0.1:10249/metrics")
    # upstream names and types: the durations are histograms
    assert m["kubeproxy_sync_proxy_rules_duration_seconds_count"] == 2
    assert m['kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"}'] == 2
    assert m["kubeproxy_sync_full_proxy_rules_duration_seconds_count"] == 1
    assert m["kubeproxy_sync_partial_proxy_rules_duration_seconds_count"] == 1
    assert m["kubeproxy_sync_proxy_rules_last_timestamp_seconds"] > 1.6e9
    assert m["kubeproxy_sync_proxy_rules_nftables_sync_failures_total"] == 0
    assert m["kubeproxy_sync_proxy_rules_service_changes_pending"] == 0
    listing = drv.call("list")
    assert m['kemu_proxy_nftables_objects{kind="elements"}'] > 0 and "10.96.0.10" in listing
    # the node's address answers too (the client netns scrapes across the lab link)
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count" in _scrape(bed, bed.client,
                                                                           "http://192.168.56.11:10249/metrics")
    drv.call("close")
