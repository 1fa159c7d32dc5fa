"""kemu-bridge: a CNI plugin (bridge + veth + host-local-compatible IPAM + nftables masquerade).

Keep this module empty: the plugin's start-up time is its latency.
"""
