#!/usr/bin/env bash
# The seed's phase1_server.sh as a CTest fixture: starts `vllm serve` and waits until it is healthy,
# or stops it again with its whole process tree.
#
#   engine.sh start  STATE_DIR [extra vllm args...]  writes STATE_DIR/engine.env (URL, MODEL, PGID)
#   engine.sh launch STATE_DIR [extra vllm args...]  the same, without waiting until it is healthy
#   engine.sh wait   STATE_DIR                       waits until what `launch` started is healthy
#   engine.sh stop   STATE_DIR
#
# STATE_DIR belongs to the run that started it (fixture_lib.sh): another run's start fails while
# that run is going, and its stop leaves that run's server alone.
# Runs from the repository root, as the gpu tests and the CLI do, so KVGATE_VENV's default `.venv`
# (settings.hpp) is the repository's.
# Environment: KVGATE_URL (a server already running: nothing is started), KVGATE_VENV,
# KVGATE_ENGINE_MODEL (model dir or name; default: the local dummy-weight opt-125m),
# KVGATE_ENGINE_START_TIMEOUT_S (default 600), KVGATE_ENGINE_ARGS (more vllm flags).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
usage="usage: engine.sh start|launch|wait|stop STATE_DIR [vllm args...]"
cmd=${1:?$usage}
state=${2:?$usage}
shift 2
mkdir -p "$state"
state=$(cd "$state" && pwd)
cd "$root"
envfile=$state/engine.env
log=$state/engine.log
fixture_tag=engine
# shellcheck source=fixture_lib.sh
. "$here/fixture_lib.sh"

if [ "$cmd" = stop ]; then
  fixture_stop "$envfile"
  exit
fi

# Waits for the server `launch` started to answer /health (nothing to wait for with KVGATE_URL).
wait_healthy() {
  # shellcheck disable=SC1090
  . "$envfile"
  [ -n "${KVGATE_ENGINE_PGID:-}" ] || return 0
  fixture_wait_healthy "$KVGATE_URL" "$KVGATE_ENGINE_PGID" "${KVGATE_ENGINE_START_TIMEOUT_S:-600}" \
    "$KVGATE_ENGINE_LOG" "$KVGATE_ENGINE_WATCHDOG" "$envfile" vLLM
  local healthy rss_kib
  healthy=$(date +%s.%N)
  rss_kib=$(ps -o rss= -g "$KVGATE_ENGINE_PGID" | awk '{s+=$1} END {print s}')
  printf 'engine: healthy %.1f s after its launch; RSS of its process tree %.0f MiB; vLLM %s\n' \
    "$(echo "$healthy - $KVGATE_ENGINE_LAUNCHED" | bc)" "$(echo "$rss_kib / 1024" | bc)" "$(curl -s "$KVGATE_URL/version")"
}

if [ "$cmd" = wait ]; then
  [ -f "$envfile" ] || { echo "engine: nothing launched ($envfile absent): run 'engine.sh launch' first"; exit 1; }
  wait_healthy
  exit
fi

# start = launch + wait. `launch` returns once the server process runs, so that its start-up can
# overlap another's (an idle vLLM server uses about 1.5 % of a core).
case "$cmd" in start|launch) ;; *) echo "engine.sh: unknown command '$cmd'; $usage"; exit 2 ;; esac
fixture_claim "$state"

if [ -n "${KVGATE_URL:-}" ]; then
  echo "engine: KVGATE_URL=$KVGATE_URL is set; using that server, starting none"
  printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\n' "$KVGATE_URL" "${KVGATE_MODEL:-}" > "$envfile"
  exit 0
fi

venv=${KVGATE_VENV:-.venv}
python=$venv/bin/python
if [ ! -x "$python" ]; then
  echo "engine: no Python at $python. Run: bash cmake/setup.sh (or set KVGATE_VENV)"
  [ "${KVGATE_REQUIRE_ENGINE:-}" = 1 ] && exit 1
  # As the README says: no engine is a skip (with this message) for a user without one, and a
  # failure where the build requires one (above).
  echo "engine: starting none; the tests that need it skip (-DKVGATE_REQUIRE_ENGINE=ON makes this a failure)"
  : > "$envfile"
  exit 0
fi

default_model=$root/models/opt-125m-dummy
model=${KVGATE_ENGINE_MODEL:-$default_model}
# --enable-per-request-metrics: the engine's own TTFT in each response, beside the client's.
args=(--model "$model" --max-model-len 1024 --enforce-eager --enable-prompt-tokens-details --enable-per-request-metrics
      --host 127.0.0.1)
if [ "$model" = "$default_model" ]; then
  [ -f "$model/kvgate-model.json" ] || "$python" "$here/make_model.py" "$model"
  args+=(--load-format dummy --served-model-name opt-125m-dummy
         --chat-template "$model/chat_template.jinja")
  served=opt-125m-dummy
else
  served=$model
fi
if nvidia-smi >/dev/null 2>&1; then
  args+=(--gpu-memory-utilization 0.7)
else
  # CPU: a fixed 1 GiB KV cache (about 29k tokens at opt-125m's size) instead of a fraction of
  # the machine's RAM, and float32, which runs about 5x faster than bf16/fp16 on CPUs without AMX.
  export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
  args+=(--dtype float32)
  # Every CPU to the model's threads: vLLM's auto binding keeps one core for its scheduler, which on
  # 2 cores halves the compute (a cold 773-token prefill took 2.8 s instead of 1.4 s).
  VLLM_CPU_OMP_THREADS_BIND=${VLLM_CPU_OMP_THREADS_BIND:-$("$python" -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')}
  export VLLM_CPU_OMP_THREADS_BIND
  # The model worker inside the engine-core process, as vLLM runs one GPU, instead of a third spawned
  # process: healthy after 23 s instead of 34 s on 2 cores, with the same TTFTs. vLLM's CPU platform
  # allows it only with VLLM_ENABLE_V1_MULTIPROCESSING=0; the server keeps its engine-core process.
  export VLLM_ENABLE_V1_MULTIPROCESSING=${VLLM_ENABLE_V1_MULTIPROCESSING:-0}
  args+=(--distributed-executor-backend uni)
fi

port=$(fixture_free_port "$python")
url=http://127.0.0.1:$port
# shellcheck disable=SC2206
extra=(${KVGATE_ENGINE_ARGS:-})
launched=$(date +%s.%N)
setsid "$python" -m vllm.entrypoints.openai.api_server "${args[@]}" --port "$port" "${extra[@]}" "$@" \
  > "$log" 2>&1 < /dev/null &
pgid=$!
fixture_start_watchdog "$pgid"
watchdog=$fixture_watchdog
printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\nKVGATE_ENGINE_PGID=%q\nKVGATE_ENGINE_WATCHDOG=%q\nKVGATE_ENGINE_LOG=%q\nKVGATE_ENGINE_LAUNCHED=%q\n' \
  "$url" "$served" "$pgid" "$watchdog" "$log" "$launched" > "$envfile"

echo "engine: starting vLLM on $url (log: $log)"
[ "$cmd" = launch ] || wait_healthy
