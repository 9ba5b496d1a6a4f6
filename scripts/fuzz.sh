#!/usr/bin/env bash
# Runs every native Go fuzz target (func FuzzXxx) of the module for a bounded
# time each: scripts/fuzz.sh [DURATION, default 20s]. A failure leaves the
# failing input under the package's testdata/fuzz/ for `go test` to replay.
#
# Go before 1.27 can report a bare "context deadline exceeded" when
# -fuzztime expires while a worker is still running an input (a race in the
# fuzzing coordinator, golang/go#75804, fixed in Go 1.27): no failing input
# is written and nothing was found. Such a run is retried, at most twice; a
# run that writes a failing input, or fails any other way, fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-20s}
found=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+)\(.*/\1/' <<<"${line#*:}")
  pkg=./$(dirname "${file#./}")
  for attempt in 1 2 3; do
    again=""
    [ "$attempt" -gt 1 ] && again=", attempt $attempt"
    echo "--- fuzz $pkg $name ($fuzztime$again)"
    if go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" 2>&1 | tee "$log"; then
      break
    fi
    if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log" && [ "$attempt" -lt 3 ]; then
      echo "--- $name: the fuzzing engine's deadline race (golang/go#75804), no failing input written: running it again"
      continue
    fi
    exit 1
  done
  found=$((found + 1))
done < <(grep -rEn --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . | grep -v '^./gen/' | sort)
echo "--- $found fuzz targets, $fuzztime each"
