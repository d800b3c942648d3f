#!/usr/bin/env bash
# A fleet as one CTest fixture: N vLLM replicas behind `vllm-router`, started and stopped as a unit
# with engine.sh's guarantees (health waits, log tails on failure, every process tree stopped, a
# watchdog for a killed ctest).
#
#   fleet.sh start STATE_DIR [extra vllm args...]   writes STATE_DIR/engine.env
#   fleet.sh stop  STATE_DIR
#
# engine.env: KVGATE_URL (the router), KVGATE_MODEL, KVGATE_FLEET_REPLICA_URLS (comma-separated),
# KVGATE_FLEET_POLICY, KVGATE_FLEET_ROUTER_METRICS_URL (the router's own Prometheus listener),
# KVGATE_FLEET_PGIDS (router first, then replicas), KVGATE_FLEET_WATCHDOG, KVGATE_FLEET_LOGS.
#
# Environment: KVGATE_FLEET_REPLICAS (default 2), KVGATE_FLEET_POLICY (default cache_aware; any
# `vllm-router --policy`), KVGATE_FLEET_ROUTER_ARGS (more vllm-router flags), and engine.sh's
# KVGATE_VENV, KVGATE_ENGINE_MODEL, KVGATE_ENGINE_START_TIMEOUT_S (default 600), KVGATE_ENGINE_ARGS.
# KVGATE_URL set: a fleet already running (KVGATE_FLEET_REPLICA_URLS names its replicas); nothing
# is started.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmd=${1:?usage: fleet.sh start|stop STATE_DIR [vllm args...]}
state=${2:?usage: fleet.sh start|stop STATE_DIR [vllm args...]}
shift 2
mkdir -p "$state"
envfile=$state/engine.env
tag=fleet
fixture_tag=$tag
# shellcheck source=fixture_lib.sh
. "$here/fixture_lib.sh"  # the state directory's owner (one run's fleet; see there)

# --- shell shared with engine.sh in shape (stop_group, start_watchdog, wait_healthy) ----------

# Stops whole process groups: SIGTERM to all at once, SIGKILL to what is left after 20 s.
stop_group() {  # PGID...
  local pgid alive
  for pgid in "$@"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=""
    for pgid in "$@"; do kill -0 -- "-$pgid" 2>/dev/null && alive+=" $pgid"; done
    [ -z "$alive" ] && return 0
    sleep 0.2
  done
  echo "$tag: process group(s)$alive ignored SIGTERM for 20 s; sending SIGKILL"
  for pgid in $alive; do kill -KILL -- "-$pgid" 2>/dev/null || true; done
}

# A ctest that is killed runs no cleanup fixture: the watchdog stops the groups when ctest is gone.
start_watchdog() {  # OWNER_PID PGID...; prints the watchdog's pid
  local owner=$1
  shift
  setsid bash -c "while kill -0 $owner 2>/dev/null; do sleep 2; done
    for g in $*; do kill -TERM -- -\$g 2>/dev/null; done; sleep 10
    for g in $*; do kill -KILL -- -\$g 2>/dev/null; done" > /dev/null 2>&1 < /dev/null &
  echo $!
}

# Waits for URL/health; fails when the group's leader exited or the deadline passed.
wait_healthy() {  # URL LEADER_PID DEADLINE_EPOCH_S; sets $why on failure
  local url=$1 leader=$2 deadline=$3
  while ! curl -sf "$url/health" > /dev/null 2>&1; do
    if ! kill -0 "$leader" 2>/dev/null; then why="exited"; return 1; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then why="not healthy within ${timeout_s} s"; return 1; fi
    sleep 0.25
  done
}

# --- stop ---------------------------------------------------------------------------------------

if [ "$cmd" = stop ]; then
  other=$(fixture_other_owner "$state")
  if [ -n "$other" ]; then
    echo "$tag: not stopping anything in $state: it belongs to another run that is still going (process ${other%% *}), which stops its own fleet"
    exit 0
  fi
  [ -f "$envfile" ] || { echo "$tag: nothing to stop ($envfile absent)"; rm -f "$state/owner"; exit 0; }
  # shellcheck disable=SC1090
  . "$envfile"
  if [ -n "${KVGATE_FLEET_PGIDS:-}" ]; then
    # shellcheck disable=SC2086
    stop_group $KVGATE_FLEET_PGIDS
    [ -n "${KVGATE_FLEET_WATCHDOG:-}" ] && kill "$KVGATE_FLEET_WATCHDOG" 2>/dev/null || true
    left=""
    for g in $KVGATE_FLEET_PGIDS; do left+=$(pgrep -g "$g" 2>/dev/null | tr '\n' ' ' || true); done
    [ -z "$left" ] || { echo "$tag: processes left in groups $KVGATE_FLEET_PGIDS: $left"; exit 1; }
    echo "$tag: stopped (process groups $KVGATE_FLEET_PGIDS, nothing left)"
  fi
  rm -f "$envfile" "$state/owner"
  exit 0
fi

[ "$cmd" = start ] || { echo "fleet.sh: unknown command '$cmd' (start|stop)"; exit 2; }
fixture_claim "$state"

if [ -n "${KVGATE_URL:-}" ]; then
  echo "$tag: KVGATE_URL=$KVGATE_URL is set; using that fleet (replicas: ${KVGATE_FLEET_REPLICA_URLS:-not named}), starting none"
  printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\nKVGATE_FLEET_REPLICA_URLS=%q\nKVGATE_FLEET_POLICY=%q\n' \
    "$KVGATE_URL" "${KVGATE_MODEL:-}" "${KVGATE_FLEET_REPLICA_URLS:-}" "${KVGATE_FLEET_POLICY:-}" > "$envfile"
  exit 0
fi

# --- settings, checked before anything starts ---------------------------------------------------

venv=${KVGATE_VENV:-$root/.venv}
python=$venv/bin/python
router=$venv/bin/vllm-router
[ -x "$python" ] || { echo "$tag: no Python at $python. Run: bash cmake/setup.sh (or set KVGATE_VENV)"; exit 1; }
[ -x "$router" ] || { echo "$tag: no vllm-router in $venv. Run: bash cmake/setup.sh (requirements list vllm-router)"; exit 1; }
replicas=${KVGATE_FLEET_REPLICAS:-2}
[[ "$replicas" =~ ^[1-9][0-9]*$ ]] || { echo "$tag: KVGATE_FLEET_REPLICAS='$replicas' is not a positive whole number"; exit 1; }
policy=${KVGATE_FLEET_POLICY:-cache_aware}
# shellcheck disable=SC2206
router_extra=(${KVGATE_FLEET_ROUTER_ARGS:-})
# The router's own parser names the valid policies; asking it costs a second, a replica start ~50.
if ! bad=$("$router" --policy "$policy" "${router_extra[@]}" --help 2>&1 > /dev/null); then
  echo "$tag: vllm-router rejects its arguments (KVGATE_FLEET_POLICY='$policy', KVGATE_FLEET_ROUTER_ARGS='${KVGATE_FLEET_ROUTER_ARGS:-}'): ${bad##*$'\n'}"
  exit 1
fi
timeout_s=${KVGATE_ENGINE_START_TIMEOUT_S:-600}

default_model=$root/models/opt-125m-dummy
model=${KVGATE_ENGINE_MODEL:-$default_model}
args=(--model "$model" --max-model-len 1024 --enforce-eager --enable-prompt-tokens-details
      --host 127.0.0.1)
if [ "$model" = "$default_model" ]; then
  [ -f "$model/kvgate-model.json" ] || "$python" "$here/make_model.py" "$model"
  args+=(--load-format dummy --served-model-name opt-125m-dummy
         --chat-template "$model/chat_template.jinja")
  served=opt-125m-dummy
else
  served=$model
fi
# shellcheck disable=SC2206
extra=(${KVGATE_ENGINE_ARGS:-})

# Where each replica runs. GPU: replicas spread over the GPUs, sharing one GPU's memory where there
# are more replicas than GPUs. CPU: the allowed cores split into one disjoint set per replica (one
# OpenMP team each, as on separate machines); with more replicas than cores, cores are shared.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
placement=()   # per replica: the environment that places it
if [ "${gpus:-0}" -gt 0 ]; then
  per_gpu=$(( (replicas + gpus - 1) / gpus ))
  args+=(--gpu-memory-utilization "$(echo "scale=2; 0.7 / $per_gpu" | bc)")
  for i in $(seq 0 $((replicas - 1))); do placement+=("CUDA_VISIBLE_DEVICES=$((i % gpus))"); done
else
  # CPU: engine.sh's fixed 1 GiB KV cache per replica, and float32 (see engine.sh).
  export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
  args+=(--dtype float32)
  mapfile -t binds < <("$python" - "$replicas" <<'EOF'
import os, sys
n = int(sys.argv[1]); cpus = sorted(os.sched_getaffinity(0))
if n <= len(cpus):
    k = len(cpus) // n
    for i in range(n): print(",".join(map(str, cpus[i * k:(i + 1) * k])))
else:
    for i in range(n): print(cpus[i % len(cpus)])
EOF
  )
  [ "$replicas" -le "$(nproc)" ] || echo "$tag: $replicas replicas on $(nproc) cores: replicas share cores, timings will interfere"
  for b in "${binds[@]}"; do placement+=("VLLM_CPU_OMP_THREADS_BIND=$b"); done
fi

# One loopback port per replica, one for the router, one for its Prometheus listener; all sockets
# held open together so the ports are distinct.
mapfile -t ports < <("$python" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
for s in socks: print(s.getsockname()[1])' $((replicas + 2)))
router_port=${ports[$replicas]}
prometheus_port=${ports[$((replicas + 1))]}
url=http://127.0.0.1:$router_port

# --- start --------------------------------------------------------------------------------------

pgids=()       # router (once started) first, then replicas: the order stop reports them in
replica_pgids=()
urls=()
logs=()
watchdog=""
started=0
write_env() {
  local csv
  csv=$(IFS=,; echo "${urls[*]}")
  printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\nKVGATE_FLEET_REPLICA_URLS=%q\nKVGATE_FLEET_POLICY=%q\nKVGATE_FLEET_ROUTER_METRICS_URL=%q\nKVGATE_FLEET_PGIDS=%q\nKVGATE_FLEET_WATCHDOG=%q\nKVGATE_FLEET_LOGS=%q\n' \
    "$url" "$served" "$csv" "$policy" "http://127.0.0.1:$prometheus_port/metrics" "${pgids[*]}" \
    "$watchdog" "${logs[*]}" > "$envfile"
}
# Any way out of a start that did not finish (a failed wait, an error, a signal) stops everything.
on_exit() {
  [ "$started" = 1 ] && return 0
  if [ "${#pgids[@]}" -gt 0 ]; then stop_group "${pgids[@]}"; fi
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  rm -f "$envfile"
}
trap on_exit EXIT
trap 'echo "$tag: interrupted; stopping the fleet"; exit 1' INT TERM
fail() {  # LOG WHAT: prints the log's tail; the EXIT trap stops the fleet
  echo "$tag: $2; the last lines of its log ($1):"
  tail -n 60 "$1"
  exit 1
}

t0=$(date +%s.%N)
deadline=$(( $(date +%s) + timeout_s ))
for i in $(seq 0 $((replicas - 1))); do
  port=${ports[$i]}
  log=$state/replica$i.log
  env "${placement[$i]}" setsid "$python" -m vllm.entrypoints.openai.api_server "${args[@]}" \
    --port "$port" "${extra[@]}" "$@" > "$log" 2>&1 < /dev/null &
  pgids+=($!)
  replica_pgids+=($!)
  urls+=("http://127.0.0.1:$port")
  logs+=("$log")
  echo "$tag: replica $i on ${urls[$i]} (${placement[$i]}; log: $log)"
done
watchdog=$(start_watchdog "$PPID" "${pgids[@]}")
write_env

for i in $(seq 0 $((replicas - 1))); do
  wait_healthy "${urls[$i]}" "${replica_pgids[$i]}" "$deadline" || fail "${logs[$i]}" "replica $i $why"
done
t_replicas=$(date +%s.%N)

router_log=$state/router.log
setsid "$router" --host 127.0.0.1 --port "$router_port" --worker-urls "${urls[@]}" --policy "$policy" \
  --prometheus-host 127.0.0.1 --prometheus-port "$prometheus_port" "${router_extra[@]}" \
  > "$router_log" 2>&1 < /dev/null &
router_pgid=$!
pgids=("$router_pgid" "${pgids[@]}")
logs=("$router_log" "${logs[@]}")
kill "$watchdog" 2>/dev/null || true
watchdog=$(start_watchdog "$PPID" "${pgids[@]}")
write_env
echo "$tag: router ($policy) on $url, Prometheus on 127.0.0.1:$prometheus_port (log: $router_log)"
wait_healthy "$url" "$router_pgid" "$deadline" || fail "$router_log" "router $why"
t_router=$(date +%s.%N)
started=1

tree() {  # PGID: "RSS MiB, CPU s" of the process group
  ps -o rss=,cputimes= -g "$1" | awk '{r+=$1; c+=$2} END {printf "%.0f MiB RSS, %d s CPU", r/1024, c}'
}
printf '%s: healthy after %.1f s (replicas %.1f s, then router %.1f s); vLLM %s\n' "$tag" \
  "$(echo "$t_router - $t0" | bc)" "$(echo "$t_replicas - $t0" | bc)" \
  "$(echo "$t_router - $t_replicas" | bc)" "$(curl -s "${urls[0]}/version")"
echo "$tag: router: $(tree "$router_pgid")"
for i in $(seq 0 $((replicas - 1))); do echo "$tag: replica $i: $(tree "${replica_pgids[$i]}")"; done
