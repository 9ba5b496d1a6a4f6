#!/usr/bin/env bash
# start.sh DIR — run a single-node Apache Kafka (KRaft, combined broker+controller) for tests.
#
# What it does, in order:
#   1. fetch.sh: make sure the jars are in the cache (a no-op after the first run).
#   2. Pick free loopback ports, write DIR/server.properties (SASL/SCRAM, StandardAuthorizer with
#      deny-by-default, no topic auto-creation, replication factor 1) and a random admin password.
#   3. Format DIR/data with StorageTool, adding the admin user for SCRAM-SHA-256 and -512.
#   4. Start `java -Xmx512m ... kafka.Kafka` in the background, logging to DIR/broker.log.
#   5. Wait until an authenticated admin call (ClusterTool cluster-id over SASL_PLAINTEXT with
#      SCRAM-SHA-512) returns our cluster id. On timeout print the log tail and stop the broker.
#   6. Write DIR/env (shell-sourceable; read by internal/testkafka) with KAFKA_SASL_BOOTSTRAP,
#      KAFKA_PLAINTEXT_BOOTSTRAP, KAFKA_ADMIN_USER, KAFKA_ADMIN_PASSWORD, KAFKA_CLIENT_PROPERTIES,
#      KAFKA_LIB, KAFKA_VERSION, KAFKA_PID, KAFKA_CLUSTER_ID, KAFKA_DIR.
#
# Stop it with scripts/kafka/stop.sh DIR.
#
# Security model: the SASL_PLAINTEXT listener is the one to test ACLs through. User:ANONYMOUS must
# be a super user (the broker reaches the controller over a PLAINTEXT listener and would never
# unfence otherwise), so the PLAINTEXT listener is a super-user back door: never use it to check
# authorization.
#
# Knobs (optional): LOOPGATE_KAFKA_VERSION, LOOPGATE_KAFKA_HOME (see common.sh),
#   KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90),
#   KAFKA_HEAP           broker -Xmx (default 512m),
#   KAFKA_ADMIN_PASSWORD admin password (default: random; no spaces, commas or quotes),
#   LOOPGATE_KAFKA_WATCH_PID  stop the broker (and delete DIR) once this process is gone: the Go
#                        harness passes its own pid so a crashed or timed-out test leaks nothing.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# -eq 1 ]] || die "$EXIT_USAGE" "usage: $0 DIR   (DIR: a new or empty directory for config, data and logs)"
DIR="$1"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
[[ -z "$(ls -A "$DIR")" ]] || die "$EXIT_USAGE" "$DIR is not empty: pass a fresh directory (every run formats a new cluster)"

START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HEAP="${KAFKA_HEAP:-512m}"
ADMIN_USER=admin
ADMIN_PASSWORD="${KAFKA_ADMIN_PASSWORD:-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}"
[[ "$ADMIN_PASSWORD" =~ ^[A-Za-z0-9._@-]+$ ]] ||
  die "$EXIT_USAGE" "KAFKA_ADMIN_PASSWORD may only hold letters, digits and . _ @ - (it is embedded in --add-scram and a JAAS line)"

require_java
"${KAFKA_SCRIPTS_DIR}/fetch.sh" >&2

BROKER_PID=""
WATCHDOG_PID=""
READY=0
cleanup() {
  if [[ "$READY" -eq 0 ]]; then
    [[ -n "$WATCHDOG_PID" ]] && kill "$WATCHDOG_PID" 2>/dev/null || true
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
      log "stopping the broker (pid $BROKER_PID) that did not become ready"
      kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# free_ports N prints N distinct free ports on 127.0.0.1.
free_ports() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
PY
  else
    "$JAVA" "${KAFKA_SCRIPTS_DIR}/FreePorts.java" "$1"
  fi
}

# random_cluster_id prints a Kafka cluster id: 16 random bytes, base64url without padding
# (what StorageTool random-uuid prints, without paying for a JVM start). A leading '-' would be
# read as a command-line flag, so draw again in that case.
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

cat >"$DIR/log4j2.properties" <<'PROPS'
# Broker logging: everything to stdout, which start.sh sends to DIR/broker.log.
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# Authorization decisions (denials at INFO) help debugging ACL tests.
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
PROPS

cat >"$DIR/tools-log4j2.properties" <<'PROPS'
# CLI tools (TopicCommand, AclCommand, ...): warnings only, to stderr, so stdout stays parseable.
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
PROPS

jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"${ADMIN_USER}\" password=\"${ADMIN_PASSWORD}\";"

cat >"$DIR/client.properties" <<PROPS
# Admin client settings for Kafka's CLI tools (--command-config) over the SASL listener.
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=${jaas}
PROPS
# The readiness probe must fail fast and retry, not block for the 60 s default api timeout.
cp "$DIR/client.properties" "$DIR/ready.properties"
printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n' >>"$DIR/ready.properties"

JAVA_TOOL=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  "-Dlog4j2.configurationFile=$DIR/tools-log4j2.properties" -cp "${KAFKA_LIB}/*")

# start_broker ATTEMPT: write config for fresh ports, format, launch. Sets BROKER_PID, ports.
start_broker() {
  local attempt="$1" ports
  mapfile -t ports < <(free_ports 3)
  [[ ${#ports[@]} -eq 3 ]] || die "$EXIT_NOT_READY" "could not pick free ports on 127.0.0.1"
  PLAINTEXT_PORT="${ports[0]}" CONTROLLER_PORT="${ports[1]}" SASL_PORT="${ports[2]}"
  local data="$DIR/data-$attempt"
  cat >"$DIR/server.properties" <<PROPS
# Single-node KRaft cluster for loopgate tests. Generated by scripts/kafka/start.sh.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${CONTROLLER_PORT}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${PLAINTEXT_PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT},SASL_PLAINTEXT://127.0.0.1:${SASL_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${PLAINTEXT_PORT},SASL_PLAINTEXT://127.0.0.1:${SASL_PORT}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT

sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=${jaas}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=${jaas}

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:${ADMIN_USER};User:ANONYMOUS
allow.everyone.if.no.acl.found=false
auto.create.topics.enable=false

log.dirs=${data}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  CLUSTER_ID="$(random_cluster_id)"
  if ! "${JAVA_TOOL[@]}" kafka.tools.StorageTool format --config "$DIR/server.properties" \
    --cluster-id "$CLUSTER_ID" \
    --add-scram "SCRAM-SHA-256=[name=${ADMIN_USER},password=${ADMIN_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=${ADMIN_USER},password=${ADMIN_PASSWORD}]" \
    >"$DIR/format.log" 2>&1; then
    cat "$DIR/format.log" >&2
    die "$EXIT_NOT_READY" "kafka.tools.StorageTool format failed (see above and $DIR/server.properties)"
  fi
  "$JAVA" "-Xmx${HEAP}" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$DIR/log4j2.properties" \
    -cp "${KAFKA_LIB}/*" kafka.Kafka "$DIR/server.properties" \
    </dev/null >>"$DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  echo "$BROKER_PID" >"$DIR/broker.pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PROBE_CONFIG_FLAG=--command-config

# wait_ready: 0 when ready, 1 on timeout, 2 when the broker died of a port clash (retry).
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) out
  while ((SECONDS < deadline)); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      wait "$BROKER_PID" 2>/dev/null || true
      if grep -q 'Address already in use' "$DIR/broker.log"; then return 2; fi
      log "the broker process exited before becoming ready"
      return 1
    fi
    if port_open "$SASL_PORT"; then
      if out="$("${JAVA_TOOL[@]}" org.apache.kafka.tools.ClusterTool cluster-id \
        --bootstrap-server "127.0.0.1:${SASL_PORT}" "$PROBE_CONFIG_FLAG" "$DIR/ready.properties" 2>&1)" &&
        [[ "$out" == *"$CLUSTER_ID"* ]]; then
        return 0
      fi
      # Kafka 4.0 ClusterTool only knows --config (deprecated from 4.1 for --command-config).
      if [[ "$out" == *"unrecognized arguments: '--command-config'"* ]]; then PROBE_CONFIG_FLAG=--config; continue; fi
    fi
    sleep 0.5
  done
  log "no successful authenticated admin call within ${START_TIMEOUT}s; last probe said: ${out:-<SASL port ${SASL_PORT} never opened>}"
  return 1
}

# The watchdog starts before the broker, so that even a start.sh killed mid-way (SIGKILL skips
# the EXIT trap) leaves nothing running once the watched process is gone.
if [[ -n "${LOOPGATE_KAFKA_WATCH_PID:-}" ]]; then
  watch="$LOOPGATE_KAFKA_WATCH_PID"
  (
    trap '' HUP INT
    while kill -0 "$watch" 2>/dev/null; do sleep 1; done
    LOOPGATE_KAFKA_FROM_WATCHDOG=1 "${KAFKA_SCRIPTS_DIR}/stop.sh" "$DIR" || true
    rm -rf "$DIR"
  ) </dev/null >/dev/null 2>&1 &
  WATCHDOG_PID=$!
  echo "$WATCHDOG_PID" >"$DIR/watchdog.pid"
fi

t0=$SECONDS
for attempt in 1 2 3; do
  start_broker "$attempt"
  rc=0
  wait_ready || rc=$?
  [[ $rc -eq 0 ]] && break
  if [[ $rc -eq 2 && $attempt -lt 3 ]]; then
    log "port clash (another process took a port we picked); retrying with new ports"
    continue
  fi
  {
    echo "----- last 50 lines of $DIR/broker.log -----"
    tail -n 50 "$DIR/broker.log" || true
    echo "----- end of broker log -----"
  } >&2
  die "$EXIT_NOT_READY" "Kafka broker in $DIR not ready (see log above)"
done

# Values are single-quoted so the file stays safe to source whatever the paths hold.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
{
  echo "# Generated by scripts/kafka/start.sh; source it to use the test broker."
  echo "export KAFKA_SASL_BOOTSTRAP=$(q "127.0.0.1:${SASL_PORT}")"
  echo "export KAFKA_PLAINTEXT_BOOTSTRAP=$(q "127.0.0.1:${PLAINTEXT_PORT}")"
  echo "export KAFKA_CONTROLLER_BOOTSTRAP=$(q "127.0.0.1:${CONTROLLER_PORT}")"
  echo "export KAFKA_ADMIN_USER=$(q "$ADMIN_USER")"
  echo "export KAFKA_ADMIN_PASSWORD=$(q "$ADMIN_PASSWORD")"
  echo "export KAFKA_SASL_MECHANISM='SCRAM-SHA-512'"
  echo "export KAFKA_CLIENT_PROPERTIES=$(q "$DIR/client.properties")"
  echo "export KAFKA_TOOLS_LOG4J=$(q "$DIR/tools-log4j2.properties")"
  echo "export KAFKA_LIB=$(q "$KAFKA_LIB")"
  echo "export KAFKA_VERSION=$(q "$KAFKA_VERSION")"
  echo "export KAFKA_CLUSTER_ID=$(q "$CLUSTER_ID")"
  echo "export KAFKA_PID=$(q "$BROKER_PID")"
  echo "export KAFKA_DIR=$(q "$DIR")"
} >"$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"

READY=1
log "Kafka ${KAFKA_VERSION} ready in $((SECONDS - t0))s: SASL 127.0.0.1:${SASL_PORT}, PLAINTEXT 127.0.0.1:${PLAINTEXT_PORT}, pid ${BROKER_PID}; env in $DIR/env"
