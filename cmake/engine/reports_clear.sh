#!/usr/bin/env bash
# CTest reports.clear: `kvgate clear` (an earlier run's results and reports out of KVGATE_OUT, before
# the gates), from the repository root as the gates run. A KVGATE_BASELINE inside KVGATE_OUT is
# refused before anything is removed: clearing (or the gates' own results, written there) would
# replace the baseline the gates compare with.
#
#   reports_clear.sh KVGATE_CLI
set -euo pipefail
cli=${1:?usage: reports_clear.sh KVGATE_CLI}
out=$(realpath -m "${KVGATE_OUT:-reports}")  # settings.hpp's default
if [ -n "${KVGATE_BASELINE:-}" ]; then
  baseline=$(realpath -m "$KVGATE_BASELINE")
  case "$baseline/" in
    "$out"/*)
      echo "reports.clear: KVGATE_BASELINE=$KVGATE_BASELINE is inside KVGATE_OUT ($out), which this run clears and then writes its own results into; nothing removed. Copy the baseline out first and name the copy, e.g.: cp -r $out kvgate-baseline && KVGATE_BASELINE=\$PWD/kvgate-baseline ctest ..."
      exit 1 ;;
  esac
fi
exec "$cli" clear
