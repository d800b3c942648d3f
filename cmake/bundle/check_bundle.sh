#!/usr/bin/env bash
# CTest `bundle.make`: writes the offline GPU bundle with make_bundle.sh and checks what a GPU host
# will rely on: the size bound, every required member, the manifest's checksums, that each .deb is
# a readable package, that the llama.cpp tree holds the server and gguf-py, that kvgate's sources
# hold the host script and the fixture, that host.sh is valid bash, and that host.sh refuses, before
# it writes anything, to run as root (unless KVGATE_HOST_ALLOW_ROOT=1) or from a bundle whose members
# do not match MANIFEST.txt.
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

# host.sh's first checks. A size argument it cannot read fails right after them (exit 2): a good
# bundle that ends there got past both.
host_work=$work/host-work
host() {  # DIR [env...]: runs DIR/host.sh with a bad size argument; output in $work/host.log, prints rc
  local dir=$1 rc=0
  shift
  env HOME="$work/home" KVGATE_HOST_WORK="$host_work" "$@" bash "$dir/host.sh" "$work/host-out" not-a-size \
    > "$work/host.log" 2>&1 || rc=$?
  echo "$rc"
}
allow=()
if [ "$(id -u)" = 0 ]; then
  [ "$(host "$b")" = 1 ] && grep -q "refusing to run as root" "$work/host.log" \
    || bad "host.sh ran as root without KVGATE_HOST_ALLOW_ROOT=1: $(cat "$work/host.log")"
  allow=(KVGATE_HOST_ALLOW_ROOT=1)
else
  echo "bundle: note: not root, so host.sh's refusal of root is not checked here"
fi
[ "$(host "$b" "${allow[@]}")" = 2 ] && grep -q "must be A/B/Q" "$work/host.log" \
  || bad "host.sh did not accept the bundle as written: $(cat "$work/host.log")"
cp -a "$b" "$work/damaged"
echo >> "$work/damaged/tokenizer.tar.xz"
[ "$(host "$work/damaged" "${allow[@]}")" = 1 ] && grep -q "does not match its MANIFEST.txt" "$work/host.log" \
  || bad "host.sh accepted a member that does not match MANIFEST.txt: $(cat "$work/host.log")"
rm -rf "$work/damaged"
cp -a "$b" "$work/added"
cp "$(compgen -G "$b/debs/catch2_*.deb" | head -n1)" "$work/added/debs/zz-added_1.0_amd64.deb"
[ "$(host "$work/added" "${allow[@]}")" = 1 ] && grep -q "MANIFEST.txt does not list" "$work/host.log" \
  || bad "host.sh accepted a .deb that MANIFEST.txt does not list: $(cat "$work/host.log")"
rm -rf "$work/added"
[ ! -e "$host_work" ] && [ ! -e "$work/host-out" ] || bad "host.sh wrote its work or reports folder before its checks"

[ "$fail" = 0 ] || exit 1
printf 'bundle: %s is %.1f MiB (limit %s MiB): %s members, all present and consistent\n' "$out" \
  "$(echo "$size / 1048576" | bc -l)" "$max_mib" "$(tar -tf "$out" | grep -vc '/$')"
