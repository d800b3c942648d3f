#!/usr/bin/env bash
# vLLM on an offline GPU host, from the repository (or an unpacked kvgate-src of it): installs the
# wheelhouse (cmake/bundle/make_wheelhouse.sh's pieces) into KVGATE_VENV, builds `kvgate` against the
# Debian 12 packages make_bundle.sh carries (unpacked into a prefix, never over /), makes the default
# model for the GPU (engine.sh's rule: the Llama-3.1-8B shape on >= 64 GiB), and runs the phase-1 gate
# (`kvgate measure`) against the fixture's server at each size A/B/Q (a size listed twice runs twice);
# with KVGATE_HOST_NEGATIVE=1 also at the first size against a server started with
# --no-enable-prefix-caching (the negative control, which must fail). Before any server starts it
# measures the client's timing error on this host (kvgate_ttft_fidelity, no Python clients).
#
#   host_vllm.sh PIECES_DIR DEBS_DIR OUT [A/B/Q ...]      (sizes default to 2000/256/32 1000/3000/32)
#
# Environment: KVGATE_VENV [$KVGATE_HOST_WORK/venv], KVGATE_HOST_WORK [$HOME/kvgate-host],
# KVGATE_PYTHON [the python3 on PATH: the Python holding torch, which kvgate embeds], KVGATE_TRIALS,
# KVGATE_MAX_TRIALS, KVGATE_TIME_BUDGET_S, KVGATE_MAX_OUTPUT_TOKENS and the other kvgate settings.
# Figures and summary.md: `kvgate report` needs gnuplot, which GPU images lack; run
# `KVGATE_OUT=OUT/<size> kvgate report` where the results are collected.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
pieces=$(cd "${1:?usage: host_vllm.sh PIECES_DIR DEBS_DIR OUT [A/B/Q ...]}" && pwd)
debs=$(cd "${2:?usage: host_vllm.sh PIECES_DIR DEBS_DIR OUT [A/B/Q ...]}" && pwd)
out=$(realpath -m "${3:?usage: host_vllm.sh PIECES_DIR DEBS_DIR OUT [A/B/Q ...]}")
shift 3
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000/256/32 1000/3000/32)
work=${KVGATE_HOST_WORK:-$HOME/kvgate-host}
export KVGATE_VENV=${KVGATE_VENV:-$work/venv}
python=${KVGATE_PYTHON:-$(command -v python3)}
mkdir -p "$work" "$out"
log() { echo "host_vllm: $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
summary=$out/host.md
{ echo "# kvgate phase 1 on vLLM, $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo
  echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed -n 1p)"
  echo "- kvgate: $(cd "$root" && git describe --always --dirty 2> /dev/null || echo "(no git)")"; } > "$summary"

# 1. vLLM from the wheelhouse
t0=$(now)
bash "$here/install_wheelhouse.sh" "$pieces" "$KVGATE_VENV"
t1=$(now)
echo "- wheelhouse installed into $KVGATE_VENV in $(secs "$t0" "$t1") s" >> "$summary"

# 2. kvgate's build dependencies: the bundled .debs, unpacked into a prefix
prefix=$work/prefix
if [ ! -f "$prefix/.kvgate-done" ]; then
  rm -rf "$prefix" && mkdir -p "$prefix"
  for d in "$debs"/*.deb; do dpkg -x "$d" "$prefix"; done
  find "$prefix" -name '*.pc' -exec sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|" {} +
  touch "$prefix/.kvgate-done"
fi
multiarch=$(gcc -print-multiarch 2> /dev/null || echo "$(uname -m)-linux-gnu")
export CMAKE_PREFIX_PATH=$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export PKG_CONFIG_PATH=$prefix/usr/lib/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$prefix/usr/lib/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$prefix/usr/bin:$PATH
command -v bc > /dev/null || { mkdir -p "$work/bin"; printf '#!/bin/sh\nexec awk "BEGIN { print $(cat) }"\n' > "$work/bin/bc"; chmod +x "$work/bin/bc"; export PATH=$work/bin:$PATH; }

# 3. kvgate
build=$work/kvgate-build
generator="Unix Makefiles"; command -v ninja > /dev/null && generator=Ninja
t0=$(now)
cmake -S "$root" -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DKVGATE_FUZZ=OFF \
  -DPython_EXECUTABLE="$python" > "$work/configure.log" 2>&1 || { tail -n 40 "$work/configure.log"; exit 1; }
cmake --build "$build" --target kvgate_cli kvgate_ttft_fidelity -j "$(nproc)" > "$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; exit 1; }
kvgate=$(find "$build" -type f -name kvgate -perm -u+x | head -n1)
t1=$(now)
log "kvgate built in $(secs "$t0" "$t1") s: $kvgate"
echo "- kvgate configured + built (kvgate_cli, kvgate_ttft_fidelity) in $(secs "$t0" "$t1") s" >> "$summary"

# The client's timing error on this host (loopback oracle; no Python clients), before any server
# runs, so the cores are as the gate finds them.
"$build/bench/kvgate_ttft_fidelity" --python-clients none --json "$out/ttft_fidelity.json" > "$out/ttft_fidelity.txt" 2>&1 \
  && echo "- client timing (kvgate_ttft_fidelity): see ttft_fidelity.txt" >> "$summary" \
  || echo "- kvgate_ttft_fidelity failed (ttft_fidelity.txt)" >> "$summary"

# 4. the model the fixture picks for this GPU (made here: no weights travel)
gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | sed -n 1p | tr -d ' ')
shape=opt-125m; [ "$gpu_mib" -ge "${KVGATE_GPU_8B_MIN_MIB:-65536}" ] && shape=llama-3.1-8b
t0=$(now)
"$KVGATE_VENV/bin/python" "$root/cmake/engine/make_model.py" "$root/models/$shape-dummy" --shape "$shape"
echo "- model: $shape shape, random weights (made in $(secs "$t0" "$(now)") s)" >> "$summary"

# 5. the gate at each size, then the negative control
run_gate() {  # $1 state dir, $2 label, extra vllm args after
  local state=$1 label=$2; shift 2
  local t0 t1
  t0=$(now)
  bash "$root/cmake/engine/engine.sh" start "$state" "$@" || { echo "- $label: the server did not start (see $state/engine.log)" >> "$summary"; cp "$state/engine.log" "$out/$label-engine.log" 2> /dev/null; return 1; }
  t1=$(now)
  echo "- $label: server healthy in $(secs "$t0" "$t1") s; $(grep -m1 -o 'block_size=[0-9]*' "$state/engine.log" || true)" >> "$summary"
  # shellcheck disable=SC1091
  . "$state/engine.env"
  local run=0
  for s in "${gate_sizes[@]}"; do
    IFS=/ read -r a b q <<< "$s"
    run=$((run + 1))  # a size may be listed twice: each run has its own directory
    local dir=$out/$label-$run-$a-$b-$q rc=0
    mkdir -p "$dir"
    t0=$(now)
    (cd "$root" && "$kvgate" measure --url "$KVGATE_URL" --model "$KVGATE_MODEL" --out "$dir" \
      --context-a-tokens "$a" --context-b-tokens "$b" --query-tokens "$q") > "$dir/measure.log" 2>&1 || rc=$?
    t1=$(now)
    tail -n 15 "$dir/measure.log"
    echo "- $label $s: kvgate measure exit $rc in $(secs "$t0" "$t1") s ($label-$run-$a-$b-$q/)" >> "$summary"
  done
  grep -E "Using FlashAttention|block size|KV cache|Maximum concurrency|max_model_len" "$state/engine.log" | head -n 8 > "$out/$label-engine-config.txt" || true
  cp "$state/engine.log" "$out/$label-engine.log"
  bash "$root/cmake/engine/engine.sh" stop "$state"
}
gate_sizes=("${sizes[@]}")
run_gate "$work/engine" healthy || true
if [ "${KVGATE_HOST_NEGATIVE:-0}" = 1 ]; then
  gate_sizes=("${sizes[0]}")  # the control needs one size: the first
  run_gate "$work/engine-nocache" no-prefix-caching --no-enable-prefix-caching || true
fi
cat "$summary"
