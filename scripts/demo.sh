#!/usr/bin/env bash
# The demo: sets everything up (setup.sh), then runs the main job on the built-in default.
# Until the built-in demo (roadmap step [11]) lands, it runs the smallest honest end-to-end path
# that exists and says so.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/setup.sh
BIN="${BUILD_DIR:-build}/coordexp-train"
echo "demo: the built-in demo arrives with roadmap step [11]; showing what this build can do:"
"$BIN" --version
"$BIN" info
