#!/usr/bin/env bash
# Installs what routingtest's Patroni harness (routingtest/patroni.go) needs:
# Debian's patroni (with python3-etcd) and etcd-server. Idempotent and quiet:
# does nothing when patroni, patronictl and etcd are already on the PATH.
#
# The harness starts its own etcd on free loopback ports with its data in a
# temporary folder; the system etcd service the etcd-server package ships is
# not used. It is kept from starting during the install (policy-rc.d), so the
# install works with or without systemd and leaves no etcd running on 2379.
set -euo pipefail

have() {
	command -v patroni >/dev/null 2>&1 &&
		command -v patronictl >/dev/null 2>&1 &&
		{ command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]; }
}
have && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "ci: patroni.sh: no apt-get here; install patroni and etcd-server (etcd 3.4) yourself" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

echo "ci: installing patroni and etcd-server"
# Keep package scripts from starting services (etcd, patroni) while
# installing: invoke-rc.d honours policy-rc.d's 101, "action forbidden". An
# existing policy-rc.d is left alone.
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	ours=1
fi
cleanup() { if [ -n "$ours" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

install() {
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		patroni python3-etcd etcd-server >/dev/null
}
# apt-get update once, only when the packages are unknown or the install fails
# on stale lists.
if ! apt-cache show patroni etcd-server >/dev/null 2>&1 || ! install; then
	$sudo apt-get update -qq
	install
fi
# A system etcd started anyway (by systemd, say) would not collide with the
# harness, which uses free ports, but it costs memory: stop it when possible.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	$sudo systemctl disable --now etcd >/dev/null 2>&1 || true
	$sudo systemctl disable --now patroni >/dev/null 2>&1 || true
fi
have || { echo "ci: patroni.sh: patroni, patronictl or etcd still missing after the install" >&2; exit 1; }
