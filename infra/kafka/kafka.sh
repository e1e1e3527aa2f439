#!/usr/bin/env bash
# Single-node Apache Kafka broker in KRaft combined mode (broker + controller in one JVM), run
# straight from the official Maven Central artifacts (see pom.xml beside this file). No Docker,
# no tarball, no ZooKeeper.
#
#   infra/kafka/kafka.sh start  [--port 9092] [--controller-port PORT+1] [--data DIR] [--timeout 90]
#   infra/kafka/kafka.sh stop   [--data DIR]
#   infra/kafka/kafka.sh status [--data DIR]
#   infra/kafka/kafka.sh fetch          # only fetch the classpath (e.g. to warm a CI cache)
#
# Version: Kafka 3.9.x (set in pom.xml). kafkajs 2.2.4 speaks only the classic protocol with old
# API versions; Kafka 4.0 dropped old protocol versions (KIP-896) and kafkajs users report
# consumer-group trouble against 4.x, so 3.9, the last pre-4.0 line, is the newest we trust.
#
# Environment overrides:
#   VCP_KAFKA_LIB      classpath dir   (default ${XDG_CACHE_HOME:-~/.cache}/vcp/kafka-<version>/lib)
#   VCP_KAFKA_DATA     data dir        (default infra/kafka/.data); --data wins
#   VCP_KAFKA_HEAP     JVM heap flags  (default "-Xms256m -Xmx512m")
#   JAVA               java binary     (default java on PATH)
#
# Everything for one broker lives in its data dir: server.properties, log4j.properties,
# cluster-id, kafka.pid, kafka.log (broker output) and logs/ (the partitions).
# Exit status: 0 on success; non-zero with one "kafka.sh: ..." line on stderr on any failure
# (start also prints the tail of the broker log first). `status` exits 3 when not running.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
JAVA="${JAVA:-java}"

SCRIPT=kafka.sh
PROCESS_PATTERN='kafka\.Kafka'
# shellcheck source=../lib/service.sh
source "$HERE/../lib/service.sh"

VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$VERSION" ]] || die "cannot read <kafka.version> from $POM"
LIB="${VCP_KAFKA_LIB:-${XDG_CACHE_HOME:-$HOME/.cache}/vcp/kafka-$VERSION/lib}"
DATA="${VCP_KAFKA_DATA:-$HERE/.data}"
PORT=9092
CPORT=""
TIMEOUT=90

usage() {
  sed -n '6,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --controller-port) CPORT="${2:?--controller-port needs a value}"; shift 2 ;;
    --controller-port=*) CPORT="${1#*=}"; shift ;;
    --data) DATA="${2:?--data needs a value}"; shift 2 ;;
    --data=*) DATA="${1#*=}"; shift ;;
    --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
    --timeout=*) TIMEOUT="${1#*=}"; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"
CPORT="${CPORT:-$((PORT + 1))}"
[[ "$CPORT" =~ ^[0-9]+$ ]] || die "--controller-port must be a number, got '$CPORT'"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds, got '$TIMEOUT'"
mkdir -p "$DATA" 2>/dev/null || die "cannot create data dir $DATA"
DATA="$(cd "$DATA" && pwd)"
PIDFILE="$DATA/kafka.pid"
LOG="$DATA/kafka.log"

fetch() {
  [[ -f "$LIB/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found: Maven is needed once to fetch Kafka $VERSION into $LIB"
  echo "kafka.sh: fetching Kafka $VERSION classpath into $LIB (once)" >&2
  local tmp="$LIB.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
    tail -n 20 "$tmp.mvn.log" >&2
    rm -rf "$tmp" "$tmp.mvn.log"
    die "maven could not fetch org.apache.kafka:kafka_2.13:$VERSION and its dependencies"
  fi
  rm -f "$tmp.mvn.log"
  ls "$tmp"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "fetched classpath lacks kafka_2.13-$VERSION.jar"; }
  touch "$tmp/.complete"
  rm -rf "$LIB"
  mkdir -p "$(dirname "$LIB")"
  mv "$tmp" "$LIB"
}

write_config() {
  cat >"$DATA/server.properties" <<EOF
# Written by infra/kafka/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
EOF
  cat >"$DATA/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
EOF
}

java_base() {
  # shellcheck disable=SC2086
  "$JAVA" ${VCP_KAFKA_HEAP:--Xms256m -Xmx512m} -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$DATA/log4j.properties" -Dkafka.logs.dir="$DATA" \
    -cp "$LIB/*" "$@"
}

format_storage() {
  [[ -f "$DATA/logs/meta.properties" ]] && return 0
  local cid
  if [[ -s "$DATA/cluster-id" ]]; then
    cid="$(cat "$DATA/cluster-id")"
  else
    cid="$(java_base kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n1)" \
      || die "kafka.tools.StorageTool random-uuid failed (see $LOG)"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "unexpected cluster id from StorageTool: '$cid'"
    echo "$cid" >"$DATA/cluster-id"
  fi
  java_base kafka.tools.StorageTool format -t "$cid" -c "$DATA/server.properties" >>"$LOG" 2>&1 \
    || { tail -n 20 "$LOG" >&2; die "formatting storage in $DATA/logs failed (see $LOG)"; }
}

start() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    echo "kafka.sh: already running (pid $pid, data $DATA)"
    return 0
  fi
  command -v "$JAVA" >/dev/null || die "java not found (Java 17 is needed)"
  port_open "$PORT" && die "port $PORT on 127.0.0.1 is already in use"
  port_open "$CPORT" && die "controller port $CPORT on 127.0.0.1 is already in use"
  fetch
  write_config
  : >"$LOG"
  format_storage

  local t0=$SECONDS
  # setsid + nohup: the broker outlives this script and the caller's terminal.
  setsid nohup bash -c 'exec "$@"' kafka-broker \
    "$JAVA" ${VCP_KAFKA_HEAP:--Xms256m -Xmx512m} -Djava.awt.headless=true \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Dlog4j.configuration="file:$DATA/log4j.properties" -Dkafka.logs.dir="$DATA" \
    -cp "$LIB/*" kafka.Kafka "$DATA/server.properties" \
    >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"

  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 30 "$LOG" >&2
      die "broker exited during startup (log: $LOG)"
    fi
    if port_open "$PORT" && grep -q 'Kafka Server started' "$LOG"; then
      break
    fi
    if (( SECONDS - t0 >= TIMEOUT )); then
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      tail -n 30 "$LOG" >&2
      die "broker not ready on 127.0.0.1:$PORT after ${TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.5
  done
  echo "kafka.sh: Kafka $VERSION ready on 127.0.0.1:$PORT (pid $pid, broker up in $((SECONDS - t0))s, data $DATA)"
}

stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "kafka.sh: not running (data $DATA)"
    return 0
  fi
  stop_pid "$pid" broker 30
}

status() {
  local pid port
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "kafka.sh: not running (data $DATA)"
    exit 3
  fi
  port="$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$DATA/server.properties" 2>/dev/null)"
  echo "kafka.sh: running (pid $pid, 127.0.0.1:${port:-?}, Kafka $VERSION, data $DATA)"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch; echo "$LIB" ;;
  -h|--help|help) usage ;;
  *) die "unknown command '$cmd' (start|stop|status|fetch)" ;;
esac
