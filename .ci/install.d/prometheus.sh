#!/usr/bin/env bash
# Installs promtool (Debian's prometheus package ships it): the Prometheus
# adapter's tests check the scraped text with `promtool check metrics`.
# Idempotent and quiet; does nothing when promtool is already on PATH.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install.d/prometheus: no apt-get here; install promtool (Prometheus) by hand" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install.d/prometheus: installing promtool (package prometheus)"
if ! apt-cache show prometheus >/dev/null 2>&1; then
	$sudo apt-get update -qq
fi
# --no-install-recommends: promtool only, not the web console assets; the
# package's service is not started in a container without systemd.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null 2>&1 || { echo "install.d/prometheus: promtool still missing after install" >&2; exit 1; }
