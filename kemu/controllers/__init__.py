"""Cluster-level control loops (kube-controller-manager and kube-scheduler roles), each driven by informers."""
