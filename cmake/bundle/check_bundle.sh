#!/usr/bin/env bash
# CTest `bundle.make`: writes the offline GPU bundle with make_bundle.sh and checks what a GPU host
# will rely on: the size bound, every required member, the manifest's checksums, that each .deb is
# a readable package, that the llama.cpp tree holds the server and gguf-py, that kvgate's sources
# hold the host script and the fixture, and that host.sh is valid bash.
#
#   check_bundle.sh OUT.tar
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: check_bundle.sh OUT.tar}
max_mib=${KVGATE_BUNDLE_MAX_MIB:-32}
rm -f "$out"
KVGATE_BUNDLE_MAX_MIB=$max_mib bash "$here/make_bundle.sh" "$out"

fail=0
bad() { echo "bundle: $*"; fail=1; }
size=$(stat -c %s "$out")
[ "$size" -le $(( max_mib * 1024 * 1024 )) ] || bad "$out is $size bytes, over $max_mib MiB"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xf "$out" -C "$work"
b=$work/kvgate-bundle
for m in host.sh MANIFEST.txt kvgate-src.tar.gz llama.cpp-trimmed.tar.xz tokenizer.tar.xz; do
  [ -s "$b/$m" ] || bad "member $m is missing or empty"
done
for d in catch2 libcpp-httplib-dev libcpp-httplib0.11 libgnuplot-iostream-dev libboost1.74-dev \
  libboost-iostreams1.74-dev libboost-iostreams1.74.0 libboost-filesystem1.74-dev libboost-filesystem1.74.0 \
  libboost-system1.74-dev libboost-system1.74.0 libbrotli-dev nlohmann-json3-dev pybind11-dev libssl-dev zlib1g-dev \
  pkgconf pkgconf-bin libpkgconf3; do
  f=$(compgen -G "$b/debs/${d}_*.deb" | head -n1 || true)
  if [ -z "$f" ]; then bad "no .deb for $d"; continue; fi
  [ "$(dpkg-deb -f "$f" Package 2> /dev/null)" = "$d" ] || bad "$f is not a readable package named $d"
done
(cd "$work" && sed -n '/^$/,$p' kvgate-bundle/MANIFEST.txt | sed 1d | sha256sum --quiet -c -) || bad "MANIFEST.txt checksums do not match the members"
[ "$(sed -n '/^$/,$p' "$b/MANIFEST.txt" | sed 1d | wc -l)" -eq "$(find "$b" -type f ! -name MANIFEST.txt | wc -l)" ] \
  || bad "MANIFEST.txt does not list every member"
bash -n "$b/host.sh" || bad "host.sh is not valid bash"
src_list=$(tar -tzf "$b/kvgate-src.tar.gz")
for p in kvgate/CMakeLists.txt kvgate/cmake/bundle/host.sh kvgate/cmake/engine/llamacpp.sh kvgate/cmake/engine/make_gguf.py kvgate/cmake/llamacpp/common.sh; do
  grep -qx "$p" <<< "$src_list" || bad "kvgate-src.tar.gz lacks $p"
done
llama_list=$(tar -tJf "$b/llama.cpp-trimmed.tar.xz")
for p in CMakeLists.txt tools/server/server.cpp ggml/src/ggml-cuda/CMakeLists.txt gguf-py/gguf/__init__.py KVGATE_SOURCE; do
  grep -q "^[^/]*/$p\$" <<< "$llama_list" || bad "llama.cpp-trimmed.tar.xz lacks $p"
done
tok_list=$(tar -tJf "$b/tokenizer.tar.xz")
for p in tokenizer.json tokenizer_config.json chat_template.jinja kvgate-model.json; do
  grep -qx "opt-125m-dummy/$p" <<< "$tok_list" || bad "tokenizer.tar.xz lacks opt-125m-dummy/$p"
done
[ "$fail" = 0 ] || exit 1
printf 'bundle: %s is %.1f MiB (limit %s MiB): %s members, all present and consistent\n' "$out" \
  "$(echo "$size / 1048576" | bc -l)" "$max_mib" "$(tar -tf "$out" | grep -vc '/$')"
