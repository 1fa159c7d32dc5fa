"""The kubelet-like node agent: a pod worker per pod, with the prober and the status manager apart."""
