#!/usr/bin/env bash
# fetch.sh — collect the Apache Kafka broker, its CLI tools and a logging backend from Maven
# Central into ${LOOPGATE_KAFKA_HOME:-~/.cache/loopgate/kafka-<version>}/lib.
#
# Idempotent: a finished fetch leaves a marker and later runs return at once. Maven's ~/.m2
# cache makes a fetch into a new LOOPGATE_KAFKA_HOME offline too. Concurrent runs (parallel
# test packages) serialise on a lock file. Prints the Kafka version and the size of lib/.
#
# Usage: scripts/kafka/fetch.sh
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# -eq 0 ]] || die "$EXIT_USAGE" "usage: $0 (no arguments; configure with LOOPGATE_KAFKA_VERSION / LOOPGATE_KAFKA_HOME)"

report() {
  local size jars
  size="$(du -sh "$KAFKA_LIB" | cut -f1)"
  jars="$(find "$KAFKA_LIB" -name '*.jar' | wc -l)"
  echo "kafka ${KAFKA_VERSION}: ${KAFKA_LIB} (${jars} jars, ${size})"
}

if lib_complete; then report; exit 0; fi

command -v "$MVN" >/dev/null 2>&1 ||
  die "$EXIT_NO_MAVEN" "Maven not found (tried '$MVN'); install it (Debian: apt-get install maven) or set MVN"

mkdir -p "$KAFKA_HOME_DIR"
exec 9>"${KAFKA_HOME_DIR}/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if lib_complete; then report; exit 0; fi # another process fetched while we waited

# Copy into a scratch dir and move it into place, so lib/ is never half-filled.
staging="$(mktemp -d "${KAFKA_HOME_DIR}/.lib-XXXXXX")"
trap 'rm -rf "$staging"' EXIT
mvn_log="${staging}.mvn.log"
log "downloading Kafka ${KAFKA_VERSION} jars with Maven (first run only) ..."
if ! "$MVN" -B -q -f "${KAFKA_SCRIPTS_DIR}/pom.xml" \
  "-Dkafka.version=${KAFKA_VERSION}" \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime "-DoutputDirectory=${staging}" >"$mvn_log" 2>&1; then
  tail -n 30 "$mvn_log" >&2 || true
  rm -f "$mvn_log"
  die "$EXIT_FETCH" "Maven could not resolve org.apache.kafka:kafka_2.13:${KAFKA_VERSION} and its dependencies: is Maven Central reachable (proxy settings in ~/.m2/settings.xml) and is the version published?"
fi
rm -f "$mvn_log"
[[ -f "${staging}/kafka_2.13-${KAFKA_VERSION}.jar" ]] ||
  die "$EXIT_FETCH" "Maven finished but ${staging} has no kafka_2.13-${KAFKA_VERSION}.jar"

rm -rf "$KAFKA_LIB"
mv "$staging" "$KAFKA_LIB"
trap - EXIT
touch "${KAFKA_HOME_DIR}/.fetched-${KAFKA_VERSION}"
report
