#!/usr/bin/env bash
# Install the Prometheus server from Debian packages, for the Prometheus test
# leg (app/prometheus_test.go, LOOPGATE_TEST_PROMETHEUS=1).
#
#   scripts/prometheus/install.sh
#
# Idempotent: when a `prometheus` binary is on PATH (or /usr/bin/prometheus
# exists) it only prints its path. Otherwise it runs `apt-get update` (once,
# only if the package is not known to apt yet) and
# `apt-get install -y --no-install-recommends prometheus`, non-interactively
# and with no stdin. The package's system service is NOT started: while
# installing, a policy-rc.d that denies every service start is put in place
# (and removed afterwards, unless one was there already), and no running
# service is left behind. The test runs the binary itself, on 127.0.0.1, with
# its own config and storage directory. Needs root and a reachable apt mirror.
#
# On success the last line of stdout is the binary's absolute path.
set -euo pipefail

die() { echo "prometheus/install.sh: $*" >&2; exit 1; }

find_bin() {
	if command -v prometheus >/dev/null 2>&1; then
		command -v prometheus
	elif [[ -x /usr/bin/prometheus ]]; then
		echo /usr/bin/prometheus
	fi
}

BIN=$(find_bin)
if [[ -z "$BIN" ]]; then
	[[ $(id -u) -eq 0 ]] || die "Prometheus is not installed and installing it needs root: run 'apt-get install -y --no-install-recommends prometheus' as root"
	command -v apt-get >/dev/null || die "Prometheus is not installed and apt-get is missing: install the prometheus binary by hand"
	export DEBIAN_FRONTEND=noninteractive
	# Never start the packaged service (invoke-rc.d honours policy-rc.d).
	policy=/usr/sbin/policy-rc.d
	ours=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		ours=1
	fi
	cleanup() { if [[ $ours == 1 ]]; then rm -f "$policy"; fi; }
	trap cleanup EXIT
	if ! apt-cache show prometheus >/dev/null 2>&1 </dev/null; then
		echo "prometheus/install.sh: apt-get update..." >&2
		apt-get update -qq </dev/null >&2 || die "apt-get update failed: is a Debian mirror reachable?"
	fi
	echo "prometheus/install.sh: installing prometheus from Debian packages..." >&2
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		prometheus </dev/null >&2 || die "apt-get install prometheus failed (see output above)"
	BIN=$(find_bin)
	[[ -n "$BIN" ]] || die "the prometheus package is installed but no prometheus binary was found"
fi
"$BIN" --version 2>&1 | head -n 1 >&2 || die "$BIN does not run"
echo "$BIN"
