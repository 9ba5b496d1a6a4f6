#!/usr/bin/env bash
# Install what the portal's browser tests (e2e/portal_test.go) need:
# Debian's Chromium (with a font, so that screenshots show text) and the
# axe-core accessibility engine from the npm registry (npm package
# axe-core, pinned below), cached outside the repository.
#
#   scripts/browser/install.sh
#
# Idempotent and non-interactive (no stdin). When a chromium binary is
# found, apt is not touched unless the font is missing; `apt-get update` runs
# at most once, and only if the package is not known to apt yet. axe-core is
# fetched with `npm pack` into a temporary directory and only
# package/axe.min.js is kept, at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/loopgate/axe-core-VERSION/axe.min.js
# (LOOPGATE_AXE_JS overrides the path the tests read). Needs root for
# apt-get, and npm for axe-core.
#
# Prints two lines on stdout: the chromium binary's absolute path, then the
# axe.min.js path (everything else goes to stderr).
set -euo pipefail

AXE_VERSION=4.14.1

die() { echo "browser/install.sh: $*" >&2; exit 1; }

find_chromium() {
	local c
	for c in chromium chromium-browser; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return
		fi
	done
	if [[ -x /usr/bin/chromium ]]; then
		echo /usr/bin/chromium
	fi
}

have_font() { [[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; }

apt_updated=0
apt_install() { # apt_install PKG...: install, updating the lists once if a package is unknown
	[[ $(id -u) -eq 0 ]] || die "installing $* needs root: run 'apt-get install -y --no-install-recommends $*' as root"
	command -v apt-get >/dev/null || die "apt-get is missing: install $* by hand"
	export DEBIAN_FRONTEND=noninteractive
	local p
	for p in "$@"; do
		if [[ $apt_updated == 0 ]] && ! apt-cache show "$p" >/dev/null 2>&1 </dev/null; then
			echo "browser/install.sh: apt-get update..." >&2
			apt-get update -qq </dev/null >&2 || die "apt-get update failed: is a Debian mirror reachable?"
			apt_updated=1
		fi
	done
	echo "browser/install.sh: installing $* from Debian packages..." >&2
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"$@" </dev/null >&2 || die "apt-get install $* failed (see output above)"
}

# 1. Chromium and a font.
BIN=$(find_chromium)
pkgs=()
[[ -n "$BIN" ]] || pkgs+=(chromium)
have_font || pkgs+=(fonts-dejavu-core)
if ((${#pkgs[@]} > 0)); then
	apt_install "${pkgs[@]}"
fi
BIN=$(find_chromium)
[[ -n "$BIN" ]] || die "the chromium package is installed but no chromium binary was found"
"$BIN" --headless --no-sandbox --version </dev/null 2>/dev/null | head -n 1 >&2 || "$BIN" --version </dev/null >&2 || die "$BIN does not run"

# 2. axe-core, cached outside the repository.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/loopgate/axe-core-$AXE_VERSION
AXE=$cache/axe.min.js
if [[ ! -s $AXE ]]; then
	command -v npm >/dev/null || die "npm is missing: it fetches axe-core@$AXE_VERSION (install Node.js and npm, e.g. 'apt-get install -y nodejs npm')"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	echo "browser/install.sh: fetching axe-core@$AXE_VERSION with npm pack..." >&2
	(cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" </dev/null >&2) || die "npm pack axe-core@$AXE_VERSION failed"
	tgz=$(ls "$tmp"/axe-core-*.tgz 2>/dev/null | head -n 1)
	[[ -n "$tgz" ]] || die "npm pack produced no tarball"
	tar -xzf "$tgz" -C "$tmp" package/axe.min.js || die "no package/axe.min.js in $tgz"
	[[ -s $tmp/package/axe.min.js ]] || die "package/axe.min.js in $tgz is empty"
	mkdir -p "$cache"
	mv "$tmp/package/axe.min.js" "$AXE.part"
	mv "$AXE.part" "$AXE"
fi
[[ -s $AXE ]] || die "$AXE is empty"

echo "$BIN"
echo "$AXE"
