#!/usr/bin/env bash
# CTest gpu.llamacpp.tokenizer_parity: tokenizer_parity.py between the llama.cpp fixture's server
# and the model directory its GGUF was made from (models/opt-125m-dummy), from the repository root.
#
#   tokenizer_parity.sh STATE_DIR SKIP_CODE    (STATE_DIR: the llamacpp fixture's, with engine.env)
#
# Where it cannot check (another server than the fixture's own model, no venv) it says why and exits
# SKIP_CODE, which CTest counts as skipped; with KVGATE_REQUIRE_ENGINE=1 it fails instead: there a
# check that did not run must not count as passed.
set -euo pipefail
usage="usage: tokenizer_parity.sh STATE_DIR SKIP_CODE"
state=${1:?$usage}
skip_code=${2:?$usage}

cannot() {
  if [ "${KVGATE_REQUIRE_ENGINE:-}" = 1 ]; then
    echo "parity: cannot check: $1 (KVGATE_REQUIRE_ENGINE=1: a skip is a failure)"
    exit 1
  fi
  echo "parity: skipped: $1"
  exit "$skip_code"
}

[ -f "$state/engine.env" ] || { echo "parity: no $state/engine.env: run it through ctest, which starts the llamacpp fixture first"; exit 1; }
# shellcheck disable=SC1091
. "$state/engine.env"
[ -n "${KVGATE_ENGINE_PGID:-}" ] || cannot "the fixture started no server (KVGATE_URL names one); parity is checked on the fixture's own model"
[ -z "${KVGATE_LLAMACPP_MODEL:-}" ] || cannot "KVGATE_LLAMACPP_MODEL=$KVGATE_LLAMACPP_MODEL is not the GGUF made from models/opt-125m-dummy"
python=${KVGATE_VENV:-.venv}/bin/python
[ -x "$python" ] || cannot "no Python at $python for the HF tokenizer: run bash cmake/setup.sh (or set KVGATE_VENV)"
exec "$python" cmake/engine/tokenizer_parity.py models/opt-125m-dummy "$KVGATE_URL"
