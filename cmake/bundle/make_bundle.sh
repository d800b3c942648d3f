#!/usr/bin/env bash
# Writes kvgate's offline GPU bundle: ONE tar that carries what a GPU host with only a compiler,
# CMake, CUDA and Python 3 + numpy needs to build llama.cpp's server and kvgate and run the
# llama.cpp gates (`ctest -L llamacpp`), with no network. Run it on a prepared machine (after
# cmake/setup.sh: the llama.cpp sdist and the tokenizer directory are cached there); it needs
# `apt-get download` (Debian 12) the first time, for the .deb packages.
#
#   make_bundle.sh OUT.tar [--check-trim]
#
# Members (all under kvgate-bundle/):
#   host.sh                    the host side: checks, builds, runs, writes the reports (see it)
#   kvgate-src.tar.gz          `git archive HEAD` of this repository (committed state only)
#   llama.cpp-trimmed.tar.xz   cmake/llamacpp/trim.sh's tree (llama-server + gguf-py)
#   tokenizer.tar.xz           models/opt-125m-dummy (the tokenizer make_gguf.py writes into the GGUF)
#   debs/*.deb                 Debian 12 packages of kvgate's dependencies a GPU host may lack; the
#                              host unpacks only those it lacks, into a prefix (never over /)
#   MANIFEST.txt               sha256 of every member, and where it came from
# The archive stays under KVGATE_BUNDLE_MAX_MIB (default 32; the device hosts take 64 MiB at a time).
# Caches (outside the repo, in ${KVGATE_CACHE_DIR:-$HOME/.cache/kvgate}): the trimmed tree (keyed by
# the sdist and trim.sh) and the .debs, so a second bundle takes seconds.
# --check-trim: make trim.sh configure the trimmed tree when it writes it (slower, first time only).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../llamacpp/common.sh
. "$root/cmake/llamacpp/common.sh"

out=${1:?usage: make_bundle.sh OUT.tar [--check-trim]}
trim_check=--no-check
[ "${2:-}" = --check-trim ] && trim_check=
out=$(realpath -m "$out")
max_mib=${KVGATE_BUNDLE_MAX_MIB:-32}

# The .debs: kvgate's build dependencies (cmake/deps/*.cmake, tests/CMakeLists.txt) and
# their -dev closure that Ubuntu/Debian GPU images may lack. Boost's headers travel with its compiled
# libraries so both are one version. Runtime needs beyond these (libssl3, libbrotli1, zlib, libc)
# are in every such image; host.sh checks them.
debs=(catch2 libcpp-httplib-dev libcpp-httplib0.11 libgnuplot-iostream-dev
  libboost1.74-dev libboost-iostreams1.74-dev libboost-iostreams1.74.0
  libboost-filesystem1.74-dev libboost-filesystem1.74.0 libboost-system1.74-dev libboost-system1.74.0
  libbrotli-dev nlohmann-json3-dev pybind11-dev libssl-dev zlib1g-dev pkgconf pkgconf-bin libpkgconf3)

cd "$root"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "make_bundle: note: the working tree has uncommitted changes; the bundle carries HEAD ($(git rev-parse --short HEAD))" >&2
fi
tokdir=${KVGATE_BUNDLE_TOKENIZER_DIR:-$root/models/opt-125m-dummy}
[ -f "$tokdir/tokenizer.json" ] && [ -f "$tokdir/kvgate-model.json" ] || {
  echo "make_bundle: no tokenizer directory at $tokdir; make it with: ${KVGATE_VENV:-.venv}/bin/python cmake/engine/make_model.py models/opt-125m-dummy" >&2
  exit 1; }

mkdir -p "$llamacpp_cache/bundle-debs"
trim_key=$( (echo "$LLAMACPP_SDIST_SHA256"; cat "$root/cmake/llamacpp/trim.sh") | sha256sum | cut -c1-12)
trimmed=$llamacpp_cache/llama.cpp-$LLAMACPP_PY_VERSION-trimmed-$trim_key.tar.xz
if [ ! -f "$trimmed" ]; then
  echo "make_bundle: trimming the llama.cpp tree (once; cached at $trimmed)" >&2
  bash "$root/cmake/llamacpp/trim.sh" "$trimmed.tmp" $trim_check >&2
  mv "$trimmed.tmp" "$trimmed"
fi

missing_debs=()
for d in "${debs[@]}"; do
  compgen -G "$llamacpp_cache/bundle-debs/${d}_*.deb" > /dev/null || missing_debs+=("$d")
done
if [ ${#missing_debs[@]} -gt 0 ]; then
  command -v apt-get > /dev/null || { echo "make_bundle: apt-get is needed (once) to download: ${missing_debs[*]}" >&2; exit 1; }
  echo "make_bundle: downloading ${missing_debs[*]} (apt-get download, cached)" >&2
  (cd "$llamacpp_cache/bundle-debs" && apt-get download -q "${missing_debs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) \
    || { echo "make_bundle: apt-get download failed (no network or no package lists: apt-get update)" >&2; exit 1; }
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
b=$stage/kvgate-bundle
mkdir -p "$b/debs"
install -m 755 "$here/host.sh" "$b/host.sh"
git archive --format=tar --prefix=kvgate/ HEAD | gzip -n -9 > "$b/kvgate-src.tar.gz"
cp "$trimmed" "$b/llama.cpp-trimmed.tar.xz"
tar -C "$tokdir" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  --transform 's|^\.|opt-125m-dummy|' -cf - . \
  | xz -T1 -6 > "$b/tokenizer.tar.xz"
for d in "${debs[@]}"; do cp "$llamacpp_cache"/bundle-debs/"${d}"_*.deb "$b/debs/"; done
{
  echo "kvgate offline GPU bundle"
  echo "kvgate: $(git rev-parse HEAD) ($(git describe --always --dirty 2>/dev/null))"
  echo "llama.cpp: llama-cpp-python $LLAMACPP_PY_VERSION sdist $LLAMACPP_SDIST_SHA256, commit $LLAMACPP_COMMIT, trim $trim_key"
  echo "debs (Debian 12, amd64): ${debs[*]}"
  echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo
  (cd "$stage" && find kvgate-bundle -type f ! -name MANIFEST.txt | sort | xargs sha256sum)
} > "$b/MANIFEST.txt"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -cf "$out.tmp" kvgate-bundle
size=$(stat -c %s "$out.tmp")
if [ "$size" -gt $(( max_mib * 1024 * 1024 )) ]; then
  rm -f "$out.tmp"
  echo "make_bundle: the bundle is $(( size / 1024 / 1024 )) MiB, over KVGATE_BUNDLE_MAX_MIB=$max_mib" >&2
  exit 1
fi
mv "$out.tmp" "$out"
printf 'make_bundle: wrote %s (%.1f MiB, limit %s MiB)\n' "$out" "$(echo "$size / 1048576" | bc -l)" "$max_mib" >&2
