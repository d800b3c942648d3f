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
# KVGATE_ENGINE_MODEL (model dir or name; default: the local dummy-weight opt-125m, or on a GPU with
# >= 64 GiB the Llama-3.1-8B shape), KVGATE_MAX_MODEL_LEN, KVGATE_GPU_MEMORY_UTILIZATION (default 0.4),
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

# The default random-weight model, by the machine: without a GPU (or on a small one, e.g. 4 GB) the
# OPT-125m shape; on a GPU with at least KVGATE_GPU_8B_MIN_MIB (default 65536) MiB, the Llama-3.1-8B
# shape (16 GB of bf16 weights, which 0.4 of a 64 GiB card holds with room for its KV cache), whose
# prefill the cache visibly saves there: OPT-125m's saves nothing measurable on an H100/H200 at any
# size it holds (docs/gpu.md). KVGATE_ENGINE_MODEL wins.
gpu_mib=""
if nvidia-smi > /dev/null 2>&1; then
  gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | sed -n 1p | tr -d ' ')
fi
shape=opt-125m
[ -n "$gpu_mib" ] && [ "$gpu_mib" -ge "${KVGATE_GPU_8B_MIN_MIB:-65536}" ] && shape=llama-3.1-8b
default_model=$root/models/$shape-dummy
model=${KVGATE_ENGINE_MODEL:-$default_model}
# --enable-per-request-metrics: the engine's own TTFT in each response, beside the client's.
args=(--model "$model" --enforce-eager --enable-prompt-tokens-details --enable-per-request-metrics
      --host 127.0.0.1)
# The context: KVGATE_MAX_MODEL_LEN where set; on a CPU 1024 (the fixed 1 GiB KV cache below holds
# about 29k tokens of it); on a GPU the model's own (the smaller of its config's positions and its
# tokenizer's model_max_length: 8192 for the 8B shape, 2048 for OPT).
if [ -n "${KVGATE_MAX_MODEL_LEN:-}" ]; then args+=(--max-model-len "$KVGATE_MAX_MODEL_LEN")
elif [ -z "$gpu_mib" ]; then args+=(--max-model-len 1024); fi
if [ "$model" = "$default_model" ]; then
  [ -f "$model/kvgate-model.json" ] || "$python" "$here/make_model.py" "$model" --shape "$shape"
  args+=(--load-format dummy --served-model-name "$shape-dummy"
         --chat-template "$model/chat_template.jinja")
  served=$shape-dummy
else
  served=$model
fi
if [ -n "$gpu_mib" ]; then
  # A fraction of the GPU that leaves room for a second server beside this one (the negative
  # control's, launched while this one runs) and phase 2's in-process engine. The block size is the
  # engine's choice (16 on Hopper with FlashAttention), read back from its cache config.
  args+=(--gpu-memory-utilization "${KVGATE_GPU_MEMORY_UTILIZATION:-0.4}")
  # vLLM's CUDA sampler imports FlashInfer at module level unless this is 0; a host without FlashInfer
  # (our offline wheelhouse leaves it out) needs it, one with FlashInfer keeps vLLM's default.
  if ! "$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("flashinfer") is None)' 2> /dev/null; then
    export VLLM_USE_FLASHINFER_SAMPLER=${VLLM_USE_FLASHINFER_SAMPLER:-0}
  fi
  export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} VLLM_NO_USAGE_STATS=${VLLM_NO_USAGE_STATS:-1}
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
