#!/usr/bin/env bash
# The host side of the vLLM wheelhouse (cmake/bundle/make_wheelhouse.sh), for an offline GPU host
# whose image ships torch 2.11.0 (CUDA 13) in its system Python 3.12: checks the pieces against
# MANIFEST.txt, reassembles them, and installs into a venv the fixtures use (KVGATE_VENV).
#
#   install_wheelhouse.sh PIECES_DIR [VENV]     VENV defaults to $KVGATE_VENV, else ./.venv
#
# Why a venv that sees the image's packages and not a plain one: torch and the NVIDIA libraries
# (several GB) are only in the image's Python, and the registry copy we can reach lacks part of
# torch's closure (nvidia-nccl-cu13==2.28.9), so they cannot travel. KVGATE_PYTHON (default: the
# `python3` on PATH) is the Python holding torch. Where that is a system Python the venv is made with
# --system-site-packages; where it is itself a venv (the lent GPU image: /opt/torch/.venv), the new
# venv is made by its base interpreter and a .pth file adds that venv's site-packages (a venv's
# --system-site-packages would reach the base's, without torch). Either way the venv is made by the
# same Python 3.12 that kvgate embeds (build kvgate with -DPython_EXECUTABLE=$KVGATE_PYTHON), so
# phase 2's interpreter accepts it, and the fixtures find `$KVGATE_VENV/bin/python` as everywhere.
# The venv is made --without-pip (Ubuntu images often lack python3-venv's ensurepip); the image's
# pip, seen through the same path, installs into it.
set -euo pipefail

pieces=$(cd "${1:?usage: install_wheelhouse.sh PIECES_DIR [VENV]}" && pwd)
venv=$(realpath -m "${2:-${KVGATE_VENV:-.venv}}")
python=${KVGATE_PYTHON:-$(command -v python3)}
log() { echo "install_wheelhouse: $*" >&2; }
t0=$(date +%s.%N)

(cd "$pieces" && sed -n '/^$/,$p' MANIFEST.txt | sed 1d | sha256sum --quiet --strict -c -) \
  || { log "the pieces in $pieces do not match MANIFEST.txt (missing or damaged): copy them again"; exit 1; }
want=$(sed -n 's/^whole tar: //p' "$pieces/MANIFEST.txt")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
[ "$(cat "$pieces"/wheelhouse.tar.part-* | sha256sum | cut -d' ' -f1)" = "$want" ] || { log "the reassembled tar's sha256 is not MANIFEST.txt's"; exit 1; }
cat "$pieces"/wheelhouse.tar.part-* | tar -xf - -C "$stage"
wh=$stage/wh
(cd "$wh" && sha256sum --quiet --strict -c trimmed.sha256) || { log "the trimmed vLLM archive is damaged"; exit 1; }

"$python" -c 'import torch, sys; assert torch.__version__.startswith("2.11.0"), torch.__version__' 2> /dev/null \
  || { log "$python has no torch 2.11.0 (vLLM 0.25.0's pin): $("$python" -c 'import torch; print(torch.__version__)' 2>&1 | tail -n1)"; exit 1; }
read -r in_venv torch_site base_python < <("$python" -c 'import sys, sysconfig
print(int(sys.prefix != sys.base_prefix), sysconfig.get_paths()["purelib"], getattr(sys, "_base_executable", sys.executable))')
if [ ! -x "$venv/bin/python" ]; then
  if [ "$in_venv" = 1 ]; then "$base_python" -m venv --without-pip "$venv"
  else "$python" -m venv --system-site-packages --without-pip "$venv"; fi
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "$in_venv" = 1 ]; then
  echo "$torch_site" > "$site/kvgate-torch-site.pth"
else
  grep -q '^include-system-site-packages = true' "$venv/pyvenv.cfg" \
    || { log "$venv exists without --system-site-packages (it cannot see the image's torch): remove it"; exit 1; }
fi
"$venv/bin/python" -c 'import torch' || { log "$venv does not see $python's torch"; exit 1; }
# The 33 wheels, each checked against the lock's hash; vLLM itself is the trimmed tree, so it is
# filtered out of the lock here and unpacked below.
awk '/^vllm==/ { skip = 1; next } skip && /^[[:space:]]/ { next } { skip = 0; print }' "$wh/gpu-offline.txt" > "$stage/wheels.txt"
pip_args=(install -q --disable-pip-version-check --no-index --no-deps --no-compile --require-hashes
          --find-links "$wh/wheels" -r "$stage/wheels.txt")
if "$venv/bin/python" -m pip --version > /dev/null 2>&1; then
  "$venv/bin/python" -m pip "${pip_args[@]}"
elif "$python" -m pip --version > /dev/null 2>&1; then
  "$python" -m pip "${pip_args[@]}" --prefix "$venv"
else
  log "no pip for $venv or $python: unpacking the wheels after checking their hashes against the lock"
  for w in "$wh"/wheels/*.whl; do
    h=$(sha256sum "$w" | cut -d' ' -f1)
    grep -q "sha256:$h" "$stage/wheels.txt" || { log "$(basename "$w") is not in the lock"; exit 1; }
    "$venv/bin/python" -m zipfile -e "$w" "$site"
  done
fi
rm -rf "$site/vllm" "$site"/vllm-*.dist-info
tar -xJf "$wh/vllm-0.25.0-trimmed.tar.xz" -C "$site"
cp "$wh/LEFT_OUT.txt" "$site/vllm-0.25.0.dist-info/KVGATE_LEFT_OUT.txt"
"$venv/bin/python" -c 'import vllm, torch; print("install_wheelhouse: vllm", vllm.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available())' >&2
printf 'install_wheelhouse: %s ready in %.0f s\n' "$venv" "$(echo "$(date +%s.%N) - $t0" | bc 2> /dev/null || echo 0)" >&2
