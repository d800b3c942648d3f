#!/usr/bin/env bash
# llama.cpp's `llama-server` as a CTest fixture, like engine.sh is for vLLM: starts it on a free
# loopback port and waits until it is healthy, or stops it again with its whole process tree.
#
#   llamacpp.sh start STATE_DIR [extra llama-server args...]   writes STATE_DIR/engine.env
#   llamacpp.sh stop  STATE_DIR
#
# engine.env: KVGATE_URL, KVGATE_MODEL (served name), KVGATE_ENGINE=llamacpp,
# KVGATE_ENGINE_VERSION, KVGATE_ENGINE_PGID, KVGATE_ENGINE_WATCHDOG, KVGATE_ENGINE_LOG, and the
# settings below as the server got them. KVGATE_LLAMACPP_CACHE_PROMPT=0 marks the no-cache
# variant: `--no-cache-prompt` only sets the server's default and a request can turn caching back
# on, so a client must also send "cache_prompt": false when it reads 0 here.
#
# Environment (defaults in brackets):
#   KVGATE_URL                    a server already running: nothing is started
#   KVGATE_LLAMA_SERVER           the binary [cmake/llamacpp/build.sh's cached build, built if absent]
#   KVGATE_LLAMACPP_MODEL         a GGUF [models/opt-125m-dummy-ctx<CTX>.gguf, made if absent]
#   KVGATE_LLAMACPP_SLOTS         parallel sequences, -np [1]
#   KVGATE_LLAMACPP_CTX           context per slot [2048]; the default model is made with it
#   KVGATE_LLAMACPP_CACHE_PROMPT  1, or 0 for the no-cache negative control [1]
#   KVGATE_LLAMACPP_CACHE_REUSE   --cache-reuse: min chunk shifted after a divergence, 0 = off [0]
#   KVGATE_LLAMACPP_CACHE_RAM     --cache-ram MiB, the host prompt cache [0 = off; see below]
#   KVGATE_LLAMACPP_FLASH_ATTN    -fa on|off|auto [off without a GPU, auto with one]
#   KVGATE_LLAMACPP_THREADS       -t and -tb [nproc]
#   KVGATE_LLAMACPP_ARGS          more llama-server flags
#   KVGATE_ENGINE_START_TIMEOUT_S [120]
#
# The host prompt cache is off by default: with it (llama-server's default, 8192 MiB) the server
# copies the slot's KV to host RAM before serving a prompt that does not match the slot, a cost a
# miss pays and a hit does not, outside the server's prompt time -- a gate would pass on cache
# management, not on prefill saved -- and it can bring back prompts the slot has evicted. Off, the
# fixture measures the slot's KV reuse alone, the mechanism that corresponds to vLLM's prefix cache;
# set KVGATE_LLAMACPP_CACHE_RAM to test the host cache on purpose (engine.env records it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmd=${1:?usage: llamacpp.sh start|stop STATE_DIR [llama-server args...]}
state=${2:?usage: llamacpp.sh start|stop STATE_DIR [llama-server args...]}
shift 2
mkdir -p "$state"
envfile=$state/engine.env
log=$state/engine.log
fixture_tag=llamacpp
# shellcheck source=fixture_lib.sh
. "$here/fixture_lib.sh"

if [ "$cmd" = stop ]; then
  fixture_stop "$envfile"
  exit
fi
[ "$cmd" = start ] || { echo "llamacpp.sh: unknown command '$cmd' (start|stop)"; exit 2; }
fixture_claim "$state"

if [ -n "${KVGATE_URL:-}" ]; then
  echo "llamacpp: KVGATE_URL=$KVGATE_URL is set; using that server, starting none"
  printf 'KVGATE_URL=%q\nKVGATE_MODEL=%q\nKVGATE_ENGINE=llamacpp\n' "$KVGATE_URL" "${KVGATE_MODEL:-}" > "$envfile"
  exit 0
fi

need_int() {  # $1 = variable name, $2 = value, $3 = minimum
  [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] \
    || { echo "llamacpp: $1='$2' must be an integer >= $3"; exit 2; }
}
slots=${KVGATE_LLAMACPP_SLOTS:-1};             need_int KVGATE_LLAMACPP_SLOTS "$slots" 1
ctx=${KVGATE_LLAMACPP_CTX:-2048};              need_int KVGATE_LLAMACPP_CTX "$ctx" 16
cache_prompt=${KVGATE_LLAMACPP_CACHE_PROMPT:-1}
[[ "$cache_prompt" =~ ^[01]$ ]] || { echo "llamacpp: KVGATE_LLAMACPP_CACHE_PROMPT='$cache_prompt' must be 1 or 0"; exit 2; }
cache_reuse=${KVGATE_LLAMACPP_CACHE_REUSE:-0}; need_int KVGATE_LLAMACPP_CACHE_REUSE "$cache_reuse" 0
cache_ram=${KVGATE_LLAMACPP_CACHE_RAM:-0};     need_int KVGATE_LLAMACPP_CACHE_RAM "$cache_ram" 0
threads=${KVGATE_LLAMACPP_THREADS:-$(nproc)};  need_int KVGATE_LLAMACPP_THREADS "$threads" 1
gpu=0
nvidia-smi > /dev/null 2>&1 && gpu=1
if [ "$gpu" = 1 ]; then fa_default=auto; else fa_default=off; fi
# On CPU, flash attention made a short suffix after a long cached prefix about 3x slower.
flash_attn=${KVGATE_LLAMACPP_FLASH_ATTN:-$fa_default}
[[ "$flash_attn" =~ ^(on|off|auto)$ ]] || { echo "llamacpp: KVGATE_LLAMACPP_FLASH_ATTN='$flash_attn' must be on, off or auto"; exit 2; }

server=${KVGATE_LLAMA_SERVER:-}
if [ -z "$server" ]; then
  server=$(bash "$root/cmake/llamacpp/build.sh")
fi
[ -x "$server" ] || { echo "llamacpp: no llama-server at $server (KVGATE_LLAMA_SERVER, or run: bash cmake/llamacpp/build.sh)"; exit 1; }
version=$("$server" --version 2>&1 | sed -n 's/^version: /llama.cpp /p' | sed -n 1p)
[ -n "$version" ] || { echo "llamacpp: $server --version does not run; its output:"; "$server" --version 2>&1 | tail -n 20; exit 1; }

python=${KVGATE_VENV:-$root/.venv}/bin/python
[ -x "$python" ] || python=$(command -v python3)
model=${KVGATE_LLAMACPP_MODEL:-}
if [ -z "$model" ]; then
  model_dir=$root/models/opt-125m-dummy
  model=$root/models/opt-125m-dummy-ctx$ctx.gguf
  [ -f "$model_dir/kvgate-model.json" ] || "$python" "$here/make_model.py" "$model_dir"
  "$python" "$here/make_gguf.py" "$model_dir" "$model" --ctx "$ctx"
  served=opt-125m-dummy
else
  [ -f "$model" ] || { echo "llamacpp: KVGATE_LLAMACPP_MODEL=$model does not exist"; exit 1; }
  served=$(basename "$model" .gguf)
fi

port=$(fixture_free_port "$python")
url=http://127.0.0.1:$port
# -c is the whole KV cache, shared by the slots: each slot gets CTX.
args=(-m "$model" --alias "$served" --host 127.0.0.1 --port "$port"
      -c $(( ctx * slots )) -np "$slots" -t "$threads" -tb "$threads" -fa "$flash_attn"
      --cache-reuse "$cache_reuse" --cache-ram "$cache_ram" --metrics)
[ "$cache_prompt" = 1 ] || args+=(--no-cache-prompt)
[ "$gpu" = 1 ] && args+=(-ngl 999)
# shellcheck disable=SC2206
extra=(${KVGATE_LLAMACPP_ARGS:-})
start=$(date +%s.%N)
setsid "$server" "${args[@]}" "${extra[@]}" "$@" > "$log" 2>&1 < /dev/null &
pgid=$!
fixture_start_watchdog "$pgid"
watchdog=$fixture_watchdog
printf '%s=%q\n' KVGATE_URL "$url" KVGATE_MODEL "$served" KVGATE_ENGINE llamacpp \
  KVGATE_ENGINE_VERSION "$version" KVGATE_ENGINE_PGID "$pgid" KVGATE_ENGINE_WATCHDOG "$watchdog" \
  KVGATE_ENGINE_LOG "$log" KVGATE_LLAMACPP_SLOTS "$slots" KVGATE_LLAMACPP_CTX "$ctx" \
  KVGATE_LLAMACPP_CACHE_PROMPT "$cache_prompt" KVGATE_LLAMACPP_CACHE_REUSE "$cache_reuse" \
  KVGATE_LLAMACPP_CACHE_RAM "$cache_ram" KVGATE_LLAMACPP_FLASH_ATTN "$flash_attn" > "$envfile"

echo "llamacpp: starting llama-server on $url (log: $log)"
fixture_wait_healthy "$url" "$pgid" "${KVGATE_ENGINE_START_TIMEOUT_S:-120}" "$log" "$watchdog" "$envfile" llama-server
healthy=$(date +%s.%N)
rss_kib=$(ps -o rss= -g "$pgid" | awk '{s+=$1} END {print s}')
printf 'llamacpp: healthy after %.1f s; RSS %.0f MiB; %s; slots %s x %s tokens, cache_prompt %s, cache-reuse %s, cache-ram %s MiB, -fa %s\n' \
  "$(echo "$healthy - $start" | bc)" "$(echo "$rss_kib / 1024" | bc)" "$version" \
  "$slots" "$ctx" "$cache_prompt" "$cache_reuse" "$cache_ram" "$flash_attn"
