#!/usr/bin/env bash
# The seed's phase1_server.sh as a CTest fixture: starts `vllm serve` and waits until it is healthy,
# or stops it again with its whole process tree.
#
#   engine.sh start STATE_DIR [extra vllm args...]   writes STATE_DIR/engine.env (URL, MODEL, PGID)
#   engine.sh stop  STATE_DIR
#
# Runs from the repository root, as the gpu tests and the CLI do, so KVGATE_VENV's default `.venv`
# (settings.hpp) is the repository's.
# Environment: KVGATE_URL (a server already running: nothing is started), KVGATE_VENV,
# KVGATE_ENGINE_MODEL (model dir or name; default: the local dummy-weight opt-125m),
# KVGATE_ENGINE_START_TIMEOUT_S (default 600), KVGATE_ENGINE_ARGS (more vllm flags).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmd=${1:?usage: engine.sh start|stop STATE_DIR [vllm args...]}
state=${2:?usage: engine.sh start|stop STATE_DIR [vllm args...]}
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

[ "$cmd" = start ] || { echo "engine.sh: unknown command '$cmd' (start|stop)"; exit 2; }

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
fi

port=$(fixture_free_port "$python")
url=http://127.0.0.1:$port
# shellcheck disable=SC2206
extra=(${KVGATE_ENGINE_ARGS:-})
start=$(date +%s.%N)
setsid "$python" -m vllm.entrypoints.openai.api_server "${args[@]}" --port "$port" "${extra[@]}" "$@" \
  > "$log" 2>&1 < /dev/null &
pgid=$!
fixture_start_watchdog "$pgid"
watchdog=$fixture_watchdog
printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\nKVGATE_ENGINE_PGID=%q\nKVGATE_ENGINE_WATCHDOG=%q\nKVGATE_ENGINE_LOG=%q\n' \
  "$url" "$served" "$pgid" "$watchdog" "$log" > "$envfile"

echo "engine: starting vLLM on $url (log: $log)"
fixture_wait_healthy "$url" "$pgid" "${KVGATE_ENGINE_START_TIMEOUT_S:-600}" "$log" "$watchdog" "$envfile" vLLM
healthy=$(date +%s.%N)
rss_kib=$(ps -o rss= -g "$pgid" | awk '{s+=$1} END {print s}')
printf 'engine: healthy after %.1f s; RSS of its process tree %.0f MiB; vLLM %s\n' \
  "$(echo "$healthy - $start" | bc)" "$(echo "$rss_kib / 1024" | bc)" "$(curl -s "$url/version")"
