#!/usr/bin/env bash
# The long libFuzzer campaign on the SSE parser and the stream reader (ASan + UBSan), then the
# corpus merged back into tests/fuzz/corpus, minimized.
#   tests/fuzz/run.sh [RUNS [JOBS]]        RUNS inputs in all (default 10000000), JOBS processes (1)
# Needs clang++ and libFuzzer (Debian 12: clang libclang-rt-14-dev). Builds build/fuzz-clang, or
# uses a prebuilt fuzzer from KVGATE_FUZZ_BIN. KVGATE_FUZZ_CORPUS_OUT names where the minimized
# corpus goes (default: tests/fuzz/corpus itself); KVGATE_FUZZ_LOGS keeps the per-job logs;
# KVGATE_FUZZ_MAX_SECONDS stops each job after that long even if RUNS are not done.
# A finding is written to tests/fuzz/crash-* (or KVGATE_FUZZ_CORPUS_OUT/..) and makes this fail;
# reproduce it with `kvgate_sse_fuzzer FILE` or `kvgate_sse_fuzz_driver FILE`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-10000000}
jobs=${2:-1}
corpus_out=${KVGATE_FUZZ_CORPUS_OUT:-$here/corpus}

bin=${KVGATE_FUZZ_BIN:-}
if [ -z "$bin" ]; then
  build=$root/build/fuzz-clang
  cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKVGATE_WARNINGS_AS_ERRORS=ON > /dev/null
  cmake --build "$build" --target kvgate_sse_fuzzer -j2
  bin=$build/tests/fuzz/kvgate_sse_fuzzer
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seeds" "$work/new" "$work/min" "$corpus_out"
# A seed is a plain stream; as a fuzzer input it gets a control byte 0: one read, HTTP 200.
for f in "$here"/seeds/*.sse; do
  { cat "$f"; printf '\0'; } > "$work/seeds/$(basename "$f" .sse)"
done

# Inputs up to 1 KiB: a few whole events in any cut; longer ones add bytes, not parser states.
flags=(-max_len=1024 -print_final_stats=1 -artifact_prefix="$(dirname "$corpus_out")/")
[ -n "${KVGATE_FUZZ_MAX_SECONDS:-}" ] && flags+=(-max_total_time="$KVGATE_FUZZ_MAX_SECONDS")
echo "run.sh: $runs inputs in $jobs job(s): $bin -runs=$(( runs / jobs )) ${flags[*]} NEW $here/corpus SEEDS"
t0=$(date +%s)
cd "$work"
status=0
if [ "$jobs" -eq 1 ]; then
  "$bin" -runs="$runs" "${flags[@]}" "$work/new" "$here/corpus" "$work/seeds" > fuzz-0.log 2>&1 || status=$?
else
  # Independent processes sharing the new-inputs directory; each logs to fuzz-N.log.
  "$bin" -jobs="$jobs" -workers="$jobs" -runs=$(( runs / jobs )) "${flags[@]}" \
    "$work/new" "$here/corpus" "$work/seeds" > /dev/null 2>&1 || status=$?
fi
t1=$(date +%s)
[ -n "${KVGATE_FUZZ_LOGS:-}" ] && mkdir -p "$KVGATE_FUZZ_LOGS" && cp fuzz-*.log "$KVGATE_FUZZ_LOGS/"
total=0
for log in fuzz-*.log; do
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  total=$(( total + ${n:-0} ))
  echo "$log: $(grep -E '^#[0-9]+' "$log" | tail -1)"
  grep -E "ERROR|SSE FUZZ|runtime error|deadly signal" "$log" | head -20 || true
done
secs=$(( t1 - t0 > 0 ? t1 - t0 : 1 ))
echo "run.sh: $total inputs in $secs s wall ($(( total / secs )) exec/s in all), exit status $status"
[ "$status" -eq 0 ] || { echo "run.sh: FINDINGS (see the logs above and crash-* files)"; exit 1; }

# Keep what adds coverage: the old corpus, the new inputs and the seeds, minimized.
"$bin" -merge=1 "${flags[@]}" "$work/min" "$here/corpus" "$work/new" "$work/seeds" > merge.log 2>&1
rm -f "$corpus_out"/*
cp "$work/min"/* "$corpus_out/"
echo "run.sh: corpus $(ls "$corpus_out" | wc -l) files, $(du -sk "$corpus_out" | cut -f1) KiB in $corpus_out"
