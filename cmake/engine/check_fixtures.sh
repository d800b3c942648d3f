#!/usr/bin/env bash
# CTest `fixtures.state`: what the engine fixtures and the clear step promise about shared state,
# against a fake llama-server (a Python stub that answers every GET with 200), from the repository
# root:
#  - a second run's start in a state directory whose first run is still going fails, and leaves the
#    first run's engine.env and server alone; its stop stops nothing; the first run's stop stops its
#    server; then the directory is free for the next run (llamacpp.sh, and engine.sh, which share
#    fixture_lib.sh's claim);
#  - reports.clear refuses a KVGATE_BASELINE inside KVGATE_OUT and removes nothing; with the
#    baseline elsewhere it clears.
#
#   check_fixtures.sh KVGATE_CLI
set -euo pipefail
cli=${1:?usage: check_fixtures.sh KVGATE_CLI}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail=0
bad() { echo "fixtures: FAIL: $*"; fail=1; }
work=$(mktemp -d)
owner_pid=""
cleanup() {
  [ -z "$owner_pid" ] || kill "$owner_pid" 2> /dev/null || true
  # the first run's server, if a failed check left it running
  [ ! -f "$work/first.pgid" ] || kill -TERM -- "-$(cat "$work/first.pgid")" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- two runs, one state directory ------------------------------------------------------------
cat > "$work/llama-server" <<'EOF'
#!/usr/bin/env bash
[ "${1:-}" = --version ] && { echo "version: 1 (fake)"; exit 0; }
while [ $# -gt 0 ]; do [ "$1" = --port ] && port=$2; shift; done
exec python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$port"
EOF
chmod +x "$work/llama-server"
: > "$work/model.gguf"
export KVGATE_LLAMA_SERVER=$work/llama-server KVGATE_LLAMACPP_MODEL=$work/model.gguf KVGATE_VENV=$work/no-venv
unset KVGATE_URL
state=$work/engines/llamacpp
mkfifo "$work/release"
# The first run: a process that starts the fixture, holds it until released, then stops it (as
# ctest runs engine.*.start, the tests, engine.*.stop, all its children).
bash -c '"$1" start "$2" > "$3/first.log" 2>&1 && touch "$3/first.started"; read -r _ < "$3/release"; "$1" stop "$2" >> "$3/first.log" 2>&1' \
  _ "$here/llamacpp.sh" "$state" "$work" &
owner_pid=$!
for _ in $(seq 1 120); do [ -f "$work/first.started" ] || ! kill -0 "$owner_pid" 2> /dev/null && break; sleep 0.25; done
if [ ! -f "$work/first.started" ]; then
  bad "the first run's start did not succeed; its output:"; cat "$work/first.log"; exit 1
fi
# shellcheck disable=SC1091
pgid=$(. "$state/engine.env" && echo "$KVGATE_ENGINE_PGID")
echo "$pgid" > "$work/first.pgid"
cp "$state/engine.env" "$work/first.env"

# The second run (this script's process is its "ctest").
if second=$("$here/llamacpp.sh" start "$state" 2>&1); then
  bad "a second run's start succeeded while the first run's server runs in $state; its output: $second"
  "$here/llamacpp.sh" stop "$state" > /dev/null 2>&1 || true
else
  grep -q "belongs to another run" <<< "$second" || bad "the second start failed without saying why: $second"
fi
cmp -s "$state/engine.env" "$work/first.env" || bad "the second start changed the first run's engine.env"
kill -0 -- "-$pgid" 2> /dev/null || bad "the first run's server (process group $pgid) is gone after the second start"
stop_out=$("$here/llamacpp.sh" stop "$state" 2>&1) || bad "the second run's stop failed: $stop_out"
kill -0 -- "-$pgid" 2> /dev/null || bad "the second run's stop stopped the first run's server: $stop_out"
[ -f "$state/engine.env" ] || bad "the second run's stop removed the first run's engine.env"
# engine.sh takes the same claim (with KVGATE_URL set it would only write engine.env).
if out=$(KVGATE_URL=http://127.0.0.1:9 "$here/engine.sh" start "$state" 2>&1); then
  bad "engine.sh start succeeded in a directory another running run owns: $out"
fi
cmp -s "$state/engine.env" "$work/first.env" || bad "engine.sh start changed the first run's engine.env"

# The first run ends: its own stop stops its server, and the directory is free again.
echo > "$work/release"
wait "$owner_pid" || true
owner_pid=""
grep -q "stopped (process group $pgid" "$work/first.log" || { bad "the first run's stop did not stop its server; its output:"; cat "$work/first.log"; }
kill -0 -- "-$pgid" 2> /dev/null && bad "the first run's server (process group $pgid) still runs after its stop"
if out=$("$here/llamacpp.sh" start "$state" 2>&1); then
  "$here/llamacpp.sh" stop "$state" > /dev/null 2>&1 || bad "a later run could not stop its server"
else
  bad "a later run's start in the freed directory failed: $out"
fi

# ---- reports.clear and a baseline inside KVGATE_OUT --------------------------------------------
out_dir=$work/reports
mkdir -p "$out_dir"
echo '{}' > "$out_dir/results_phase1.json"
if msg=$(KVGATE_OUT=$out_dir KVGATE_BASELINE=$out_dir "$cli" clear 2>&1); then
  bad "reports.clear accepted KVGATE_BASELINE=KVGATE_OUT: $msg"
fi
[ -f "$out_dir/results_phase1.json" ] || bad "reports.clear removed the baseline inside KVGATE_OUT"
if msg=$(KVGATE_OUT=$out_dir KVGATE_BASELINE=$out_dir/results_phase1.json "$cli" clear 2>&1); then
  bad "reports.clear accepted a baseline file inside KVGATE_OUT: $msg"
fi
mkdir -p "$work/baseline"
msg=$(KVGATE_OUT=$out_dir KVGATE_BASELINE=$work/baseline "$cli" clear 2>&1) \
  || bad "reports.clear failed with the baseline outside KVGATE_OUT: $msg"
[ ! -f "$out_dir/results_phase1.json" ] || bad "reports.clear left an earlier run's results in KVGATE_OUT"

[ "$fail" = 0 ] || exit 1
echo "fixtures: a second run cannot take over or stop a running run's fixture; reports.clear keeps a baseline inside KVGATE_OUT"
