#!/usr/bin/env bash
# Writes the trimmed llama.cpp source tree of the pinned sdist as a reproducible tar.xz, for the
# offline GPU bundle: what building `llama-server` with the CPU or CUDA backend needs, nothing else.
#
#   trim.sh OUT.tar.xz [--no-check]
#
# Removed: models/ (test vocabularies), docs/, tests, examples, benchmarks, media, CI and agent
# files, Python converters, the web UI's sources (the server embeds no UI without npm or a
# download), and every ggml backend but CPU and CUDA. Kept although a server build does not
# compile them: tools/mtmd and vendor/miniaudio (tools/CMakeLists.txt adds them unconditionally),
# app/ (LLAMA_BUILD_APP defaults on), the licenses, and gguf-py (the `gguf` package, version
# 0.19.0, which make_gguf.py needs and a GPU host may lack).
# The check (default) configures the trimmed tree for CPU with build.sh's flags and builds the
# web UI's stub target, whose asset step is the part trimming could break.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

out=${1:?usage: trim.sh OUT.tar.xz [--no-check]}
check=1
[ "${2:-}" = --no-check ] && check=0
out=$(realpath -m "$out")
llamacpp_fetch_sdist > /dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=llama.cpp-$LLAMACPP_PY_VERSION
tree=$work/$name
llamacpp_extract "$tree"

(
  cd "$tree"
  rm -rf models docs tests examples pocs benches media ci conversion requirements skills \
    .github .devops .gemini .pi .git .clang-format .clang-tidy .dockerignore .ecrc .editorconfig \
    .flake8 .gitignore .gitmodules .pre-commit-config.yaml AGENTS.md CLAUDE.md CODEOWNERS \
    CONTRIBUTING.md SECURITY.md flake.nix mypy.ini pyrightconfig.json ty.toml requirements.txt \
    build-xcframework.sh convert_*.py tools/server/tests tools/server/bench
  find scripts -mindepth 1 -maxdepth 1 ! -name 'ui-assets.cmake' -exec rm -rf {} +
  find tools/ui -mindepth 1 -maxdepth 1 ! -name CMakeLists.txt ! -name 'ui.*.in' -exec rm -rf {} +
  find ggml/src -mindepth 1 -maxdepth 1 -type d -name 'ggml-*' ! -name ggml-cpu ! -name ggml-cuda \
    -exec rm -rf {} +
)

# Where the tree came from, for a host that configures it without this repo's scripts.
cat > "$tree/KVGATE_SOURCE" <<EOF
llama.cpp vendored by llama-cpp-python $LLAMACPP_PY_VERSION (sdist sha256 $LLAMACPP_SDIST_SHA256),
upstream commit $LLAMACPP_COMMIT, trimmed by kvgate's cmake/llamacpp/trim.sh.
Configure with: -DLLAMA_BUILD_COMMIT=$LLAMACPP_COMMIT ${LLAMACPP_CMAKE_FLAGS[*]}
EOF

if [ "$check" = 1 ]; then
  if command -v ninja > /dev/null; then generator=Ninja; else generator="Unix Makefiles"; fi
  TIMEFORMAT="trim: the trimmed tree configured for CPU and built its UI stub in %R s"
  time {
    cmake -S "$tree" -B "$work/check" -G "$generator" "${LLAMACPP_CMAKE_FLAGS[@]}" \
      -DLLAMA_BUILD_COMMIT="$LLAMACPP_COMMIT" > "$work/check.log" 2>&1 \
      && cmake --build "$work/check" --target llama-ui >> "$work/check.log" 2>&1 \
      || { echo "trim: the trimmed tree does not configure/build for CPU; the log's tail:" >&2
           tail -n 30 "$work/check.log" >&2; exit 1; }
  }
  grep -q 'llama-server' "$work/check/build.ninja" "$work/check/Makefile" 2>/dev/null \
    || grep -rqs 'llama-server' "$work/check/tools/server" \
    || { echo "trim: the configured tree has no llama-server target" >&2; exit 1; }
fi

mkdir -p "$(dirname "$out")"
tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$name" \
  | xz -6 -T1 > "$out.tmp"
mv "$out.tmp" "$out"
echo "trim: wrote $out ($(du -k "$out" | cut -f1) KiB; tree $(du -sk "$tree" | cut -f1) KiB, top directory $name/)"
