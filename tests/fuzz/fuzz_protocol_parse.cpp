// libFuzzer target for the strict CoordJSON parser and the y_in builder. The first byte picks the
// mode: text (parse_text on the rest) or ids (pairs of bytes index an alphabet of JSON-ish tokens,
// coord tokens, <|im_end|> and arbitrary vocabulary ids). Checked properties: nothing throws but
// COORDEXP_CHECK-free paths; valid entries re-render and re-parse to themselves; y_in built from any
// rollout with a prefix parses back complete with the injected FN object last.
// Needs the Qwen3 tokenizer: $COORDEXP_TOKENIZER_DIR or <source>/.cache/tokenizer-qwen3.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "coordexp/protocol/channel_b.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/protocol/render.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace {

using namespace coordexp;
using protocol::Object;

std::shared_ptr<tokenizer::Tokenizer> g_tok;
std::vector<tokenizer::TokenId> g_alphabet;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

void check_valid_entries_round_trip(const protocol::ParseResult& r) {
  for (const auto& e : r.entries) {
    if (!e.valid()) continue;
    const auto back = protocol::parse_text(
        protocol::render_text({e.object}, protocol::FieldOrder::kDescFirst).text);
    require(back.status == protocol::RolloutStatus::kComplete && back.num_valid() == 1 &&
                back.entries[0].object == e.object,
            "valid entry does not round-trip");
  }
  require(r.num_complete <= r.entries.size() && r.entries.size() <= r.num_complete + 1,
          "entries: complete ones first, at most one incomplete");
  require(r.append_cut <= r.text.size(), "append cut inside the text");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
  const std::string dir = env && *env ? env : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
  g_tok = tokenizer::Tokenizer::from_dir(dir);
  g_tok->ensure_coord_tokens();
  std::set<tokenizer::TokenId> ids;
  for (const char* s : {R"({"objects": [{"desc": "black cat", "bbox_2d": [<|coord_1|>, <|coord_2|>]}, )",
                        R"({"bbox_2d": [], "desc": "a \"b\" \\ } ] 中"}, {"poly": [[<|coord_3|>]]}]})",
                        R"({"objects": []} ,:"{}[] ]},"}, [{" []})"})
    for (auto id : g_tok->encode(s)) ids.insert(id);
  g_alphabet.assign(ids.begin(), ids.end());
  for (int k : {0, 1, 5, 999}) g_alphabet.push_back(g_tok->coord_vocab().coord_id(k));
  g_alphabet.push_back(g_tok->coord_vocab().wildcard_id);
  g_alphabet.push_back(g_tok->im_end_id());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool id_mode = data[0] & 1;
  ++data;
  --size;
  if (!id_mode) {
    check_valid_entries_round_trip(protocol::parse_text(
        std::string_view(reinterpret_cast<const char*>(data), size)));
    return 0;
  }
  std::vector<tokenizer::TokenId> ids;
  const auto vocab = static_cast<uint32_t>(g_tok->vocab_size());
  for (size_t i = 0; i + 1 < size; i += 2) {
    const uint32_t v = data[i] | (data[i + 1] << 8);
    // Mostly the alphabet; sometimes any id of the vocabulary.
    ids.push_back(v < 0xF000 ? g_alphabet[v % g_alphabet.size()]
                             : static_cast<tokenizer::TokenId>((v * 2654435761u) % vocab));
  }
  const protocol::ParseResult r = protocol::parse_ids(ids, *g_tok);
  check_valid_entries_round_trip(r);
  const Object fn{"fn object", protocol::GeometryKind::kBbox, {1, 2, 3, 4}};
  for (auto mode : {protocol::PrefixMode::kRaw, protocol::PrefixMode::kCanonical}) {
    const protocol::YIn y = protocol::build_y_in(r, {fn}, *g_tok, mode, protocol::FieldOrder::kDescFirst);
    require(y.ids.size() == y.layout.types.size() && y.ids.back() == g_tok->im_end_id(), "y_in ends with EOS");
    // Bytes, not decode(): a raw prefix may keep an invalid-UTF-8 entry (decode would write U+FFFD).
    std::string spelled;
    for (size_t i = 0; i + 1 < y.ids.size(); ++i) spelled += g_tok->token_bytes(y.ids[i]);
    require(spelled == y.text, "y_in ids spell y_in text");
    const protocol::ParseResult back = protocol::parse_ids(y.ids, *g_tok);
    require(back.status == protocol::RolloutStatus::kComplete, "y_in parses complete");
    require(!back.entries.empty() && back.entries.back().valid() && back.entries.back().object == fn,
            "y_in ends with the FN object");
    require(back.entries.size() == y.layout.objects.size(), "y_in objects match its entries");
    for (size_t i = 0; i < y.layout.objects.size(); ++i)
      require(back.entries[i].span.tokens.begin == y.layout.objects[i].tokens.begin &&
                  back.entries[i].span.coord_positions == y.layout.objects[i].coord_positions,
              "y_in spans match a re-parse");
  }
  return 0;
}
