# shellcheck shell=bash
# Shared settings for fetch.sh, start.sh and stop.sh. Sourced, never run.
#
# Knobs (all optional):
#   LOOPGATE_KAFKA_VERSION  Kafka release to fetch (default below; must be 4.x, KRaft only).
#   LOOPGATE_KAFKA_HOME     cache dir holding lib/ (default ~/.cache/loopgate/kafka-<version>).
#   MVN                     Maven command (default: mvn).
#   JAVA                    java command (default: $JAVA_HOME/bin/java, else java).

KAFKA_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${LOOPGATE_KAFKA_VERSION:-4.4.0}"
KAFKA_HOME_DIR="${LOOPGATE_KAFKA_HOME:-${HOME:-/tmp}/.cache/loopgate/kafka-${KAFKA_VERSION}}"
KAFKA_LIB="${KAFKA_HOME_DIR}/lib"
MVN="${MVN:-mvn}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then JAVA="${JAVA_HOME}/bin/java"; else JAVA=java; fi
fi

# Exit codes shared with internal/testkafka, which turns them into errors that name the
# missing piece. Keep both sides in sync.
EXIT_USAGE=2
EXIT_NO_JAVA=3
EXIT_NO_MAVEN=4
EXIT_FETCH=5
EXIT_NOT_READY=6

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { local code="$1"; shift; log "error: $*"; exit "$code"; }

require_java() {
  command -v "$JAVA" >/dev/null 2>&1 ||
    die "$EXIT_NO_JAVA" "java not found (tried '$JAVA'); install a JDK >= 17 (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
  local major
  major="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)"
  major="${major#1.}"
  if [[ -n "$major" && "$major" =~ ^[0-9]+$ && "$major" -lt 17 ]]; then
    die "$EXIT_NO_JAVA" "java $major found at $(command -v "$JAVA"); Kafka ${KAFKA_VERSION} needs Java >= 17: install it or set JAVA_HOME"
  fi
}

# lib_complete succeeds when a previous fetch finished for this version.
lib_complete() { [[ -f "${KAFKA_HOME_DIR}/.fetched-${KAFKA_VERSION}" && -f "${KAFKA_LIB}/kafka_2.13-${KAFKA_VERSION}.jar" ]]; }
