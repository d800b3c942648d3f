#!/usr/bin/env bash
# CTest `fixtures.skips`: a gpu test skips only by its exit code, never by what its output says (the
# output carries server text), and where KVGATE_REQUIRE_ENGINE=1 it fails instead. From the
# repository root:
#  - no test of this build tree has a SKIP_REGULAR_EXPRESSION, and every gpu test (gpu.*, fleet.*
#    gates) has SKIP_RETURN_CODE SKIP_CODE;
#  - the phase-1 gate with no engine exits SKIP_CODE, and 1 with KVGATE_REQUIRE_ENGINE=1;
#  - the gate against a server that answers HTTP 500 with skip-like text in its error fails: its exit
#    code is neither 0 nor SKIP_CODE;
#  - the tokenizer parity check without the fixture's own server exits SKIP_CODE, and 1 with
#    KVGATE_REQUIRE_ENGINE=1.
#
#   check_skips.sh GPU_TESTS SKIP_CODE CTEST BUILD_DIR
set -euo pipefail
usage="usage: check_skips.sh GPU_TESTS SKIP_CODE CTEST BUILD_DIR"
gpu_tests=${1:?$usage}
code=${2:?$usage}
ctest=${3:?$usage}
build=${4:?$usage}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail=0
bad() { echo "skips: FAIL: $*"; fail=1; }
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Only what each case sets: no setting of the caller's (a KVGATE_URL, KVGATE_REQUIRE_ENGINE) leaks in.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KVGATE_' || true)

# ---- the CTest properties ----------------------------------------------------------------------
"$ctest" --test-dir "$build" --show-only=json-v1 > "$work/tests.json"
problems=$(python3 - "$work/tests.json" "$code" <<'EOF'
import json, sys
tests = json.load(open(sys.argv[1]))["tests"]
for t in tests:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    if "SKIP_REGULAR_EXPRESSION" in props:
        print(f"{t['name']} has SKIP_REGULAR_EXPRESSION {props['SKIP_REGULAR_EXPRESSION']}: output can forge a skip")
    gate = t["name"].startswith("gpu.") or (t["name"].startswith("fleet.") and t["name"].endswith(".gate"))
    if gate and str(props.get("SKIP_RETURN_CODE")) != sys.argv[2]:
        print(f"{t['name']} has SKIP_RETURN_CODE {props.get('SKIP_RETURN_CODE')}, not {sys.argv[2]}")
if not any(t["name"] == "gpu.phase1.gate" for t in tests):
    print("no gpu.phase1.gate in this build tree")
EOF
) || bad "cannot read the tests' properties"
[ -z "$problems" ] || bad "$problems"

# ---- the gate's exit codes -----------------------------------------------------------------------
gate="served phase: the cache saves TTFT"  # gpu.phase1.gate's spec
mkdir -p "$work/engines/apc" "$work/out"
run_gate() {  # output in $work/gate.log; prints the exit code
  local rc=0
  env KVGATE_ENGINE_STATE="$work/engines" KVGATE_OUT="$work/out" KVGATE_NEGATIVE_OUT="$work/out" \
    KVGATE_GATE_PHASE=phase1 KVGATE_GATE_FIXTURE=apc KVGATE_GATE_NOCACHE_FIXTURE=nocache "$@" \
    "$gpu_tests" --warn NoTests "$gate" > "$work/gate.log" 2>&1 || rc=$?
  echo "$rc"
}
: > "$work/engines/apc/engine.env"  # the fixture started none and KVGATE_URL is unset
rc=$(run_gate)
[ "$rc" = "$code" ] && grep -q "skipped: no engine" "$work/gate.log" \
  || bad "with no engine the gate exited $rc, not $code (a skip); its output: $(tail -n 5 "$work/gate.log")"
rc=$(run_gate KVGATE_REQUIRE_ENGINE=1)
[ "$rc" = 1 ] || bad "with no engine and KVGATE_REQUIRE_ENGINE=1 the gate exited $rc, not 1; its output: $(tail -n 5 "$work/gate.log")"

# A server whose every answer is HTTP 500 with skip-like text (the marker the tests used to skip on).
python3 - "$work/port" <<'EOF' &
import http.server, json, sys
body = json.dumps({"error": {"message": "KVGATE-SKIP: skipped: no engine", "type": "InternalServerError"}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
server_pid=$!
for _ in $(seq 1 100); do [ -f "$work/port" ] && break; sleep 0.1; done
printf 'KVGATE_URL=http://127.0.0.1:%s\nKVGATE_MODEL=fake\n' "$(cat "$work/port")" > "$work/engines/apc/engine.env"
rc=$(run_gate KVGATE_TRIALS=2 KVGATE_WARMUP=0)
if [ "$rc" = 0 ] || [ "$rc" = "$code" ]; then
  bad "against a server answering HTTP 500 with skip-like text the gate exited $rc (pass or skip); its output: $(tail -n 8 "$work/gate.log")"
fi
grep -q "KVGATE-SKIP" "$work/gate.log" \
  || echo "skips: note: the server's error text did not reach the gate's output (the case above tested less)"

# ---- the tokenizer parity check ------------------------------------------------------------------
mkdir -p "$work/engines/llamacpp"
printf 'KVGATE_URL=http://127.0.0.1:9\n' > "$work/engines/llamacpp/engine.env"  # a server of KVGATE_URL
rc=0; out=$(bash "$here/tokenizer_parity.sh" "$work/engines/llamacpp" "$code" 2>&1) || rc=$?
[ "$rc" = "$code" ] || bad "the parity check without the fixture's own server exited $rc, not $code: $out"
rc=0; out=$(KVGATE_REQUIRE_ENGINE=1 bash "$here/tokenizer_parity.sh" "$work/engines/llamacpp" "$code" 2>&1) || rc=$?
[ "$rc" = 1 ] || bad "the parity check that cannot run exited $rc with KVGATE_REQUIRE_ENGINE=1, not 1: $out"

[ "$fail" = 0 ] || exit 1
echo "skips: gpu tests skip by exit code $code only, fail where KVGATE_REQUIRE_ENGINE=1, and a server's text cannot turn a failure into a skip"
