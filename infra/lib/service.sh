# Shared by the infra/ start scripts (sourced, not run): each runs one JVM server in the
# background from a data dir with a pid file. The sourcing script sets SCRIPT (its name, for
# messages), PIDFILE and PROCESS_PATTERN (a grep pattern its server's command line matches).

die() { echo "$SCRIPT: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints the pid of our running server, or nothing (and drops a stale pid file): the pid must be
# alive and its command line ours, so a recycled pid is never taken for the server.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$PROCESS_PATTERN"; then
    echo "$pid"
  else
    rm -f "$PIDFILE"
  fi
}

# stop_pid PID WHAT GRACE_S: SIGTERM, up to GRACE_S seconds for it to end, then SIGKILL.
stop_pid() {
  local pid="$1" what="$2" grace="$3" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 2; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    kill -0 "$pid" 2>/dev/null && die "could not stop $what pid $pid"
    echo "$SCRIPT: $what pid $pid did not stop in ${grace}s; killed" >&2
  fi
  rm -f "$PIDFILE"
  echo "$SCRIPT: stopped (pid $pid)"
}
