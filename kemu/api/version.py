"""The Kubernetes release whose API and behaviour kemu matches (what /version, nodes and kubectl report)."""
from __future__ import annotations

KUBERNETES_VERSION = "v1.32.0"
MAJOR, MINOR = "1", "32"
KEMU_VERSION = "0.1.0"
