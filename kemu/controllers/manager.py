"""`kemu controller-manager`: runs the scheduler and the controllers of one cluster against its store."""
from __future__ import annotations

from kemu.client.daemon import start_daemon
from kemu.controllers.clusterroleaggregation import ClusterRoleAggregationController
from kemu.controllers.endpoints import EndpointsController
from kemu.controllers.autoscaling import start_autoscaling
from kemu.controllers.loadbalancer import LoadBalancerController
from kemu.controllers.nodeipam import NodeIpamController
from kemu.controllers.nodelifecycle import NodeLifecycleController
from kemu.controllers.scheduler import Scheduler
from kemu.controllers.serviceaccounts import ServiceAccountsController
from kemu.controllers.workloads import start_workload_controllers


def main(store_url: str, node_monitor_grace_period: float = 40.0, kubelet_tls=None, hpa_sync_period: float = 15.0,
         hpa_downscale_stabilization: float = 300.0) -> None:
    client, stop = start_daemon(store_url)
    start_autoscaling(client, kubelet_tls, hpa_sync_period, hpa_downscale_stabilization)
    Scheduler(client).start()
    EndpointsController(client).start()
    LoadBalancerController(client).start()
    NodeLifecycleController(client, node_monitor_grace_period).start()
    NodeIpamController(client).start()
    ServiceAccountsController(client).start()
    ClusterRoleAggregationController(client).start()
    start_workload_controllers(client)
    stop.wait()
