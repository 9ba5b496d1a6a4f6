#!/usr/bin/env bash
# Fails when gen/ is not what `make generate` makes from the committed protos:
# files changed, deleted or added (untracked) under gen/. Run after
# `make generate` (the Makefile target check-generated does both).
set -euo pipefail
cd "$(dirname "$0")/../.."

changed=$(git status --porcelain --untracked-files=all -- gen/)
if [ -n "$changed" ]; then
	echo "error: generated code in gen/ is out of date with proto/:" >&2
	echo "$changed" >&2
	git --no-pager diff --stat -- gen/ >&2 || true
	echo "fix: run 'make generate' and commit the changes under gen/ together with the .proto changes." >&2
	exit 1
fi
echo "gen/ is up to date"
