"""Programs that run inside the cluster: agnhost and future add-ons."""
