// CoordJSON-constrained decoding with the real Qwen3 tokenizer ($COORDEXP_TOKENIZER_DIR): the ids
// of rendered answers (both field orders, bbox and poly) are never forbidden; random walks over the
// allowed ids give answers that parse_ids reads as complete with every entry valid (or, cut short,
// a clean prefix); specific tokens are forbidden where the grammar says so; and the per-step cost of
// allowed() at the full vocabulary is measured.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "coordexp/protocol/parse.h"
#include "coordexp/protocol/render.h"
#include "coordexp/rollout/coordjson_constraint.h"
#include "coordexp/util/error.h"
#include "unit/protocol/qwen_tokenizer.h"
#include "unit/protocol/test_objects.h"

namespace {

using namespace coordexp;
using namespace coordexp::rollout;
using protocol::FieldOrder;
using protocol::Object;
using protocol::testing::make_box;
using protocol::testing::qwen_tokenizer;
using tokenizer::TokenId;
using Ids = std::vector<TokenId>;

constexpr int64_t kQwenRows = 152670;  // 151,669 Qwen3 ids + 1,001 coord tokens

std::unique_ptr<ConstraintFactory> factory(FieldOrder order, AllowedGeometry geometry,
                                           int64_t rows = kQwenRows) {
  CoordJsonConstraintOptions o;
  o.field_order = order;
  o.geometry = geometry;
  o.vocab_rows = rows;
  return make_coordjson_constraint(qwen_tokenizer(), o);
}

std::vector<uint8_t> allowed_of(const RowConstraint& row, int64_t rows = kQwenRows) {
  std::vector<uint8_t> a(static_cast<size_t>(rows), 1);
  row.allowed(a);
  return a;
}

size_t count(const std::vector<uint8_t>& a) {
  size_t n = 0;
  for (uint8_t v : a) n += v != 0;
  return n;
}

// Feeds `ids`; returns the index of the first forbidden one, or -1.
int first_forbidden(RowConstraint& row, const Ids& ids) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!allowed_of(row)[ids[i]]) return static_cast<int>(i);
    row.advance(ids[i]);
  }
  return -1;
}

Ids encode(const std::string& s) { return qwen_tokenizer().encode(s); }

TEST(CoordJsonConstraint, TokenizerVocabularySize) {
  EXPECT_EQ(static_cast<int64_t>(qwen_tokenizer().vocab_size()), kQwenRows);
}

// (i) Real rendered answers: every id is allowed at its step, including <|im_end|> at the end.
TEST(CoordJsonConstraint, RenderedAnswersAreNeverForbidden) {
  const auto& tok = qwen_tokenizer();
  std::mt19937 rng(5);
  std::vector<std::vector<Object>> sets = {
      {},
      {protocol::testing::black_cat_gt(), protocol::testing::yellow_dog_gt()},
      {make_box("a } ] { [ \" \\ \" ]} \n", {0, 1, 998, 999})},
      {make_box("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80", {1, 2, 3, 4})},
      {make_box(std::string("ctl\x01\x1f\x7f end", 11), {5, 6, 7, 8})},
      {make_box("<| |> <||> a|b <|x", {9, 10, 11, 12})},
  };
  for (int i = 0; i < 120; ++i) sets.push_back(protocol::testing::random_objects(rng, 12));
  int answers = 0;
  for (FieldOrder order : {FieldOrder::kDescFirst, FieldOrder::kGeometryFirst}) {
    const auto both = factory(order, AllowedGeometry::kBboxOrPoly);
    const auto bbox_only = factory(order, AllowedGeometry::kBbox);
    for (const auto& objs : sets) {
      const protocol::TokenizedAnswer a = protocol::render_answer(objs, tok, order);
      ASSERT_EQ(a.ids.back(), tok.im_end_id());
      auto row = both->make_row();
      ASSERT_EQ(first_forbidden(*row, a.ids), -1) << a.text;
      bool has_poly = false;
      for (const auto& o : objs) has_poly |= o.kind == protocol::GeometryKind::kPoly;
      auto bbox_row = bbox_only->make_row();
      const int at = first_forbidden(*bbox_row, a.ids);
      if (has_poly) {
        ASSERT_GE(at, 0) << a.text;  // a poly under a bbox-only prompt is refused at its key
        EXPECT_NE(tok.token_bytes(a.ids[at]).find('p'), std::string::npos) << tok.token_bytes(a.ids[at]);
      } else {
        ASSERT_EQ(at, -1) << a.text;
      }
      ++answers;
    }
  }
  EXPECT_EQ(answers, 2 * 126);
}

// Ids worth favouring so walks close their strings and records instead of writing endless descs.
std::vector<TokenId> structural_ids() {
  const auto& tok = qwen_tokenizer();
  std::vector<TokenId> ids;
  for (TokenId id = 0; id < static_cast<TokenId>(tok.vocab_size()); ++id) {
    if (tok.is_special(id) || tok.coord_vocab().is_coord(id)) continue;
    const std::string b = tok.token_bytes(id);
    if (b.size() <= 4 && b.find_first_of("\"]},\\") != std::string::npos) ids.push_back(id);
  }
  for (int k = 0; k < 1000; k += 37) ids.push_back(tok.coord_vocab().coord_id(k));
  ids.push_back(tok.im_end_id());
  return ids;
}

// (ii) Random walks over allowed ids: finished answers parse complete with every entry valid; walks
// cut at the step bound are clean prefixes (truncated, every completed entry valid).
TEST(CoordJsonConstraint, RandomWalksParseCompleteAndValid) {
  const auto& tok = qwen_tokenizer();
  const std::vector<TokenId> favoured = structural_ids();
  std::mt19937 rng(17);
  int finished = 0, cut = 0, entries = 0, polys = 0;
  for (FieldOrder order : {FieldOrder::kDescFirst, FieldOrder::kGeometryFirst}) {
    for (AllowedGeometry geometry : {AllowedGeometry::kBbox, AllowedGeometry::kPoly, AllowedGeometry::kBboxOrPoly}) {
      const auto f = factory(order, geometry);
      for (int walk = 0; walk < 40; ++walk) {
        auto row = f->make_row();
        Ids ids;
        bool ended = false;
        for (int step = 0; step < 200 && !ended; ++step) {
          const std::vector<uint8_t> a = allowed_of(*row);
          std::vector<TokenId> pool;
          for (TokenId id : favoured)
            if (a[id]) pool.push_back(id);
          if (pool.empty() || rng() % 3 == 0) {
            // Uniform over the allowed ids: rejection sampling, then a scan when few are allowed.
            pool.clear();
            for (int t = 0; t < 64 && pool.empty(); ++t) {
              const auto id = static_cast<TokenId>(rng() % a.size());
              if (a[id]) pool.push_back(id);
            }
            if (pool.empty())
              for (TokenId id = 0; id < static_cast<TokenId>(a.size()); ++id)
                if (a[id]) pool.push_back(id);
          }
          ASSERT_FALSE(pool.empty());
          TokenId id = pool[rng() % pool.size()];
          // Close the array less often than going on, so walks hold several records.
          auto closes = [&](TokenId t) {
            const std::string b = tok.token_bytes(t);
            return b.find("[]") != std::string::npos || b.find("]}") != std::string::npos;
          };
          for (int retry = 0; retry < 12 && closes(id); ++retry) id = pool[rng() % pool.size()];
          row->advance(id);
          ids.push_back(id);
          ended = id == tok.im_end_id();
        }
        const protocol::ParseResult p = protocol::parse_ids(ids, tok);
        ASSERT_TRUE(p.has_prefix || ids.size() < 8) << p.text;
        for (size_t e = 0; e < p.num_complete; ++e) {
          ASSERT_TRUE(p.entries[e].valid()) << protocol::drop_reason_name(p.entries[e].reason) << " "
                                            << p.entries[e].detail << "\n" << p.text;
          const bool poly = p.entries[e].object.kind == protocol::GeometryKind::kPoly;
          ASSERT_NE(geometry, poly ? AllowedGeometry::kBbox : AllowedGeometry::kPoly) << p.text;
          polys += poly;
        }
        if (ended) {
          ASSERT_EQ(p.status, protocol::RolloutStatus::kComplete) << p.error << "\n" << p.text;
          ASSERT_EQ(p.num_valid(), p.entries.size());
          // The text is exactly canonical: re-rendering the objects gives it back.
          ASSERT_EQ(protocol::render_text(p.valid_objects(), order).text, p.text);
          ++finished;
        } else {
          ASSERT_NE(p.status, protocol::RolloutStatus::kMalformed) << p.error << "\n" << p.text;
          ASSERT_LE(p.entries.size(), p.num_complete + 1);
          ++cut;
        }
        entries += static_cast<int>(p.num_complete);
      }
    }
  }
  EXPECT_GT(finished, 60);  // most walks end; the bound stops the rest
  EXPECT_GT(entries, 300);
  EXPECT_GT(cut, 0);
  EXPECT_GT(polys, 10);
  std::printf("random walks: %d finished, %d cut at 200 steps, %d entries (%d poly)\n", finished, cut,
              entries, polys);
}

// (iii) Forbidden where the grammar says so.
TEST(CoordJsonConstraint, SpecificForbiddenTokens) {
  const auto& tok = qwen_tokenizer();
  const auto& coords = tok.coord_vocab();
  const TokenId im_end = tok.im_end_id();
  const auto f = factory(FieldOrder::kDescFirst, AllowedGeometry::kBbox);
  auto at = [&](const std::string& text) {
    auto row = f->make_row();
    EXPECT_EQ(first_forbidden(*row, encode(text)), -1) << text;
    return row;
  };
  auto single = [&](const std::string& s) {
    const Ids ids = encode(s);
    EXPECT_EQ(ids.size(), 1u) << s;
    return ids.at(0);
  };
  // Start: only the head; never <|im_end|>, a coord, or a special token.
  {
    auto row = f->make_row();
    const auto a = allowed_of(*row);
    EXPECT_TRUE(a[single("{\"")]);
    EXPECT_FALSE(a[im_end]);
    EXPECT_FALSE(a[coords.coord_id(0)]);
    EXPECT_FALSE(a[tok.endoftext_id()]);
    EXPECT_FALSE(a[single("[")]);
  }
  // Coord slot inside bbox_2d: the 1000 coord tokens and nothing else (no number, no wildcard).
  {
    auto row = at(R"({"objects": [{"desc": "cat", "bbox_2d": [)");
    const auto a = allowed_of(*row);
    EXPECT_EQ(count(a), 1000u);
    EXPECT_TRUE(a[coords.coord_id(0)] && a[coords.coord_id(999)]);
    EXPECT_FALSE(a[coords.wildcard_id]);
    for (const char* number : {"1", "0", "-", " ", "]", "\""}) EXPECT_FALSE(a[single(number)]) << number;
    EXPECT_FALSE(a[im_end]);
  }
  // After the 3rd coord: ", " only; `]}` (a short bbox) forbidden. After the 4th: `]}` family.
  {
    Ids ids = encode(R"({"objects": [{"desc": "cat", "bbox_2d": [)");
    auto row = f->make_row();
    ASSERT_EQ(first_forbidden(*row, ids), -1);
    for (int k = 0; k < 3; ++k) {
      if (k) {
        for (TokenId id : encode(", ")) row->advance(id);
      }
      row->advance(coords.coord_id(k));
    }
    auto a = allowed_of(*row);
    EXPECT_TRUE(a[single(",")]);
    EXPECT_FALSE(a[single("]}")]);
    EXPECT_FALSE(a[single("]")]);
    EXPECT_FALSE(a[coords.coord_id(5)]);  // no coord without its separator
    for (TokenId id : encode(", ")) row->advance(id);
    row->advance(coords.coord_id(3));
    a = allowed_of(*row);
    EXPECT_TRUE(a[single("]}")]);
    EXPECT_TRUE(a[single("]},")]);
    EXPECT_FALSE(a[single(",")]);
    EXPECT_FALSE(a[im_end]);
  }
  // <|im_end|> before the closing `]}`: after the head, after a record, after `]`.
  for (const char* text : {R"({"objects": [)",
                           R"({"objects": [{"desc": "cat", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]})",
                           R"({"objects": [])"}) {
    auto row = at(text);
    EXPECT_FALSE(allowed_of(*row)[im_end]) << text;
  }
  // After `]}`: only <|im_end|>.
  {
    auto row = at(R"({"objects": []})");
    const auto a = allowed_of(*row);
    EXPECT_EQ(count(a), 1u);
    EXPECT_TRUE(a[im_end]);
  }
  // Inside a desc: free text and escapes, but no coord or special token, no raw control byte, no
  // closing quote on an empty or blank desc, no invalid UTF-8 lead byte after a pending one.
  {
    auto row = at(R"({"objects": [{"desc": ")");
    auto a = allowed_of(*row);
    EXPECT_GT(count(a), 100000u);
    EXPECT_FALSE(a[coords.coord_id(7)]);
    EXPECT_FALSE(a[coords.wildcard_id]);
    EXPECT_FALSE(a[*tok.token_to_id("<|vision_start|>")]);
    EXPECT_FALSE(a[im_end]);
    EXPECT_FALSE(a[single("\"")]);  // empty desc
    EXPECT_FALSE(a[single("\",")]);
    EXPECT_TRUE(a[single("cat")]);
    EXPECT_TRUE(a[single("\\n")]);
    EXPECT_FALSE(a[single("\n")]);  // raw newline
    row = at(R"({"objects": [{"desc": " )");
    EXPECT_FALSE(allowed_of(*row)[single("\",")]);  // blank desc
    row = at(R"({"objects": [{"desc": "a)");
    a = allowed_of(*row);
    EXPECT_TRUE(a[single("\",")]);
    EXPECT_FALSE(a[coords.coord_id(1)]);
    // `\` must start an escape escape_json_string writes: no \q (not JSON), no \/ (not canonical).
    row = at(R"({"objects": [{"desc": "a\)");
    a = allowed_of(*row);
    EXPECT_FALSE(a[single("q")]);
    EXPECT_FALSE(a[single("/")]);
    EXPECT_TRUE(a[single("u")]);
    EXPECT_TRUE(a[single("n")]);
    EXPECT_TRUE(a[single("\"")]);
    // \u only as \u00XX for a control character without a short escape, lowercase.
    row = at(R"({"objects": [{"desc": "a\u00)");
    a = allowed_of(*row);
    EXPECT_TRUE(a[single("0")]);
    EXPECT_TRUE(a[single("1")]);
    EXPECT_FALSE(a[single("2")]);  // \u002X is printable: written raw
    row = at(R"({"objects": [{"desc": "a\u001)");
    a = allowed_of(*row);
    EXPECT_TRUE(a[single("f")]);
    EXPECT_FALSE(a[single("F")]);
    row = at(R"({"objects": [{"desc": "a\u000)");
    a = allowed_of(*row);
    EXPECT_TRUE(a[single("1")]);
    EXPECT_FALSE(a[single("a")]);  // \u000a is written \n
    // Escaped whitespace is still blank.
    row = at(R"({"objects": [{"desc": "\n\t \r)");
    EXPECT_FALSE(allowed_of(*row)[single("\",")]);
    // <|coord_5|> or <|im_end|> spelled as text is refused at its closing '>'.
    for (const char* prefix : {R"({"objects": [{"desc": "x <|coord_5|)", R"({"objects": [{"desc": "x <|im_end|)"}) {
      auto r = f->make_row();
      const Ids ids = encode(prefix);
      ASSERT_EQ(first_forbidden(*r, ids), -1) << prefix;
      EXPECT_FALSE(allowed_of(*r)[single(">")]) << prefix;
      EXPECT_TRUE(allowed_of(*r)[single("x")]) << prefix;
    }
  }
  // A started multi-byte character must be completed before the quote: byte tokens show it.
  {
    auto byte_token = [&](unsigned char b) {
      for (TokenId id = 0; id < static_cast<TokenId>(tok.vocab_size()); ++id)
        if (!tok.is_special(id) && tok.token_bytes(id) == std::string(1, static_cast<char>(b))) return id;
      throw std::runtime_error("no byte token");
    };
    auto row = at(R"({"objects": [{"desc": "a)");
    auto a = allowed_of(*row);
    EXPECT_FALSE(a[byte_token(0x80)]);  // continuation without a lead
    EXPECT_FALSE(a[byte_token(0xFF)]);
    EXPECT_FALSE(a[byte_token(0xC0)]);  // overlong lead
    row->advance(byte_token(0xE4));
    a = allowed_of(*row);
    EXPECT_FALSE(a[single("\",")]);
    EXPECT_FALSE(a[single("a")]);
    EXPECT_TRUE(a[byte_token(0xB8)]);
    row->advance(byte_token(0xB8));
    row->advance(byte_token(0xAD));  // 中
    EXPECT_TRUE(allowed_of(*row)[single("\",")]);
  }
  // Poly only when the prompt allows it; then an odd count or fewer than 6 cannot close.
  {
    auto row = at(R"({"objects": [{"desc": "cat", ")");
    EXPECT_FALSE(allowed_of(*row)[single("poly")]);
    const auto fp = factory(FieldOrder::kDescFirst, AllowedGeometry::kBboxOrPoly);
    auto p = fp->make_row();
    ASSERT_EQ(first_forbidden(*p, encode(R"({"objects": [{"desc": "cat", "poly": [)")), -1);
    for (int k = 0; k < 7; ++k) {
      if (k) {
        for (TokenId id : encode(", ")) p->advance(id);
      }
      p->advance(coords.coord_id(k));
      EXPECT_EQ(allowed_of(*p)[single("]}")], k == 5) << k + 1 << " coords";
    }
  }
  // Geometry-first order: the desc comes after the geometry and closes the record.
  {
    const auto g = factory(FieldOrder::kGeometryFirst, AllowedGeometry::kBbox);
    auto row = g->make_row();
    EXPECT_EQ(first_forbidden(*row, encode(R"({"objects": [{")")), -1);
    const auto a = allowed_of(*row);
    EXPECT_TRUE(a[single("bbox")]);
    EXPECT_FALSE(a[single("desc")]);
  }
  // An id the constraint forbade is an error, not a silent state change.
  {
    auto row = f->make_row();
    EXPECT_THROW(row->advance(im_end), InternalError);
  }
}

// Logit rows beyond the tokenizer are always forbidden; the row count must match.
TEST(CoordJsonConstraint, RowsBeyondTheTokenizerAreForbidden) {
  const int64_t rows = kQwenRows + 130;
  const auto f = factory(FieldOrder::kDescFirst, AllowedGeometry::kBbox, rows);
  auto row = f->make_row();
  ASSERT_EQ(first_forbidden(*row, Ids{}), -1);
  for (const char* text : {"", R"({"objects": [{"desc": "a)"}) {
    auto r = f->make_row();
    for (TokenId id : encode(text)) r->advance(id);
    const auto a = allowed_of(*r, rows);
    for (int64_t id = kQwenRows; id < rows; ++id) ASSERT_FALSE(a[id]) << id;
    EXPECT_THROW(r->advance(kQwenRows + 3), InternalError);
  }
  std::vector<uint8_t> wrong(kQwenRows, 1);
  EXPECT_THROW(row->allowed(wrong), InternalError);
  CoordJsonConstraintOptions o;
  o.vocab_rows = kQwenRows - 1;
  EXPECT_THROW(make_coordjson_constraint(qwen_tokenizer(), o), InternalError);
  EXPECT_EQ(allowed_geometry_from_name("bbox_or_poly"), AllowedGeometry::kBboxOrPoly);
  config::ProtocolOptions protocol_options;
  protocol_options.field_order = "geometry_first";
  config::DataOptions data_options;
  data_options.prompt_geometry = "poly";
  const CoordJsonConstraintOptions from = CoordJsonConstraintOptions::from_config(protocol_options, data_options, rows);
  EXPECT_EQ(from.field_order, FieldOrder::kGeometryFirst);
  EXPECT_EQ(from.geometry, AllowedGeometry::kPoly);
  EXPECT_EQ(from.vocab_rows, rows);
  EXPECT_THROW(allowed_geometry_from_name("box"), ConfigError);
}

// Per-step cost of allowed() + advance() at 152,670 rows over real answers, masks already cached
// (the first visit of each automaton state computes its mask once for all rows: timed apart).
TEST(CoordJsonConstraint, PerStepCostAtFullVocabulary) {
  const auto& tok = qwen_tokenizer();
  std::mt19937 rng(3);
  std::vector<Ids> answers;
  for (int i = 0; i < 40; ++i)
    answers.push_back(protocol::render_answer(protocol::testing::random_objects(rng, 10), tok,
                                              FieldOrder::kDescFirst).ids);
  using Clock = std::chrono::steady_clock;
  const auto f = factory(FieldOrder::kDescFirst, AllowedGeometry::kBboxOrPoly);
  std::vector<uint8_t> a(kQwenRows, 1);
  // One cold mask: the desc start state runs every token's bytes once.
  {
    auto row = f->make_row();
    for (TokenId id : encode(R"({"objects": [{"desc": ")")) {
      std::fill(a.begin(), a.end(), 1);
      row->allowed(a);
      row->advance(id);
    }
    std::fill(a.begin(), a.end(), 1);
    const auto c0 = Clock::now();
    row->allowed(a);
    std::printf("constraint: one cold desc-state mask %.2f ms (%zu of %lld ids allowed)\n",
                1e3 * std::chrono::duration<double>(Clock::now() - c0).count(), count(a),
                static_cast<long long>(kQwenRows));
  }
  int64_t forbidden = 0;
  auto run = [&] {
    int64_t steps = 0;
    for (const Ids& ids : answers) {
      auto row = f->make_row();
      for (TokenId id : ids) {
        std::fill(a.begin(), a.end(), 1);
        row->allowed(a);
        forbidden += a[id] == 0;
        row->advance(id);
        ++steps;
      }
    }
    return steps;
  };
  auto t0 = Clock::now();
  const int64_t steps = run();
  const double cold = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  run();
  const double warm = std::chrono::duration<double>(Clock::now() - t0).count();
  // The fill of the 152,670-byte vector (the generator's job) is inside the timing.
  std::printf("constraint: %lld steps, first pass %.3f s (mask building), cached %.1f us/step\n",
              static_cast<long long>(steps), cold, 1e6 * warm / steps);
  EXPECT_EQ(forbidden, 0);
  EXPECT_LT(warm / steps, 2e-3);  // far below a decode step even on a loaded machine
}

}  // namespace
