#!/usr/bin/env bash
# stop.sh DIR — stop the broker that start.sh DIR started: SIGTERM (a clean shutdown), then
# SIGKILL after KAFKA_STOP_TIMEOUT seconds (default 20). Safe to run twice; does nothing when
# the broker is already gone. Leaves DIR in place (its broker.log is worth reading).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# -eq 1 ]] || die "$EXIT_USAGE" "usage: $0 DIR   (the directory given to start.sh)"
DIR="$1"
[[ -d "$DIR" ]] || { log "$DIR does not exist; nothing to stop"; exit 0; }
DIR="$(cd "$DIR" && pwd)"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-20}"

# is_ours PID: the process is alive and is the broker whose config lives in DIR (guards against
# a recycled pid).
is_ours() {
  local cmdline
  kill -0 "$1" 2>/dev/null || return 1
  [[ -r "/proc/$1/cmdline" ]] || return 0 # no procfs: trust the pid file
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline")"
  [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$DIR/server.properties"* ]]
}

if [[ -z "${LOOPGATE_KAFKA_FROM_WATCHDOG:-}" && -f "$DIR/watchdog.pid" ]]; then
  kill "$(cat "$DIR/watchdog.pid")" 2>/dev/null || true
  rm -f "$DIR/watchdog.pid"
fi

[[ -f "$DIR/broker.pid" ]] || { log "no $DIR/broker.pid; nothing to stop"; exit 0; }
pid="$(cat "$DIR/broker.pid")"
if ! is_ours "$pid"; then
  log "broker (pid $pid) already stopped"
  rm -f "$DIR/broker.pid"
  exit 0
fi

kill -TERM "$pid" 2>/dev/null || true
deadline=$((SECONDS + STOP_TIMEOUT))
while is_ours "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
if is_ours "$pid"; then
  log "broker (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while is_ours "$pid"; do sleep 0.1; done
fi
rm -f "$DIR/broker.pid"
log "broker (pid $pid) stopped"
