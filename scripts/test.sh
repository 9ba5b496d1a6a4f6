#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run runs.
#
#   scripts/test.sh            embedded legs (kfake, SQLite); the PostgreSQL and
#                              Apache Kafka legs run too when CI=true or
#                              LOOPGATE_TEST_ALL=1, and are skipped (and named)
#                              otherwise
#
# Everything the legs need (Debian's PostgreSQL, the Kafka jars from Maven
# Central, the buf toolchain from the Go module proxy) is installed by the
# project's own scripts on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${CI:-}" == "true" || "${LOOPGATE_TEST_ALL:-}" == "1" ]]; then
  export LOOPGATE_TEST_POSTGRES=1 LOOPGATE_TEST_KAFKA=1
fi

leg() { # leg NAME COMMAND... : run one leg and print its wall time
  local name=$1; shift
  local start=$SECONDS
  echo "=== leg: $name"
  "$@"
  echo "=== leg: $name passed in $((SECONDS - start))s"
}

echo "=== $(go version)"
leg "generated code is reproducible (buf generate)" make check-generated
leg "go vet" go vet ./...
if [[ "${LOOPGATE_TEST_KAFKA:-}" == "1" ]]; then
  leg "fetch Apache Kafka jars (Maven)" scripts/kafka/fetch.sh
fi
# One go test run over every package: embedded legs always; the PostgreSQL
# and Apache Kafka legs inside it when enabled above.
leg "go test ./..." go test -count=1 -timeout 45m ./...
