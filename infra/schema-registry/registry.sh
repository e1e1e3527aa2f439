#!/usr/bin/env bash
# A Confluent-compatible Avro schema registry (Apicurio Registry 2.4.2, its ccompat API) built
# from the Maven Central artifacts (see pom.xml beside this file), storing its schemas in
# PostgreSQL. No Docker, no tarball.
#
#   infra/schema-registry/registry.sh start  [--port 8081] [--data DIR] [--database NAME] [--timeout 90]
#   infra/schema-registry/registry.sh stop   [--data DIR] [--drop-database]
#   infra/schema-registry/registry.sh status [--data DIR]
#   infra/schema-registry/registry.sh fetch          # only build the app once (e.g. to warm a CI cache)
#
# Confluent-style clients use http://127.0.0.1:<port>/apis/ccompat/v7 as the registry URL.
#
# Storage: a PostgreSQL database (default vcp_registry), created by `start` when missing (psql),
# reached with the libpq variables PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres) and
# PGPASSWORD (none). Apicurio's in-memory H2 store is not used: in 2.4.2 it deadlocks under
# concurrent registrations. `stop --drop-database` deletes the database too.
#
# Environment overrides:
#   VCP_SCHEMA_REGISTRY_APP   built app dir  (default ${XDG_CACHE_HOME:-~/.cache}/vcp/schema-registry-<version>-postgresql/quarkus-app)
#   VCP_SCHEMA_REGISTRY_DATA  data dir       (default infra/schema-registry/.data); --data wins
#   VCP_SCHEMA_REGISTRY_HEAP  JVM heap flags (default "-Xms64m -Xmx384m")
#   JAVA                      java binary    (default java on PATH)
#
# The data dir holds registry.pid, registry.port, registry.database and registry.log (the
# server output).
# Exit status: 0 on success; non-zero with one "registry.sh: ..." line on stderr on any failure
# (start also prints the tail of the server log first). `status` exits 3 when not running.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
JAVA="${JAVA:-java}"

SCRIPT=registry.sh
PROCESS_PATTERN='quarkus-run\.jar'
# shellcheck source=../lib/service.sh
source "$HERE/../lib/service.sh"

VERSION="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$VERSION" ]] || die "cannot read <apicurio.version> from $POM"
APP="${VCP_SCHEMA_REGISTRY_APP:-${XDG_CACHE_HOME:-$HOME/.cache}/vcp/schema-registry-$VERSION-postgresql/quarkus-app}"
DATA="${VCP_SCHEMA_REGISTRY_DATA:-$HERE/.data}"
PORT=8081
TIMEOUT=90
DATABASE=vcp_registry
DROP_DATABASE=false
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
API=/apis/ccompat/v7

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
    --data) DATA="${2:?--data needs a value}"; shift 2 ;;
    --data=*) DATA="${1#*=}"; shift ;;
    --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
    --timeout=*) TIMEOUT="${1#*=}"; shift ;;
    --database) DATABASE="${2:?--database needs a value}"; shift 2 ;;
    --database=*) DATABASE="${1#*=}"; shift ;;
    --drop-database) DROP_DATABASE=true; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds, got '$TIMEOUT'"
[[ "$DATABASE" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "--database must be a PostgreSQL name (lowercase letters, digits, _), got '$DATABASE'"

# Data dir: only start creates it; stop/status on a missing dir just report "not running".
init_data() {
  mkdir -p "$DATA" 2>/dev/null || die "cannot create data dir $DATA"
  DATA="$(cd "$DATA" && pwd)"
}
[[ -d "$DATA" ]] && DATA="$(cd "$DATA" && pwd)"
PIDFILE="$DATA/registry.pid"
LOG="$DATA/registry.log"

# HTTP status of GET http://127.0.0.1:$1$2 ("000" when nothing answers).
http_code() {
  if command -v curl >/dev/null; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || echo 000
  else
    # Plain bash fallback: HTTP/1.0 request over /dev/tcp, read the status line.
    local line
    line="$( (exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
              printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
              timeout 2 head -n1 <&3) 2>/dev/null || true)"
    [[ "$line" =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && echo "${BASH_REMATCH[1]}" || echo 000
  fi
}

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

# Creates $DATABASE on the PostgreSQL server when it is missing.
ensure_database() {
  command -v psql >/dev/null || die "psql not found: it creates the registry's PostgreSQL database (apt-get install postgresql-client)"
  local exists
  exists="$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" 2>&1)" \
    || die "cannot reach PostgreSQL at $PGHOST:$PGPORT as $PGUSER: ${exists//$'\n'/ }"
  if [[ "$exists" != "1" ]]; then
    local out
    out="$(psql_admin -c "CREATE DATABASE \"$DATABASE\"" 2>&1)" || die "cannot create database $DATABASE: ${out//$'\n'/ }"
  fi
}

drop_database() {
  local name out
  name="$(cat "$DATA/registry.database" 2>/dev/null || echo "$DATABASE")"
  out="$(psql_admin -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" 2>&1)" || die "cannot drop database $name: ${out//$'\n'/ }"
  rm -f "$DATA/registry.database"
  echo "registry.sh: dropped database $name"
}

fetch() {
  [[ -f "$APP/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found: Maven is needed once to build Apicurio Registry $VERSION into $APP"
  echo "registry.sh: building Apicurio Registry $VERSION into $APP (once)" >&2
  local tmp="$APP.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/build"
  cp "$POM" "$tmp/build/pom.xml"
  if ! (cd "$tmp/build" && mvn -B -DskipDefault -DskipTests '-D%prod.quarkus.package.type=fast-jar' '-D%prod.quarkus.datasource.db-kind=postgresql' \
          package) >"$tmp.mvn.log" 2>&1; then
    grep -E '^\[ERROR\]' "$tmp.mvn.log" | head -n 20 >&2 || tail -n 20 "$tmp.mvn.log" >&2
    rm -rf "$tmp" "$tmp.mvn.log"
    rmdir "$(dirname "$APP")" 2>/dev/null || true
    die "maven could not build io.apicurio:apicurio-registry-app:$VERSION (Quarkus build)"
  fi
  rm -f "$tmp.mvn.log"
  [[ -f "$tmp/build/target/quarkus-app/quarkus-run.jar" ]] \
    || { rm -rf "$tmp"; die "the Quarkus build produced no target/quarkus-app/quarkus-run.jar"; }
  mv "$tmp/build/target/quarkus-app" "$tmp/quarkus-app"
  rm -rf "$tmp/build"
  touch "$tmp/quarkus-app/.complete"
  rm -rf "$APP"
  mkdir -p "$(dirname "$APP")"
  mv "$tmp/quarkus-app" "$APP"
  rmdir "$tmp" 2>/dev/null || true
}

start() {
  local pid
  init_data
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    echo "registry.sh: already running (pid $pid, data $DATA)"
    return 0
  fi
  command -v "$JAVA" >/dev/null || die "java not found (Java 17 is needed)"
  port_open "$PORT" && die "port $PORT on 127.0.0.1 is already in use"
  fetch
  ensure_database
  : >"$LOG"
  echo "$PORT" >"$DATA/registry.port"
  echo "$DATABASE" >"$DATA/registry.database"
  mkdir -p "$DATA/tmp"

  local t0=$SECONDS
  # setsid + nohup: the registry outlives this script and the caller's terminal. The working dir
  # is the data dir, so nothing the server writes relative to its cwd lands elsewhere.
  # shellcheck disable=SC2086
  (cd "$DATA" && exec setsid nohup "$JAVA" ${VCP_SCHEMA_REGISTRY_HEAP:--Xms64m -Xmx384m} \
    -Djava.awt.headless=true -Djava.io.tmpdir="$DATA/tmp" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
    "-D%prod.quarkus.datasource.jdbc.url=jdbc:postgresql://$PGHOST:$PGPORT/$DATABASE" \
    "-D%prod.quarkus.datasource.username=$PGUSER" "-D%prod.quarkus.datasource.password=${PGPASSWORD:-}" \
    '-D%prod.quarkus.datasource.jdbc.min-size=2' '-D%prod.quarkus.datasource.jdbc.initial-size=2' \
    '-D%prod.quarkus.datasource.jdbc.max-size=20' \
    -Dquarkus.log.console.color=false \
    -jar "$APP/quarkus-run.jar" \
    >>"$LOG" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$PIDFILE"

  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 30 "$LOG" >&2
      die "registry exited during startup (log: $LOG)"
    fi
    [[ "$(http_code "$PORT" "$API/subjects")" == 200 ]] && break
    if (( SECONDS - t0 >= TIMEOUT )); then
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      tail -n 30 "$LOG" >&2
      die "registry not ready on 127.0.0.1:$PORT after ${TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.25
  done
  echo "registry.sh: Apicurio Registry $VERSION ready at http://127.0.0.1:$PORT$API (pid $pid, up in $((SECONDS - t0))s, data $DATA)"
}

stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "registry.sh: not running (data $DATA)"
    [[ "$DROP_DATABASE" == true ]] && drop_database
    return 0
  fi
  stop_pid "$pid" registry 20
  [[ "$DROP_DATABASE" == true ]] && drop_database
  return 0
}

status() {
  local pid port
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "registry.sh: not running (data $DATA)"
    exit 3
  fi
  port="$(cat "$DATA/registry.port" 2>/dev/null || echo '?')"
  echo "registry.sh: running (pid $pid, http://127.0.0.1:$port$API, Apicurio Registry $VERSION, data $DATA)"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch; echo "$APP" ;;
  -h|--help|help) usage ;;
  *) die "unknown command '$cmd' (start|stop|status|fetch)" ;;
esac
