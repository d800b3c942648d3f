#!/usr/bin/env bash
# Real-vLLM demonstrations of the regressions the per-request reuse check and the baseline gate
# catch (issue 11), each against the repository's CPU vLLM fixture (cmake/engine/engine.sh):
#
#   bench/reuse_demos.sh template  OUT   a chat template with a random request id inside A
#   bench/reuse_demos.sh eviction  OUT   a KV cache of 10 blocks and other traffic between warm and query
#   bench/reuse_demos.sh healthy   OUT [N]  one baseline run, then N (5) runs compared with it
#   bench/reuse_demos.sh blocksize OUT   a baseline at the CPU default block (128), then a run at block 512 against it
#   bench/reuse_demos.sh block512  OUT   block 512 alone: a hit reuses 512 of its 768-token warm prompt
#   bench/reuse_demos.sh caching_off OUT the server started with --no-enable-prefix-caching
#   bench/reuse_demos.sh time_mid  OUT   Qwen2.5's ChatML template with a time of day in its system prompt
#   bench/reuse_demos.sh time_first OUT  the same with the time of day before the system header
#   bench/reuse_demos.sh load      OUT [N]  N (5) healthy runs while a busy loop holds one core throughout
#
# KVGATE_DEMO_CLI (default build/ci/tools/kvgate); KVGATE_TRIALS etc. pass through to the runs.
# Each run's results and summary go to OUT/<run>/; the console shows each verdict.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
demo=${1:?usage: reuse_demos.sh template|eviction|healthy|blocksize|block512|caching_off|time_mid|time_first|load OUT [N]}
out=$(realpath -m "${2:?name the output directory}")
cli=${KVGATE_DEMO_CLI:-build/ci/tools/kvgate}
state=$out/engine
mkdir -p "$out"

start() {  # start [vllm args...]
  bash cmake/engine/engine.sh start "$state" "$@" > "$out/engine-start.log" 2>&1 ||
    { tail -n 30 "$out/engine-start.log"; exit 1; }
  # shellcheck disable=SC1091
  . "$state/engine.env"
}
stop() { bash cmake/engine/engine.sh stop "$state" > /dev/null 2>&1 || true; }
trap stop EXIT
measure() {  # measure RUN [kvgate flags...]
  local run=$1
  shift
  echo "== $run"
  "$cli" measure --url "$KVGATE_URL" --model "$KVGATE_MODEL" --out "$out/$run" "$@" > "$out/$run.log" 2>&1 || true
  python3 - "$out/$run/results_phase1.json" << 'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d["verdict"]
print(v["outcome"] + ": " + v["reason"])
if v.get("fix"): print("fix: " + v["fix"])
b = d.get("baseline")
if b: print("baseline: " + b["outcome"] + ": " + b["reason"])
PY
}

case $demo in
  template)
    # A request id drawn per rendering, after the first 1500 characters of the conversation (inside A).
    tmpl=$out/request_id_template.jinja
    printf '%s' "{% for message in messages %}{% if loop.first %}{{ message['content'][:1500] }} [request {{ range(100000) | random }}] {{ message['content'][1500:] }}{% else %}{{ message['content'] }}{% endif %}{% endfor %}" > "$tmpl"
    start --chat-template "$tmpl"
    measure template
    ;;
  eviction)
    # 10 blocks of 128 tokens (vLLM's CPU block) hold the warmed [A,B] (7 blocks) and not also
    # another ~500-token prompt (4 blocks): the other traffic, sent without pause, evicts warmed
    # blocks between the warm-up and the query.
    start --num-gpu-blocks-override 10
    python3 - "$KVGATE_URL" "$KVGATE_MODEL" > "$out/traffic.log" 2>&1 << 'PY' &
import json, random, sys, urllib.request
url, model = sys.argv[1], sys.argv[2]
words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
while True:
    text = " ".join(random.choice(words) + str(random.randint(0, 999)) for _ in range(150))
    body = json.dumps({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": text}]}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/v1/chat/completions", body,
                                                      {"Content-Type": "application/json"}), timeout=60).read()
    except Exception as e:
        print(e, flush=True)
PY
    traffic=$!
    trap 'kill $traffic 2> /dev/null; stop' EXIT
    measure eviction --settle-ms 1500
    ;;
  healthy)
    start
    measure baseline
    for i in $(seq 1 "${3:-5}"); do measure "healthy-$i" --baseline "$out/baseline"; done
    ;;
  blocksize)
    start
    measure baseline-block128
    stop
    start --block-size 512
    measure block512 --baseline "$out/baseline-block128"
    ;;
  block512)
    start --block-size 512
    measure block512
    ;;
  caching_off)
    start --no-enable-prefix-caching
    measure caching_off
    ;;
  time_mid | time_first)
    # vLLM's CPU attention takes multiples of 32 only; ChatML's header straddles blocks at 32 as at 16.
    tmpl=tests/data/templates/chatml_time_of_day.jinja
    [ "$demo" = time_first ] && tmpl=tests/data/templates/chatml_time_first.jinja
    start --chat-template "$tmpl" --block-size 32
    measure "$demo"
    ;;
  load)
    start
    # One core busy for every run (bounded: it dies with the demo, or after an hour).
    timeout 3600 bash -c 'while :; do :; done' &
    busy=$!
    trap 'kill $busy 2> /dev/null; stop' EXIT
    for i in $(seq 1 "${3:-5}"); do measure "load-$i"; done
    ;;
  *) echo "reuse_demos: unknown demo '$demo'" >&2; exit 2 ;;
esac
