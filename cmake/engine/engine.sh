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

stop_group() {  # $1 = process group id
  local pgid=$1
  kill -0 -- "-$pgid" 2>/dev/null || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "engine: process group $pgid ignored SIGTERM for 20 s; sending SIGKILL"
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

if [ "$cmd" = stop ]; then
  [ -f "$envfile" ] || { echo "engine: nothing to stop ($envfile absent)"; exit 0; }
  # shellcheck disable=SC1090
  . "$envfile"
  if [ -n "${KVGATE_ENGINE_PGID:-}" ]; then
    stop_group "$KVGATE_ENGINE_PGID"
    [ -n "${KVGATE_ENGINE_WATCHDOG:-}" ] && kill "$KVGATE_ENGINE_WATCHDOG" 2>/dev/null || true
    left=$(pgrep -g "$KVGATE_ENGINE_PGID" 2>/dev/null || true)
    [ -z "$left" ] || { echo "engine: processes left in group $KVGATE_ENGINE_PGID: $left"; exit 1; }
    echo "engine: stopped (process group $KVGATE_ENGINE_PGID, nothing left)"
  fi
  rm -f "$envfile"
  exit 0
fi

[ "$cmd" = start ] || { echo "engine.sh: unknown command '$cmd' (start|stop)"; exit 2; }

if [ -n "${KVGATE_URL:-}" ]; then
  echo "engine: KVGATE_URL=$KVGATE_URL is set; using that server, starting none"
  printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\n' "$KVGATE_URL" "${KVGATE_MODEL:-}" > "$envfile"
  exit 0
fi

venv=${KVGATE_VENV:-.venv}
python=$venv/bin/python
[ -x "$python" ] || { echo "engine: no Python at $python. Run: bash cmake/setup.sh (or set KVGATE_VENV)"; exit 1; }

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
if nvidia-smi >/dev/null 2>&1; then
  args+=(--gpu-memory-utilization 0.7)
else
  # CPU: a fixed 1 GiB KV cache (about 29k tokens at opt-125m's size) instead of a fraction of
  # the machine's RAM, and float32, which runs about 5x faster than bf16/fp16 on CPUs without AMX.
  export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
  args+=(--dtype float32)
fi

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
# shellcheck disable=SC2206
extra=(${KVGATE_ENGINE_ARGS:-})
start=$(date +%s.%N)
setsid "$python" -m vllm.entrypoints.openai.api_server "${args[@]}" --port "$port" "${extra[@]}" "$@" \
  > "$log" 2>&1 < /dev/null &
pgid=$!

# A ctest that is killed runs no cleanup fixture: a watchdog stops the engine when ctest is gone.
ctest_pid=$PPID
setsid bash -c "while kill -0 $ctest_pid 2>/dev/null; do sleep 2; done; kill -TERM -- -$pgid 2>/dev/null; sleep 10; kill -KILL -- -$pgid 2>/dev/null" \
  > /dev/null 2>&1 < /dev/null &
watchdog=$!
printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\nKVGATE_ENGINE_PGID=%q\nKVGATE_ENGINE_WATCHDOG=%q\nKVGATE_ENGINE_LOG=%q\n' \
  "$url" "$served" "$pgid" "$watchdog" "$log" > "$envfile"

deadline=$(( $(date +%s) + ${KVGATE_ENGINE_START_TIMEOUT_S:-600} ))
echo "engine: starting vLLM on $url (log: $log)"
while :; do
  if curl -sf "$url/health" > /dev/null 2>&1; then break; fi
  if ! kill -0 "$pgid" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
    kill -0 "$pgid" 2>/dev/null && why="not healthy within ${KVGATE_ENGINE_START_TIMEOUT_S:-600} s" || why="exited"
    echo "engine: vLLM $why; the last lines of its log:"
    tail -n 60 "$log"
    stop_group "$pgid"
    kill "$watchdog" 2>/dev/null || true
    rm -f "$envfile"
    exit 1
  fi
  sleep 0.25
done
healthy=$(date +%s.%N)
rss_kib=$(ps -o rss= -g "$pgid" | awk '{s+=$1} END {print s}')
printf 'engine: healthy after %.1f s; RSS of its process tree %.0f MiB; vLLM %s\n' \
  "$(echo "$healthy - $start" | bc)" "$(echo "$rss_kib / 1024" | bc)" "$(curl -s "$url/version")"
