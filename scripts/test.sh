#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run runs.
#
#   scripts/test.sh     generated-code check, go vet, and every Go test on the
#                       embedded backends (kfake, SQLite); plus the PostgreSQL,
#                       Prometheus, browser (Chromium) and Apache Kafka legs
#                       when CI=true or LOOPGATE_TEST_ALL=1
#
# Everything the legs need is installed by the project's own scripts on first
# use: buf and the protoc plugins from the Go module proxy (tools/), PostgreSQL
# from Debian packages (scripts/postgres/start.sh), Prometheus from Debian
# packages (scripts/prometheus/install.sh), Chromium from Debian packages and
# axe-core from the npm registry (scripts/browser/install.sh), the Kafka jars from Maven
# Central (scripts/kafka/fetch.sh). A leg that is enabled but cannot start
# fails the run, naming what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

all=0
if [[ "${CI:-}" == "true" || "${LOOPGATE_TEST_ALL:-}" == "1" ]]; then
  all=1
fi

declare -a summary=()
leg() { # leg NAME COMMAND... : run one leg, print and remember its wall time
  local name=$1; shift
  local start=$SECONDS
  echo "=== leg: $name"
  "$@"
  local took=$((SECONDS - start))
  echo "=== leg: $name passed in ${took}s"
  summary+=("$(printf '%-32s %5ss' "$name" "$took")")
}

# Each leg sets the LOOPGATE_TEST_* switches itself; CI is unset for go test
# so that only the switches decide (the harnesses also turn legs on for CI).
gotest() { env -u CI "$@"; }

echo "=== $(go version)"
leg "generated code (buf)" make check-generated
leg "proto lint and breaking changes" make lint-proto breaking-proto
leg "go vet" go vet ./...
leg "embedded (kfake, SQLite)" gotest LOOPGATE_TEST_POSTGRES=0 LOOPGATE_TEST_KAFKA=0 \
  go test -count=1 -timeout 20m ./...
# The packages with concurrency, again under the race detector.
leg "race detector" gotest LOOPGATE_TEST_POSTGRES=0 LOOPGATE_TEST_KAFKA=0 \
  go test -race -count=1 -timeout 20m ./reconciler/... ./admission/... ./store/... ./server/... ./identity/... ./telemetry/...

if [[ $all == 1 ]]; then
  # Each fuzz target for a bounded time (their seed corpora run in every
  # `go test` above). FUZZTIME overrides the time per target.
  leg "fuzzing" scripts/fuzz.sh "${FUZZTIME:-20s}"
  leg "PostgreSQL" gotest LOOPGATE_TEST_POSTGRES=1 LOOPGATE_TEST_KAFKA=0 \
    go test -count=1 -v -timeout 20m ./store/postgres/ ./internal/testpg/ ./e2e/
  # A real Prometheus server (Debian package) scrapes loopgate; PromQL
  # reads the series back (app/prometheus_test.go).
  prometheus_leg() {
    scripts/prometheus/install.sh >/dev/null
    gotest LOOPGATE_TEST_PROMETHEUS=1 LOOPGATE_TEST_POSTGRES=0 LOOPGATE_TEST_KAFKA=0 \
      go test -count=1 -v -timeout 10m -run 'TestPrometheus' ./app/
  }
  leg "Prometheus" prometheus_leg
  # The portal in a real browser: Debian's Chromium and axe-core
  # (scripts/browser/install.sh), driven by e2e/portal_test.go.
  browser_leg() {
    scripts/browser/install.sh >/dev/null
    gotest LOOPGATE_TEST_BROWSER=1 go test -count=1 -v -timeout 15m -run 'TestPortal' ./e2e/
  }
  leg "browser (Chromium)" browser_leg
  leg "Apache Kafka jars (Maven)" scripts/kafka/fetch.sh
  leg "Apache Kafka" gotest LOOPGATE_TEST_KAFKA=1 LOOPGATE_TEST_POSTGRES=1 \
    go test -count=1 -v -timeout 30m ./internal/testkafka/ ./provisioning/... ./e2e/
else
  echo "=== skipped: the PostgreSQL, Prometheus, browser (Chromium) and Apache Kafka legs (set LOOPGATE_TEST_ALL=1 to run them here)"
fi

echo "=== summary"
for line in "${summary[@]}"; do echo "    $line"; done
echo "=== all legs passed"
