#!/usr/bin/env bash
# Runs every native Go fuzz target (func FuzzXxx) of the module for a bounded
# time each: scripts/fuzz.sh [DURATION, default 20s]. A failure leaves the
# failing input under the package's testdata/fuzz/ for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-20s}
found=0
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+)\(.*/\1/' <<<"${line#*:}")
  pkg=./$(dirname "${file#./}")
  echo "--- fuzz $pkg $name ($fuzztime)"
  go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime"
  found=$((found + 1))
done < <(grep -rEn --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . | grep -v '^./gen/' | sort)
echo "--- $found fuzz targets, $fuzztime each"
