// Prompt text and samples against independent construction: the full sequence is compared with one
// tokenizer.encode of a hand-written chat text (prompt + answer + <|im_end|>), bins with
// round(999 x / W) computed here, coord positions with the coord-token ids at those positions.
// Also the object orders (sorted / as_is / random per sample and epoch).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "coordexp/coord/masks.h"
#include "coordexp/data/prompt.h"
#include "coordexp/protocol/coordjson.h"
#include "coordexp/tokenizer/chat_format.h"
#include "fixture.h"

namespace coordexp::data {
namespace {

using testing::bbox;
using testing::expected_bin;
using testing::make_dataset;
using testing::qwen_tokenizer;
using testing::record_line;
using testing::TempDir;
using testing::write_lines;
using testing::write_png;

std::string coord_tok(int k) { return "<|coord_" + std::to_string(k) + "|>"; }
std::string box_text(int w, int h, double x1, double y1, double x2, double y2) {
  return "[" + coord_tok(expected_bin(x1, w)) + ", " + coord_tok(expected_bin(y1, h)) + ", " +
         coord_tok(expected_bin(x2, w)) + ", " + coord_tok(expected_bin(y2, h)) + "]";
}
std::string chat_prompt_text(const std::vector<int>& pads, const std::string& user) {
  std::string s = "<|im_start|>user\n";
  for (const int n : pads) {
    s += "<|vision_start|>";
    for (int i = 0; i < n; ++i) s += "<|image_pad|>";
    s += "<|vision_end|>";
  }
  return s + user + "<|im_end|>\n<|im_start|>assistant\n";
}

TEST(DataPrompt, FormatInstructionFollowsTheOptionsAndTheRenderer) {
  using protocol::FieldOrder;
  const std::string desc_first = format_instruction(FieldOrder::kDescFirst, ObjectOrder::kSorted, PromptGeometry::kBbox);
  EXPECT_NE(desc_first.find("{\"objects\": [{\"desc\": \"<description>\", \"bbox_2d\": [x1, y1, x2, y2]}, ...]}"),
            std::string::npos)
      << desc_first;
  EXPECT_NE(desc_first.find("write \"desc\" before \"bbox_2d\""), std::string::npos);
  EXPECT_NE(desc_first.find("no other text"), std::string::npos);
  EXPECT_NE(desc_first.find("from 0 to 999"), std::string::npos);
  EXPECT_NE(desc_first.find("bare coordinate token"), std::string::npos);
  EXPECT_NE(desc_first.find("top to bottom"), std::string::npos);
  EXPECT_NE(desc_first.find("{\"objects\": []}"), std::string::npos);
  EXPECT_EQ(desc_first.find("poly"), std::string::npos);

  const std::string geo_first = format_instruction(FieldOrder::kGeometryFirst, ObjectOrder::kRandom, PromptGeometry::kBbox);
  EXPECT_NE(geo_first.find("[{\"bbox_2d\": [x1, y1, x2, y2], \"desc\": \"<description>\"}"), std::string::npos);
  EXPECT_NE(geo_first.find("write \"bbox_2d\" before \"desc\""), std::string::npos);
  EXPECT_NE(geo_first.find("any order"), std::string::npos);
  EXPECT_EQ(geo_first.find("top to bottom"), std::string::npos);
  EXPECT_NE(format_instruction(FieldOrder::kDescFirst, ObjectOrder::kAsIs, PromptGeometry::kBbox).find("any order"),
            std::string::npos);

  const std::string poly = format_instruction(FieldOrder::kDescFirst, ObjectOrder::kSorted, PromptGeometry::kPoly);
  EXPECT_NE(poly.find("\"desc\": \"<description>\", \"poly\": [x1, y1, x2, y2, x3, y3, ...]"), std::string::npos);
  EXPECT_EQ(poly.find("bbox_2d"), std::string::npos);
  const std::string both = format_instruction(FieldOrder::kDescFirst, ObjectOrder::kSorted, PromptGeometry::kBboxOrPoly);
  EXPECT_NE(both.find("bbox_2d"), std::string::npos);
  EXPECT_NE(both.find("\"poly\""), std::string::npos);

  // The example's key order is the renderer's key order for both field orders.
  for (const FieldOrder order : {FieldOrder::kDescFirst, FieldOrder::kGeometryFirst}) {
    const std::string answer = protocol::render_text({{"a", protocol::GeometryKind::kBbox, {1, 2, 3, 4}}}, order).text;
    const std::string prompt = format_instruction(order, ObjectOrder::kSorted, PromptGeometry::kBbox);
    EXPECT_EQ(answer.find("\"desc\"") < answer.find("\"bbox_2d\""), prompt.find("\"desc\"") < prompt.find("\"bbox_2d\""));
  }
}

TEST(DataPrompt, ConfiguredTextsAndChatLayout) {
  config::DataOptions d;
  config::ProtocolOptions p;
  PromptSpec spec = PromptSpec::from_config(d, p);
  EXPECT_FALSE(spec.system.has_value());
  EXPECT_EQ(spec.user_text, "Detect every object in the image. " +
                                format_instruction(protocol::FieldOrder::kDescFirst, ObjectOrder::kSorted,
                                                   PromptGeometry::kBbox));
  d.prompt_system = "You are a detector.";
  d.prompt_user = "Boxes please: {format} Thanks.";
  d.object_order = "random";
  p.field_order = "geometry_first";
  spec = PromptSpec::from_config(d, p);
  ASSERT_TRUE(spec.system.has_value());
  EXPECT_EQ(*spec.system, "You are a detector.");
  EXPECT_EQ(spec.user_text, "Boxes please: " +
                                format_instruction(protocol::FieldOrder::kGeometryFirst, ObjectOrder::kRandom,
                                                   PromptGeometry::kBbox) +
                                " Thanks.");
  // Images come first in the user turn, then the text; the system turn precedes it.
  EXPECT_EQ(tokenizer::render_chat_prompt(detection_chat_prompt(spec, {2, 1})),
            "<|im_start|>system\nYou are a detector.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>" +
                spec.user_text + "<|im_end|>\n<|im_start|>assistant\n");

  d.prompt_user = "Find <|coord_5|> things {format}";
  try {
    PromptSpec::from_config(d, p);
    FAIL() << "special-token text accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.prompt_user"), std::string::npos) << e.what();
  }
  d.prompt_user = "{format}";
  d.prompt_system = "<|im_start|>";
  EXPECT_THROW(PromptSpec::from_config(d, p), ConfigError);
  d.prompt_system.clear();
  d.prompt_geometry = "boxes";
  EXPECT_THROW(PromptSpec::from_config(d, p), ConfigError);
}

TEST(DataSample, IdsLabelsTypesAndPositionsMatchIndependentConstruction) {
  TempDir dir;
  write_png(dir.file("a.png"), 64, 48, 1);
  write_png(dir.file("b.png"), 96, 64, 2);
  write_png(dir.file("c.png"), 128, 96, 3);
  write_png(dir.file("d.png"), 64, 48, 4);
  nlohmann::json tokens_obj = {{"desc", "car"},
                               {"bbox_2d", {"<|coord_100|>", "<|coord_200|>", "<|coord_300|>", "<|coord_400|>"}}};
  write_lines(dir.file("train.jsonl"),
              {record_line({"a.png"}, 64, 48, {bbox("dog", 30, 20, 60, 40), bbox("black cat", 4, 2, 20, 30)}),
               record_line({"b.png"}, 96, 64, {bbox("person (left).", 10, 10, 50, 60)}),
               record_line({"c.png"}, 128, 96, {}),
               record_line({"a.png", "d.png"}, 64, 48, {tokens_obj})});
  const auto tok = qwen_tokenizer();
  const int coord0 = tok->coord_vocab().first_id;

  for (const std::string field_order : {"desc_first", "geometry_first"}) {
    SCOPED_TRACE(field_order);
    config::DataOptions d = testing::test_data_options();
    config::ProtocolOptions p;
    p.field_order = field_order;
    const auto ds = make_dataset({dir.file("train.jsonl")}, d, p);
    ASSERT_EQ(ds->size(), 4);
    const std::string user =
        "Find the objects. " + format_instruction(protocol::field_order(p), ObjectOrder::kSorted, PromptGeometry::kBbox);
    const bool desc_first = field_order == "desc_first";
    auto rec = [&](const std::string& desc, const std::string& box) {
      const std::string d_part = "\"desc\": \"" + desc + "\"", b_part = "\"bbox_2d\": " + box;
      return "{" + (desc_first ? d_part + ", " + b_part : b_part + ", " + d_part) + "}";
    };
    struct Expected {
      std::vector<int> pads;
      std::string answer;
      std::vector<std::vector<int>> bins;
      std::vector<std::vector<double>> c_gt;
      std::vector<std::string> descs;
    };
    // Sorted by (y1, x1): the cat (y1 = 2) precedes the dog.
    const std::vector<Expected> expected = {
        {{4},
         "{\"objects\": [" + rec("black cat", box_text(64, 48, 4, 2, 20, 30)) + ", " +
             rec("dog", box_text(64, 48, 30, 20, 60, 40)) + "]}",
         {{expected_bin(4, 64), expected_bin(2, 48), expected_bin(20, 64), expected_bin(30, 48)},
          {expected_bin(30, 64), expected_bin(20, 48), expected_bin(60, 64), expected_bin(40, 48)}},
         {{4.0 / 64, 2.0 / 48, 20.0 / 64, 30.0 / 48}, {30.0 / 64, 20.0 / 48, 60.0 / 64, 40.0 / 48}},
         {"black cat", "dog"}},
        {{6},
         "{\"objects\": [" + rec("person (left).", box_text(96, 64, 10, 10, 50, 60)) + "]}",
         {{expected_bin(10, 96), expected_bin(10, 64), expected_bin(50, 96), expected_bin(60, 64)}},
         {{10.0 / 96, 10.0 / 64, 50.0 / 96, 60.0 / 64}},
         {"person (left)."}},
        {{12}, "{\"objects\": []}", {}, {}, {}},
        {{4, 4},
         "{\"objects\": [" + rec("car", "[<|coord_100|>, <|coord_200|>, <|coord_300|>, <|coord_400|>]") + "]}",
         {{100, 200, 300, 400}},
         {{100.0 / 999, 200.0 / 999, 300.0 / 999, 400.0 / 999}},
         {"car"}},
    };
    for (int64_t i = 0; i < ds->size(); ++i) {
      SCOPED_TRACE("sample " + std::to_string(i));
      const Expected& e = expected[static_cast<size_t>(i)];
      const Sample s = ds->get(i, 0);
      const std::string prompt_text = chat_prompt_text(e.pads, user);
      const std::vector<tokenizer::TokenId> want = tok->encode(prompt_text + e.answer + "<|im_end|>");
      const auto p_len = static_cast<int64_t>(tok->encode(prompt_text).size());
      ASSERT_EQ(s.input_ids, want) << tok->decode(s.input_ids);
      EXPECT_EQ(s.answer_begin, p_len);
      EXPECT_EQ(s.length(), ds->sequence_length(i));
      for (int64_t t = 0; t < s.length(); ++t)
        ASSERT_EQ(s.labels[static_cast<size_t>(t)], t < p_len ? kIgnoreLabel : want[static_cast<size_t>(t)]) << t;
      // Images: grids and pad counts as smart_resize predicts; pixels as the preprocessor gives them.
      ASSERT_EQ(s.image_grid_thw.size(0), static_cast<int64_t>(e.pads.size()));
      for (size_t k = 0; k < e.pads.size(); ++k) {
        EXPECT_EQ(s.image_token_counts[k], e.pads[k]);
        EXPECT_EQ(s.image_grid_thw[static_cast<int64_t>(k)].prod().item<int64_t>(), 4 * e.pads[k]);
      }
      const auto& r = ds->record(i);
      std::vector<torch::Tensor> rgb;
      for (const auto& path : r.images) rgb.push_back(model::load_rgb_image(path));
      EXPECT_TRUE(torch::equal(s.pixel_values, (*testing::small_preprocessor())(rgb).pixel_values));
      // Types: eos last, coord exactly at the objects' coord positions, desc tokens spell the desc.
      ASSERT_EQ(s.answer_length(), static_cast<int64_t>(s.answer_types.size()));
      EXPECT_EQ(s.answer_types.back(), protocol::TokenType::kEos);
      EXPECT_EQ(s.eos, s.length() - 1);
      EXPECT_EQ(s.input_ids[static_cast<size_t>(s.eos)], tok->im_end_id());
      std::set<int64_t> coord_positions;
      ASSERT_EQ(s.objects.size(), e.bins.size());
      for (size_t j = 0; j < s.objects.size(); ++j) {
        const SampleObject& o = s.objects[j];
        EXPECT_EQ(o.desc, e.descs[j]);
        EXPECT_EQ(o.bins, e.bins[j]);
        ASSERT_EQ(o.c_gt.size(), e.c_gt[j].size());
        for (size_t k = 0; k < o.c_gt.size(); ++k) EXPECT_NEAR(o.c_gt[k], e.c_gt[j][k], 1e-12);
        ASSERT_EQ(o.coord_positions.size(), o.bins.size());
        for (size_t k = 0; k < o.bins.size(); ++k) {
          const int64_t pos = o.coord_positions[k];
          EXPECT_EQ(s.input_ids[static_cast<size_t>(pos)], coord0 + o.bins[k]) << "object " << j << " value " << k;
          EXPECT_GE(pos, o.record.begin);
          EXPECT_LT(pos, o.record.end);
          coord_positions.insert(pos);
        }
        std::vector<tokenizer::TokenId> desc_ids(s.input_ids.begin() + o.desc_tokens.begin,
                                                 s.input_ids.begin() + o.desc_tokens.end);
        EXPECT_NE(tok->decode(desc_ids).find(o.desc), std::string::npos) << tok->decode(desc_ids);
        std::vector<tokenizer::TokenId> record_ids(s.input_ids.begin() + o.record.begin,
                                                   s.input_ids.begin() + o.record.end);
        const std::string record_text = tok->decode(record_ids);
        EXPECT_NE(record_text.find("\"desc\": \"" + o.desc + "\""), std::string::npos) << record_text;
        EXPECT_NE(record_text.find("\"bbox_2d\": ["), std::string::npos) << record_text;
      }
      for (int64_t t = 0; t < s.answer_length(); ++t) {
        const bool is_coord = coord_positions.count(s.answer_begin + t) > 0;
        EXPECT_EQ(s.answer_types[static_cast<size_t>(t)] == protocol::TokenType::kCoord, is_coord) << t;
      }
      // The coord module accepts the layout; gt-context coord weights land on exactly the coords.
      const coord::ResponseLayout layout = s.response_layout();
      EXPECT_NO_THROW(coord::check_layout(layout));
      const auto w = coord::build_token_weights(layout, coord::Context::kGt, config::LossOptions{});
      EXPECT_EQ((w.coord_w > 0).sum().item<int64_t>(), static_cast<int64_t>(coord_positions.size()));
      for (size_t j = 0; j < s.objects.size(); ++j)
        for (size_t k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(layout.objects[j].gt_box[k], s.objects[j].c_gt[k]);
    }
  }
}

TEST(DataSample, ObjectOrderSortedAsIsAndRandomPerSampleAndEpoch) {
  TempDir dir;
  write_png(dir.file("a.png"), 64, 48, 1);
  // File order has descending top edges; two objects tie on y1 and differ in x1.
  std::vector<nlohmann::json> objects;
  const double y1s[] = {40, 30, 20, 20, 10, 0};
  const double x1s[] = {5, 6, 30, 2, 8, 9};
  for (int k = 0; k < 6; ++k) objects.push_back(bbox("o" + std::to_string(k), x1s[k], y1s[k], 60, 46));
  write_lines(dir.file("t.jsonl"), {record_line({"a.png"}, 64, 48, objects), record_line({"a.png"}, 64, 48, objects)});
  auto descs = [](const Sample& s) {
    std::vector<std::string> out;
    for (const auto& o : s.objects) out.push_back(o.desc);
    return out;
  };
  config::DataOptions d = testing::test_data_options();
  EXPECT_EQ(descs(make_dataset({dir.file("t.jsonl")}, d)->get(0, 3)),
            (std::vector<std::string>{"o5", "o4", "o3", "o2", "o1", "o0"}));
  d.object_order = "as_is";
  EXPECT_EQ(descs(make_dataset({dir.file("t.jsonl")}, d)->get(0, 3)),
            (std::vector<std::string>{"o0", "o1", "o2", "o3", "o4", "o5"}));
  d.object_order = "random";
  const auto ds = make_dataset({dir.file("t.jsonl")}, d);
  const auto again = make_dataset({dir.file("t.jsonl")}, d);
  std::set<std::vector<std::string>> seen;
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    const auto order = descs(ds->get(0, epoch));
    EXPECT_EQ(order, descs(again->get(0, epoch)));  // a function of (sample, epoch) only
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<std::string>{"o0", "o1", "o2", "o3", "o4", "o5"}));
    seen.insert(order);
    // Spans follow the drawn order: record_object names the file index of each sequence object.
    const Sample s = ds->get(0, epoch);
    for (const auto& o : s.objects) EXPECT_EQ("o" + std::to_string(o.record_object), o.desc);
  }
  EXPECT_GE(seen.size(), 4u);  // 6 draws of 720 permutations
  // The same record content on another line gets another order in some epoch.
  bool differs = false;
  for (int64_t epoch = 0; epoch < 6; ++epoch) differs |= descs(ds->get(0, epoch)) != descs(ds->get(1, epoch));
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace coordexp::data
