#!/usr/bin/env bash
# Installs what routingtest's harness needs beyond PostgreSQL: PgBouncer (the
# PgBouncer helpers and tests) and iptables (Blackhole). Idempotent and quiet:
# it installs only what is missing, and runs apt-get update at most once.
set -euo pipefail

missing=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "harness.sh: no apt-get here; install ${missing[*]} by hand" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "harness.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Install from the current lists when they have the packages; update them
# once when they do not (a fresh machine has none).
if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a PgBouncer service on port 6432; the harness
# starts its own, so the system one is not wanted (and must not hold the port).
if [[ " ${missing[*]} " == *" pgbouncer "* ]]; then
	if command -v systemctl >/dev/null 2>&1; then
		$sudo systemctl disable --now pgbouncer >/dev/null 2>&1 || true
	fi
	if command -v service >/dev/null 2>&1; then
		$sudo service pgbouncer stop >/dev/null 2>&1 || true
	fi
fi
