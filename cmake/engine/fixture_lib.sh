# What the engine fixtures (engine.sh for vLLM, llamacpp.sh for llama-server; fleet.sh its state's
# ownership) share: who owns a state directory, stopping a server's whole process group, the
# watchdog that stops it when ctest dies, and the health wait.
# Sourced; messages start with "$fixture_tag: " (set by the caller).
# shellcheck shell=bash

fixture_tag=${fixture_tag:-engine}

fixture_stop_group() {  # $1 = process group id
  local pgid=$1
  kill -0 -- "-$pgid" 2>/dev/null || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "$fixture_tag: process group $pgid ignored SIGTERM for 20 s; sending SIGKILL"
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# A state directory belongs to the process that ran its fixture's start (for a CTest fixture, the
# ctest run: the script's parent), recorded in STATE_DIR/owner as "PID START_TIME" (the start time
# tells a reused pid apart). Two runs in one build tree share build/engines/<name>: a second run's
# start must not replace the first run's live server (orphaning it, and pointing the first run's
# tests at the second's), nor may its stop stop it.
fixture_identity() {  # $1 = pid; prints "PID START_TIME", nothing when no such process runs
  local pid=$1 stat
  stat=$(cat "/proc/$pid/stat" 2> /dev/null) || return 0
  stat=${stat##*) }  # from field 3 on (the command name before it may hold spaces); field 22: start time
  # shellcheck disable=SC2086
  set -- $stat
  echo "$pid ${20}"
}

# Prints the owner of STATE_DIR $1 when that is another process and still running; else nothing.
fixture_other_owner() {
  local owner
  owner=$(cat "$1/owner" 2> /dev/null) || return 0
  if [ -n "$owner" ] && [ "$owner" != "$(fixture_identity "$PPID")" ] \
     && [ "$(fixture_identity "${owner%% *}")" = "$owner" ]; then
    echo "$owner"
  fi
}

# Before a start writes anything into STATE_DIR $1: exits 1 when another running process owns it,
# else makes the caller's parent its owner. The lock makes check and claim one step.
fixture_claim() {
  local state=$1 lock other
  exec {lock}> "$state/owner.lock"
  flock "$lock"
  other=$(fixture_other_owner "$state")
  if [ -n "$other" ]; then
    echo "$fixture_tag: $state belongs to another run that is still going (process ${other%% *}:" \
      "$(ps -o args= -p "${other%% *}" | cut -c1-120)); its server and tests use it. Starting none:" \
      "wait for that run to end, or run this one in another build tree (cmake -B DIR)."
    exit 1
  fi
  fixture_identity "$PPID" > "$state/owner"
  exec {lock}>&-
}

# The `stop` command: stops what STATE_DIR/engine.env ($1) names and removes the file, unless another
# running process owns STATE_DIR (then that one stops its own server).
fixture_stop() {
  local envfile=$1 state other left
  state=$(dirname "$envfile")
  other=$(fixture_other_owner "$state")
  if [ -n "$other" ]; then
    echo "$fixture_tag: not stopping anything in $state: it belongs to another run that is still going (process ${other%% *}), which stops its own server"
    return 0
  fi
  if [ ! -f "$envfile" ]; then
    echo "$fixture_tag: nothing to stop ($envfile absent)"
  else
    # shellcheck disable=SC1090
    . "$envfile"
    if [ -n "${KVGATE_ENGINE_PGID:-}" ]; then
      fixture_stop_group "$KVGATE_ENGINE_PGID"
      [ -n "${KVGATE_ENGINE_WATCHDOG:-}" ] && kill "$KVGATE_ENGINE_WATCHDOG" 2>/dev/null || true
      left=$(pgrep -g "$KVGATE_ENGINE_PGID" 2>/dev/null || true)
      [ -z "$left" ] || { echo "$fixture_tag: processes left in group $KVGATE_ENGINE_PGID: $left"; return 1; }
      echo "$fixture_tag: stopped (process group $KVGATE_ENGINE_PGID, nothing left)"
    fi
    rm -f "$envfile"
  fi
  rm -f "$state/owner"
}

# A ctest that is killed runs no cleanup fixture: a watchdog stops the group $1 when the fixture's
# parent (ctest) is gone. Sets fixture_watchdog to the watchdog's pid.
fixture_start_watchdog() {
  local pgid=$1 parent=$PPID
  setsid bash -c "while kill -0 $parent 2>/dev/null; do sleep 2; done; kill -TERM -- -$pgid 2>/dev/null; sleep 10; kill -KILL -- -$pgid 2>/dev/null" \
    > /dev/null 2>&1 < /dev/null &
  fixture_watchdog=$!
}

# Waits until GET $1/health answers 2xx. On the server's exit or after $3 seconds: prints the last
# lines of the log $4, stops the group $2 and the watchdog $5, removes the env file $6, and exits 1.
fixture_wait_healthy() {
  local url=$1 pgid=$2 timeout_s=$3 log=$4 watchdog=$5 envfile=$6 name=$7 deadline why
  deadline=$(( $(date +%s) + timeout_s ))
  while :; do
    if curl -sf "$url/health" > /dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pgid" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
      kill -0 "$pgid" 2>/dev/null && why="not healthy within $timeout_s s" || why="exited"
      echo "$fixture_tag: $name $why; the last lines of its log ($log):"
      tail -n 60 "$log"
      fixture_stop_group "$pgid"
      kill "$watchdog" 2>/dev/null || true
      rm -f "$envfile"
      exit 1
    fi
    sleep 0.25
  done
}

# A free loopback TCP port (bound and released; the server binds it right after).
fixture_free_port() {  # $1 = a python interpreter
  "$1" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
