# Sourced by build.sh and trim.sh: the pinned llama.cpp source (vendored by llama-cpp-python's
# sdist, which PyPI serves to pip without a wheel) and the cache that holds it outside the repo.
# shellcheck shell=bash

LLAMACPP_PY_VERSION=0.3.36
# sha256 of llama_cpp_python-0.3.36.tar.gz as PyPI served it on 2026-11-29: the pin covers the
# bytes, not just the version string.
LLAMACPP_SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# The llama.cpp commit this sdist vendors (its CHANGELOG: "update llama.cpp to
# ggml-org/llama.cpp@0c1e57098"). The sdist has no git history, so the build is told, or the server
# would report "version: 0 (unknown)". Not part of the cache key: the sdist's hash fixes it.
LLAMACPP_COMMIT=0c1e57098
# The CPU build's flags (the GPU bundle adds its backend's): no web UI download, no TLS, no curl.
LLAMACPP_CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release
  -DLLAMA_USE_PREBUILT_UI=OFF  # otherwise configure tries a download and only warns
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF)
llamacpp_cache=${KVGATE_CACHE_DIR:-$HOME/.cache/kvgate}
llamacpp_sdist=$llamacpp_cache/llama_cpp_python-$LLAMACPP_PY_VERSION.tar.gz

# Prints the path of the verified sdist, downloading it once (pip: the ordinary client).
llamacpp_fetch_sdist() {
  mkdir -p "$llamacpp_cache"
  if [ ! -f "$llamacpp_sdist" ]; then
    local pip=${KVGATE_PIP:-}
    if [ -z "$pip" ]; then
      for p in "${KVGATE_VENV:-}/bin/pip" "$(command -v pip3 || true)" "$(command -v pip || true)"; do
        [ -x "$p" ] && { pip=$p; break; }
      done
    fi
    [ -n "$pip" ] || { echo "llamacpp: no pip to download llama-cpp-python==$LLAMACPP_PY_VERSION (set KVGATE_PIP or KVGATE_VENV)" >&2; return 1; }
    local tmp
    tmp=$(mktemp -d "$llamacpp_cache/.sdist.XXXXXX")
    echo "llamacpp: downloading the llama-cpp-python==$LLAMACPP_PY_VERSION sdist (~77 MB) with $pip" >&2
    # pip prepares the sdist's metadata after downloading it: --no-binary names this package only,
    # so its build requirements come as wheels (with :all: pip built them from source: 11 min).
    "$pip" download -q --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$LLAMACPP_PY_VERSION" -d "$tmp" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    [ -f "$tmp/$(basename "$llamacpp_sdist")" ] || { echo "llamacpp: pip download gave no $(basename "$llamacpp_sdist")" >&2; rm -rf "$tmp"; return 1; }
    mv "$tmp/$(basename "$llamacpp_sdist")" "$llamacpp_sdist"
    rm -rf "$tmp"
  fi
  local got
  got=$(sha256sum "$llamacpp_sdist" | cut -d' ' -f1)
  if [ "$got" != "$LLAMACPP_SDIST_SHA256" ]; then
    echo "llamacpp: $llamacpp_sdist has sha256 $got, expected $LLAMACPP_SDIST_SHA256; delete it to download again" >&2
    return 1
  fi
  echo "$llamacpp_sdist"
}

# Extracts vendor/llama.cpp from the sdist into $1 (which must not exist).
llamacpp_extract() {
  local dest=$1 top=llama_cpp_python-$LLAMACPP_PY_VERSION
  mkdir -p "$dest"
  tar -xzf "$llamacpp_sdist" -C "$dest" --strip-components=3 "$top/vendor/llama.cpp"
  # A submodule pointer into llama-cpp-python's repository, which the sdist does not have.
  rm -f "$dest/.git"
}
