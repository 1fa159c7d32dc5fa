"""Cluster DNS: a per-node server for the cluster domain (records in `zone.py`, the daemon in `server.py`)."""
