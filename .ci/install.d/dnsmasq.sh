#!/usr/bin/env bash
# Installs what the DNS discovery tests need (discovery/dns's, and the root
# package's TestDNSDiscovery through routingtest.StartDnsmasq): dnsmasq, a DNS server the tests
# start on a free loopback port (Debian's dnsmasq-base: the binary alone, no
# service). Idempotent and quiet: does nothing when dnsmasq is there, and
# runs apt-get update at most once.
set -euo pipefail

have() { command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; }
if have; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "dnsmasq.sh: no apt-get here; install dnsmasq by hand" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "dnsmasq.sh: installing dnsmasq-base"
export DEBIAN_FRONTEND=noninteractive
# Install from the current lists when they have the package; update them
# once when they do not (a fresh machine has none).
if ! $sudo apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null 2>&1; then
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null
fi
if ! have; then
	echo "dnsmasq.sh: dnsmasq still missing after the install" >&2
	exit 1
fi
