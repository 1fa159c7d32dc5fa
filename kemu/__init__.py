"""kemu: a Kubernetes node emulator on real Linux networking."""
__version__ = "0.1.0"
