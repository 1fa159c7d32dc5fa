"""The workload controllers (kube-controller-manager's apps/batch loops) over one set of shared informers."""
from __future__ import annotations

from kemu.client import Client
from kemu.controllers.common import SharedInformers
from kemu.controllers.cronjob import CronJobController
from kemu.controllers.daemonset import DaemonSetController
from kemu.controllers.deployment import DeploymentController
from kemu.controllers.garbagecollector import GarbageCollector
from kemu.controllers.job import JobController
from kemu.controllers.replicaset import ReplicaSetController
from kemu.controllers.replicationcontroller import ReplicationControllerController
from kemu.controllers.statefulset import StatefulSetController
from kemu.controllers.volumebinding import PersistentVolumeController

WORKLOAD_CONTROLLERS = (ReplicaSetController, ReplicationControllerController, DeploymentController, DaemonSetController, JobController,
                        CronJobController, StatefulSetController, PersistentVolumeController, GarbageCollector)


def start_workload_controllers(client: Client) -> SharedInformers:
    """Deployment, ReplicaSet, DaemonSet, Job, CronJob and the garbage collector; returns their informers."""
    informers = SharedInformers(client)
    controllers = [cls(client, informers) for cls in WORKLOAD_CONTROLLERS]
    informers.start()
    for controller in controllers:
        controller.start()
    return informers
