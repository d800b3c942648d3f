#!/usr/bin/env bash
# The host side of kvgate's offline GPU bundle (cmake/bundle/make_bundle.sh): run from the unpacked
# bundle on a GPU host that has a compiler, CMake, CUDA (nvcc + driver) and Python 3 with numpy, and
# no network. It checks the host, unpacks the .debs of the dependencies the host lacks into a prefix
# (never over /), builds llama-server with CUDA for the GPU it finds and kvgate against the prefix,
# makes the model, runs the llama.cpp gates (`ctest -L llamacpp`) at each size and the client
# timing-error benchmark, and writes the reports to OUT.
#
#   tar xf kvgate-bundle.tar && bash kvgate-bundle/host.sh [OUT] [A/B/Q ...]
#
# OUT defaults to ./kvgate-reports; sizes default to the seed's 512/256/32. Builds go to
# KVGATE_HOST_WORK (default $HOME/kvgate-host) and are reused by the next run on the same host
# (llama-server is keyed by its source, flags, compiler, CUDA and GPU architecture).
# Environment:
#   KVGATE_HOST_WORK        persistent work directory [$HOME/kvgate-host]
#   KVGATE_HOST_CPU=1       no CUDA: a CPU build (to try the bundle on a machine without a GPU)
#   KVGATE_HOST_FORCE_DEBS=1  use the bundled .debs even where the host has the dependency
#   KVGATE_HOST_JOBS        build parallelism [nproc]
#   KVGATE_LLAMA_SERVER     a llama-server binary to use instead of building one
#   KVGATE_HOST_LABEL       the CTest label to run [llamacpp]
#   KVGATE_HOST_ALLOW_ROOT=1  run as root (where root is the only account, e.g. a container)
#   KVGATE_LLAMACPP_CACHE_RAM and the other llamacpp.sh settings pass through to the fixture;
#   KVGATE_TRIALS etc. pass through to kvgate. A non-zero cache-ram and KVGATE_TTFT=engine are part
#   of OUT's subfolder names.
set -euo pipefail

bundle=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- 0. Before anything is unpacked, built or run: not root, and the bundle as it was written -----
# Nothing here needs root: dependencies go into a prefix under KVGATE_HOST_WORK (never over /), and
# builds, servers and reports are the user's; as root, a wrong path would reach the whole system.
if [ "$(id -u)" = 0 ] && [ "${KVGATE_HOST_ALLOW_ROOT:-0}" != 1 ]; then
  echo "host: refusing to run as root: host.sh needs no privileges (it writes only KVGATE_HOST_WORK, default \$HOME/kvgate-host, and the reports folder). Run it as an ordinary user; where root is the only account (a container), set KVGATE_HOST_ALLOW_ROOT=1."
  exit 1
fi
# MANIFEST.txt holds the sha256 of every member (make_bundle.sh): a damaged or partly copied member,
# or a .deb added to debs/ (host.sh unpacks what it finds there), stops the run here. It detects
# damage, not tampering: whoever can change a member can change MANIFEST.txt.
[ -f "$bundle/MANIFEST.txt" ] || { echo "host: no MANIFEST.txt in $bundle: unpack the whole bundle (tar xf kvgate-bundle.tar)"; exit 1; }
sums=$(sed -n '/^$/,$p' "$bundle/MANIFEST.txt" | sed '1d; s|  kvgate-bundle/|  |')
if ! bad=$(cd "$bundle" && sha256sum --quiet --strict -c - <<< "$sums" 2>&1); then
  echo "host: the bundle in $bundle does not match its MANIFEST.txt (damaged, or changed after make_bundle.sh wrote it): copy and unpack it again. sha256sum says:"
  echo "$bad"
  exit 1
fi
unlisted=$(comm -13 <(sed 's/^[0-9a-f]*  //' <<< "$sums" | LC_ALL=C sort) \
  <(cd "$bundle" && find debs -type f | LC_ALL=C sort))
[ -z "$unlisted" ] || { echo "host: MANIFEST.txt does not list these files in $bundle, which host.sh would unpack: $unlisted. Remove them, or unpack the bundle afresh."; exit 1; }

out=$(realpath -m "${1:-kvgate-reports}")
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(512/256/32)
for s in "${sizes[@]}"; do
  [[ "$s" =~ ^[0-9]+/[0-9]+/[0-9]+$ ]] || { echo "host: size '$s' must be A/B/Q in tokens, e.g. 3000/500/32"; exit 2; }
done
work=${KVGATE_HOST_WORK:-$HOME/kvgate-host}
cpu_only=${KVGATE_HOST_CPU:-0}
force_debs=${KVGATE_HOST_FORCE_DEBS:-0}
jobs=${KVGATE_HOST_JOBS:-$(nproc)}
mkdir -p "$work" "$out"
log() { echo "host: $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
summary=$out/host.md
: > "$summary"

# ---- 1. What the host has: tools that cannot travel, then dependencies that can -------------------
missing=()
have() { command -v "$1" > /dev/null 2>&1; }
for t in c++ cmake tar xz gzip dpkg awk curl setsid flock ps pgrep; do have "$t" || missing+=("the '$t' command"); done
if have cmake; then
  cv=$(cmake --version | sed -n '1s/cmake version //p')
  [ "$(printf '%s\n3.22\n' "$cv" | sort -V | head -n1)" = 3.22 ] || missing+=("CMake >= 3.22 (have $cv)")
fi
if have ninja; then generator=Ninja; else generator="Unix Makefiles"; fi
python=$(command -v python3 || true)
if [ -z "$python" ]; then missing+=("python3 (with numpy) for the model maker")
elif ! "$python" -c 'import numpy' 2> /dev/null; then missing+=("numpy for $python (the model maker)"); fi
# kvgate embeds the system Python (pinned in CMakeLists.txt): its headers must be there.
embed_py=/usr/bin/python3
[ -x "$embed_py" ] || embed_py=$python
if [ -n "$embed_py" ] && ! [ -f "$("$embed_py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2> /dev/null)/Python.h" ]; then
  missing+=("Python.h for $embed_py (python3-dev)")
fi
gpu="none (CPU build)"; arch=""
if [ "$cpu_only" != 1 ]; then
  have nvcc || missing+=("nvcc (CUDA toolkit) on PATH, or KVGATE_HOST_CPU=1 for a CPU build")
  if have nvidia-smi && nvidia-smi > /dev/null 2>&1; then
    gpu=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | sed -n 1p)
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | sed -n 1p | tr -d ' .')
  else
    missing+=("a GPU that nvidia-smi sees")
  fi
fi
# Runtime libraries the bundled .debs link against (not carried: every GPU image has them).
for so in libssl.so.3 libcrypto.so.3 libbrotlidec.so.1 libbrotlienc.so.1 libbrotlicommon.so.1 libz.so.1; do
  ldconfig -p 2> /dev/null | grep -q "/$so\$" || [ -e "/usr/lib/$(uname -m)-linux-gnu/$so" ] || missing+=("the runtime library $so")
done

pc() { [ "$force_debs" != 1 ] && pkg-config --exists "$@" 2> /dev/null; }
host_pc=1
[ "$force_debs" != 1 ] && have pkg-config && host_pc=0
mkdir -p "$work/bin"
export PATH=$work/bin:$work/prefix/usr/bin:$PATH
if ! have bc; then  # the fixture's arithmetic (differences of timestamps, a division)
  printf '#!/bin/sh\nexec awk "BEGIN { print $(cat) }"\n' > "$work/bin/bc" && chmod +x "$work/bin/bc"
fi
hostfile() { [ "$force_debs" != 1 ] && compgen -G "$1" > /dev/null; }
need=()   # bundled packages to unpack
uses=()   # "dependency: host|bundle" for the summary
dep() {   # $1 name, $2 probe result (0 = host good enough), rest: the .debs that replace it
  local name=$1 ok=$2; shift 2
  if [ "$ok" = 0 ]; then uses+=("$name: host"); else uses+=("$name: bundle ($*)"); need+=("$@"); fi
}
ok() { "$@" && echo 0 || echo 1; }
dep "pkg-config" "$host_pc" pkgconf pkgconf-bin libpkgconf3
dep "Catch2 v2" "$(ok hostfile '/usr/include/catch2/catch.hpp')" catch2
dep "cpp-httplib >= 0.11" "$(ok pc 'cpp-httplib >= 0.11')" libcpp-httplib-dev libcpp-httplib0.11
dep "gnuplot-iostream" "$(ok hostfile '/usr/include/gnuplot-iostream.h')" libgnuplot-iostream-dev
boost_ok=0
for c in iostreams filesystem system; do
  hostfile "/usr/lib/*/cmake/boost_$c-*/boost_$c-config.cmake" && hostfile "/usr/lib/*/libboost_$c.so" || boost_ok=1
done
dep "Boost iostreams/filesystem/system (compiled)" "$boost_ok" \
  libboost1.74-dev libboost-iostreams1.74-dev libboost-iostreams1.74.0 libboost-filesystem1.74-dev \
  libboost-filesystem1.74.0 libboost-system1.74-dev libboost-system1.74.0
dep "brotli (pkg-config)" "$(ok pc libbrotlidec libbrotlienc libbrotlicommon)" libbrotli-dev
dep "OpenSSL (pkg-config)" "$(ok pc openssl)" libssl-dev
dep "zlib (pkg-config)" "$(ok pc zlib)" zlib1g-dev
json_ok=1
if [ "$force_debs" != 1 ] && [ -f /usr/include/nlohmann/json.hpp ] \
   && compgen -G "/usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake" > /dev/null \
   && [ "$(sed -n 's/.*define NLOHMANN_JSON_VERSION_MINOR \([0-9]*\).*/\1/p' /usr/include/nlohmann/json.hpp | head -n1)" -ge 11 ] 2> /dev/null; then
  json_ok=0
fi
dep "nlohmann/json >= 3.11" "$json_ok" nlohmann-json3-dev
dep "pybind11 (CMake config)" "$(ok hostfile '/usr/lib/cmake/pybind11/pybind11Config.cmake')" pybind11-dev
for d in "${need[@]}"; do
  compgen -G "$bundle/debs/${d}_*.deb" > /dev/null || missing+=("$d (neither on the host nor in $bundle/debs)")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "host: cannot build here; missing:"
  printf '  - %s\n' "${missing[@]}"
  exit 1
fi
log "GPU: $gpu; $(c++ --version | head -n1); cmake $cv; $generator; nvcc: $(nvcc --version 2> /dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' || echo none)"
printf '  %s\n' "${uses[@]}"
{
  echo "# kvgate on $(hostname): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- GPU: $gpu"
  echo "- compiler: $(c++ --version | head -n1); cmake $cv ($generator); nvcc $(nvcc --version 2> /dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' || echo none); $(nproc) cores"
  echo "- bundle: $(sed -n 2,3p "$bundle/MANIFEST.txt" | tr '\n' ' ')"
  printf -- '- %s\n' "${uses[@]}"
} >> "$summary"

# ---- 2. The prefix: bundled .debs the host lacks, unpacked with dpkg -x (never over /) ----------------
prefix=$work/prefix
stamp_want=$(printf '%s\n' "${need[@]}" | sort | xargs -r -I{} sh -c 'sha256sum "$0"/debs/{}_*.deb' "$bundle" | sha256sum | cut -c1-16)
if [ "$(cat "$prefix/.kvgate-stamp" 2> /dev/null)" != "$stamp_want" ]; then
  rm -rf "$prefix"
  mkdir -p "$prefix"
  for d in "${need[@]}"; do dpkg -x "$bundle"/debs/"${d}"_*.deb "$prefix"; done
  # The .pc files say prefix=/usr; point them at the prefix (their other paths derive from it).
  find "$prefix" -name '*.pc' -exec sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|" {} +
  echo "$stamp_want" > "$prefix/.kvgate-stamp"
  log "unpacked ${#need[@]} packages into $prefix"
fi
multiarch=$(gcc -print-multiarch 2> /dev/null || echo "$(uname -m)-linux-gnu")
export CMAKE_PREFIX_PATH=$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export PKG_CONFIG_PATH=$prefix/usr/lib/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$prefix/usr/lib/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---- 3. Sources: kvgate (only changed files replaced, so a rebuild is incremental) and llama.cpp -----
tmp=$(mktemp -d "$work/.unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$bundle/kvgate-src.tar.gz" -C "$tmp"
src=$work/kvgate
mkdir -p "$src"
# A replaced file gets the time of this copy, not its commit's (git archive's, which cp -p kept): a
# bundle of an older commit must still look newer to make/ninja than the binaries another bundle's
# sources gave, or they are kept and run. Files of the previous bundle that this one lacks are
# removed (its list: .kvgate-files), so the tree is this bundle's.
(cd "$tmp/kvgate" && find . -type f | LC_ALL=C sort) > "$tmp/files"
while read -r f; do
  if ! cmp -s "$tmp/kvgate/$f" "$src/$f" || [ "$(stat -c %a "$tmp/kvgate/$f")" != "$(stat -c %a "$src/$f")" ]; then
    mkdir -p "$(dirname "$src/$f")"
    cp --preserve=mode "$tmp/kvgate/$f" "$src/$f"
  fi
done < "$tmp/files"
if [ -f "$src/.kvgate-files" ]; then
  LC_ALL=C comm -23 "$src/.kvgate-files" "$tmp/files" | while read -r f; do rm -f "$src/$f"; done
fi
cp "$tmp/files" "$src/.kvgate-files"
# shellcheck source=../llamacpp/common.sh
. "$src/cmake/llamacpp/common.sh"
llama_sha=$(sha256sum "$bundle/llama.cpp-trimmed.tar.xz" | cut -c1-16)
llama_src=$work/llama.cpp-$llama_sha
if [ ! -f "$llama_src/CMakeLists.txt" ]; then
  rm -rf "$llama_src" && mkdir -p "$llama_src"
  tar -xJf "$bundle/llama.cpp-trimmed.tar.xz" -C "$llama_src" --strip-components=1
fi

# ---- 4. kvgate: only the programs the llama.cpp gates and the benchmark need (first: it fails sooner) ----
kbuild=$work/kvgate-build
targets=(${KVGATE_HOST_TARGETS:-kvgate_gpu_tests kvgate_cli kvgate_ttft_fidelity})
t0=$(now)
cmake -S "$src" -B "$kbuild" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DKVGATE_FUZZ=OFF \
  -DKVGATE_REQUIRE_ENGINE=ON -DPython_EXECUTABLE="$embed_py" > "$work/kvgate-configure.log" 2>&1 \
  || { echo "host: kvgate does not configure; the log's tail:"; tail -n 40 "$work/kvgate-configure.log"; exit 1; }
cmake --build "$kbuild" --target "${targets[@]}" -j "$jobs" > "$work/kvgate-build.log" 2>&1 \
  || { echo "host: kvgate does not build; the log's tail:"; tail -n 40 "$work/kvgate-build.log"; exit 1; }
t1=$(now)
log "kvgate configured + built (${targets[*]}) in $(secs "$t0" "$t1") s"
echo "- kvgate: configured + built ${targets[*]} in $(secs "$t0" "$t1") s" >> "$summary"

# ---- 5. llama-server (CUDA for this GPU's architecture), reused when the key matches -------------
server=${KVGATE_LLAMA_SERVER:-}
if [ -z "$server" ]; then
  flags=("${LLAMACPP_CMAKE_FLAGS[@]}" -DLLAMA_BUILD_COMMIT="$LLAMACPP_COMMIT")
  if [ "$cpu_only" = 1 ]; then flags+=(-DGGML_CUDA=OFF); else flags+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch"); fi
  key=$(printf '%s\n' "$llama_sha" "${flags[*]}" "$generator" "$(c++ --version | head -n1)" "$cv" \
    "$(nvcc --version 2> /dev/null | tail -n1)" "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" | sha256sum | cut -c1-12)
  lbuild=$work/llama-build-$key
  server=$lbuild/bin/llama-server
  if [ -f "$lbuild/kvgate-build.done" ] && "$server" --version > /dev/null 2>&1; then
    log "llama-server: reusing $server"
    echo "- llama-server: reused $lbuild (built before)" >> "$summary"
  else
    log "building llama-server ($([ "$cpu_only" = 1 ] && echo CPU || echo "CUDA sm_$arch"), -j$jobs) in $lbuild"
    t0=$(now)
    cmake -S "$llama_src" -B "$lbuild" -G "$generator" "${flags[@]}" > "$work/llama-configure.log" 2>&1 \
      || { tail -n 30 "$work/llama-configure.log"; exit 1; }
    t1=$(now)
    cmake --build "$lbuild" --target llama-server -j "$jobs" > "$work/llama-build.log" 2>&1 \
      || { tail -n 30 "$work/llama-build.log"; exit 1; }
    t2=$(now)
    "$server" --version > /dev/null 2>&1 || { echo "host: the built $server does not run"; exit 1; }
    touch "$lbuild/kvgate-build.done"
    log "llama-server built: configure $(secs "$t0" "$t1") s, build $(secs "$t1" "$t2") s"
    echo "- llama-server: configured in $(secs "$t0" "$t1") s, built in $(secs "$t1" "$t2") s (-j$jobs, $([ "$cpu_only" = 1 ] && echo CPU || echo "CUDA sm_$arch"))" >> "$summary"
  fi
fi
echo "- llama-server: $("$server" --version 2>&1 | grep -m1 version)" >> "$summary"

# ---- 6. The model: a context that fits the largest size asked ----------------------------------
ctx=2048
for s in "${sizes[@]}"; do
  IFS=/ read -r a b q <<< "$s"
  # The prompt is sized to at least A+B+Q (chat template, whole words) plus the output tokens.
  while [ $(( (a + b + q) * 11 / 10 + 128 )) -gt "$ctx" ]; do ctx=$(( ctx * 2 )); done
done
model=$work/models/opt-125m-dummy-ctx$ctx.gguf
mkdir -p "$work/models"
[ -f "$work/models/opt-125m-dummy/tokenizer.json" ] || tar -xJf "$bundle/tokenizer.tar.xz" -C "$work/models"
PYTHONPATH=$llama_src/gguf-py${PYTHONPATH:+:$PYTHONPATH} "$python" "$src/cmake/engine/make_gguf.py" \
  "$work/models/opt-125m-dummy" "$model" --ctx "$ctx"
echo "- model: random-weight GPT-2 at OPT-125m's sizes, context $ctx ($model)" >> "$summary"

# ---- 7. The gates at each size, then the client timing error ------------------------------------
export KVGATE_LLAMA_SERVER=$server KVGATE_LLAMACPP_MODEL=$model KVGATE_LLAMACPP_CTX=$ctx
label=${KVGATE_HOST_LABEL:-llamacpp}
# Left out by name, and said so (with KVGATE_REQUIRE_ENGINE a test that cannot run fails): the
# tokenizer parity check, which needs vLLM's tokenizer (transformers, in the CPU machine's venv)
# and runs there; and, without gnuplot (it pulls in a desktop stack and does not travel), the
# `reports` step: the results JSON is drawn where the reports are collected.
exclude='gpu\.llamacpp\.tokenizer_parity'
echo "- tokenizer parity (gpu.llamacpp.tokenizer_parity): not run here; it needs vLLM's tokenizer from the CPU machine's venv, and runs there" >> "$summary"
if ! have gnuplot; then
  exclude+='|reports'
  echo "- figures: no gnuplot on this host; draw them where gnuplot is: \`KVGATE_OUT=DIR kvgate report\` for each DIR below" >> "$summary"
fi
rc=0
echo >> "$summary"
echo "| sizes A/B/Q | llama-server config | ctest -L $label | reports |" >> "$summary"
echo "|---|---|---|---|" >> "$summary"
for s in "${sizes[@]}"; do
  IFS=/ read -r a b q <<< "$s"
  tag=$a-$b-$q
  [ "${KVGATE_LLAMACPP_CACHE_RAM:-0}" = 0 ] || tag=$tag-cache-ram-$KVGATE_LLAMACPP_CACHE_RAM
  [ "${KVGATE_TTFT:-client}" = client ] || tag=$tag-ttft-$KVGATE_TTFT
  dir=$out/$tag
  mkdir -p "$dir"
  log "ctest -L $label at $s (reports: $dir)"
  t0=$(now)
  set +e
  KVGATE_CONTEXT_A_TOKENS=$a KVGATE_CONTEXT_B_TOKENS=$b KVGATE_QUERY_TOKENS=$q KVGATE_OUT=$dir \
    ctest --test-dir "$kbuild" -L "$label" -E "^($exclude)\$" -V --no-tests=error > "$dir/ctest.log" 2>&1
  r=$?
  set -e
  t1=$(now)
  tail -n 25 "$dir/ctest.log"
  # How each fixture ran the server (the fixture's own line: flags, slots, cache-ram, flash attention).
  grep -o 'llamacpp: healthy after.*' "$dir/ctest.log" > "$dir/engine-config.txt" || true
  [ "$r" = 0 ] || rc=$r
  echo "| $s | $(sed -n '1s/.*; slots/slots/p' "$dir/engine-config.txt") | $([ "$r" = 0 ] && echo passed || echo "FAILED ($r)") in $(secs "$t0" "$t1") s | $tag/ |" >> "$summary"
done
if [ "${KVGATE_HOST_FIDELITY:-1}" = 1 ]; then
  log "client timing error (bench/ttft_fidelity, loopback oracle, kvgate's client only)"
  "$kbuild/bench/kvgate_ttft_fidelity" --python-clients none --no-probes --json "$out/ttft_fidelity.json" \
    > "$out/ttft_fidelity.md" 2>&1 || rc=1
  cat "$out/ttft_fidelity.md"
  { echo; echo "## Client timing error on this host (bench/ttft_fidelity)"; echo; cat "$out/ttft_fidelity.md"; } >> "$summary"
fi
log "reports in $out (summary: $summary); exit $rc"
exit "$rc"
