#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package): the status page's
# test (TestStatusPageInBrowser) loads the page in a real browser.
# Idempotent and quiet; does nothing when chromium is already on PATH.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
command -v chromium-browser >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install.d/chromium: no apt-get here; install chromium by hand" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install.d/chromium: installing chromium"
if ! apt-cache show chromium >/dev/null 2>&1; then
	$sudo apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "install.d/chromium: chromium still missing after install" >&2; exit 1; }
