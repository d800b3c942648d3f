#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU) from the vendored tree of the pinned llama-cpp-python sdist,
# offline once the sdist is cached, and prints the binary's path on stdout (messages go to stderr).
#
#   build.sh           build if needed (seconds when the cached build is complete)
#   build.sh --print   print the path of a complete cached build, or fail saying how to make one
#
# The build lives outside the repo, in ${KVGATE_CACHE_DIR:-$HOME/.cache/kvgate}/
# llama-server-<version>-<key>/, where <key> hashes everything that shapes the binary: the sdist's
# sha256, the CMake flags, the generator, the compiler and CMake versions, and the CPU model (the
# default GGML_NATIVE=ON compiles for this CPU). A fresh clone on the same machine finds the same key
# and reuses the build; a different compiler, flag or CPU gets its own. The directory is complete
# when its kvgate-build.json exists (written last), so an interrupted build resumes.
# Environment: KVGATE_CACHE_DIR, KVGATE_BUILD_JOBS (default: nproc), KVGATE_PIP / KVGATE_VENV.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

flags=("${LLAMACPP_CMAKE_FLAGS[@]}")
if command -v ninja > /dev/null; then generator=Ninja; else generator="Unix Makefiles"; fi
compiler=$(c++ --version 2>&1 | sed -n '1p')
cmake_version=$(cmake --version | sed -n '1p')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n '1p')
key_text=$(printf '%s\n' "$LLAMACPP_SDIST_SHA256" "${flags[*]}" "$generator" "$compiler" \
  "$(cc --version 2>&1 | sed -n '1p')" "$cmake_version" "$(uname -m)" "$cpu")
key=$(printf '%s' "$key_text" | sha256sum | cut -c1-12)
dir=$llamacpp_cache/llama-server-$LLAMACPP_PY_VERSION-$key
server=$dir/build/bin/llama-server
stamp=$dir/kvgate-build.json

complete() { [ -f "$stamp" ] && [ -x "$server" ] && "$server" --version > /dev/null 2>&1; }

if [ "${1:-}" = --print ]; then
  complete || { echo "llamacpp: no complete llama-server build at $dir; run: bash $here/build.sh" >&2; exit 1; }
  echo "$server"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: build.sh [--print]" >&2; exit 2; }

if complete; then
  echo "llamacpp: llama-server $LLAMACPP_PY_VERSION (key $key) is built: $server" >&2
  echo "$server"
  exit 0
fi

mkdir -p "$llamacpp_cache"
# Two clones setting up at once build once: the second waits, then finds the build complete.
exec 9> "$dir.lock"
flock 9
if complete; then echo "$server"; exit 0; fi

llamacpp_fetch_sdist > /dev/null
mkdir -p "$dir"
printf '%s\n' "$key_text" > "$dir/key.txt"
if [ ! -f "$dir/src/CMakeLists.txt" ]; then
  rm -rf "$dir/src"
  llamacpp_extract "$dir/src"
fi
jobs=${KVGATE_BUILD_JOBS:-$(nproc)}
echo "llamacpp: building llama-server $LLAMACPP_PY_VERSION in $dir ($generator, -j$jobs; about 7 min on 2 idle cores)" >&2
TIMEFORMAT="llamacpp: configure + build took %R s wall, %U s user + %S s sys CPU"
time {
  cmake -S "$dir/src" -B "$dir/build" -G "$generator" "${flags[@]}" \
    -DLLAMA_BUILD_COMMIT="$LLAMACPP_COMMIT" > "$dir/configure.log" 2>&1 \
    || { tail -n 30 "$dir/configure.log" >&2; exit 1; }
  cmake --build "$dir/build" --target llama-server -j "$jobs" > "$dir/build.log" 2>&1 \
    || { tail -n 30 "$dir/build.log" >&2; exit 1; }
}
complete_version=$("$server" --version 2>&1 | grep -m1 version || true)
[ -n "$complete_version" ] || { echo "llamacpp: the built $server does not run" >&2; exit 1; }
printf '{"llama_cpp_python": "%s", "sdist_sha256": "%s", "key": "%s", "server_version": "%s"}\n' \
  "$LLAMACPP_PY_VERSION" "$LLAMACPP_SDIST_SHA256" "$key" "$complete_version" > "$stamp"
echo "llamacpp: built $server ($complete_version)" >&2
echo "$server"
