"""Starting the autoscaling and resource-policy loops of kube-controller-manager (the HPA, the ResourceQuota
status controller, NoExecute taint eviction, the disruption controller) and serving the controller-manager's
/metrics."""
from __future__ import annotations

import logging

from kemu.client import Client
from kemu.client.nodeclient import ClientTLS, direct
from kemu.client.resourcemetrics import PodMetricsSource, node_fetcher
from kemu.controllers import metrics
from kemu.controllers.common import SharedInformers
from kemu.controllers.disruption import DisruptionController
from kemu.controllers.hpa import HorizontalPodAutoscalerController
from kemu.controllers.resourcequota import ResourceQuotaController
from kemu.controllers.tainteviction import TaintEvictionController

log = logging.getLogger(__name__)


def start_autoscaling(client: Client, kubelet_tls: ClientTLS | None, sync_period: float = 15.0,
                      downscale_stabilization: float = 300.0) -> SharedInformers:
    """`kubelet_tls`: the client certificate the HPA's metrics client shows node agents (None: no metrics, every
    HPA reports FailedGetResourceMetric). The controller-manager runs inside the lab's network, so sockets are
    made where it runs."""
    try:
        metrics.serve()
    except OSError as exc:
        log.warning("metrics not served: %s", exc)
    informers = SharedInformers(client)

    def no_metrics(namespace: str, pods: list[dict]) -> dict:
        raise RuntimeError("the controller-manager has no kubelet client certificate (--kubelet-client-certificate)")
    source = PodMetricsSource(client, node_fetcher(kubelet_tls, direct)) if kubelet_tls else no_metrics
    controllers = [HorizontalPodAutoscalerController(client, informers, source, sync_period, downscale_stabilization),
                   ResourceQuotaController(client, informers), TaintEvictionController(client, informers),
                   DisruptionController(client, informers)]
    informers.start()
    for controller in controllers:
        controller.start()
    return informers
