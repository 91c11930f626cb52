// M-RoPE position ids against the spec's worked example (5.1) with and without left padding,
// several images per row, clear errors for inconsistent grids, and the interleaved frequency
// layout (5.2) checked slot by slot.
#include <gtest/gtest.h>

#include "coordexp/model/rope.h"
#include "coordexp/util/error.h"

namespace cm = coordexp::model;

namespace {

// Real Qwen3-VL ids (spec 1.4).
constexpr int64_t kImStart = 151644, kVStart = 151652, kVEnd = 151653, kImage = 151655, kPad = 151643;
const cm::RopeIndexSpec kSpec{kImage, 151656, kVStart, 2};

// <|im_start|>user\n<|vision_start|>[n x pad]<|vision_end|>{k text}...
std::vector<int64_t> prompt(int64_t n_pads, int64_t k_text) {
  std::vector<int64_t> ids{kImStart, 872, 198, kVStart};
  for (int64_t i = 0; i < n_pads; ++i) ids.push_back(kImage);
  ids.push_back(kVEnd);
  for (int64_t i = 0; i < k_text; ++i) ids.push_back(100 + i);
  return ids;
}

torch::Tensor row(const std::vector<int64_t>& ids) { return torch::tensor(ids, torch::kLong).unsqueeze(0); }

}  // namespace

TEST(MRope, SpecWorkedExampleWithAndWithoutLeftPadding) {
  const int64_t k = 7;
  auto ids = prompt(196, k);  // 448x448 image: grid (1, 28, 28) -> 14 x 14 tokens
  auto grid = torch::tensor({1, 28, 28}, torch::kLong).view({1, 3});
  auto r = cm::compute_rope_index(row(ids), grid, {}, kSpec);
  auto p = r.position_ids;
  EXPECT_EQ(p.size(2), 201 + k);
  for (int64_t t = 0; t < 4; ++t)
    for (int a = 0; a < 3; ++a) EXPECT_EQ(p[a][0][t].item<int64_t>(), t);
  for (int64_t hi : {0, 5, 13})
    for (int64_t wi : {0, 9, 13}) {
      const int64_t t = 4 + hi * 14 + wi;
      EXPECT_EQ(p[0][0][t].item<int64_t>(), 4);
      EXPECT_EQ(p[1][0][t].item<int64_t>(), 4 + hi);
      EXPECT_EQ(p[2][0][t].item<int64_t>(), 4 + wi);
    }
  EXPECT_EQ(p[0][0][200].item<int64_t>(), 18);  // <|vision_end|>
  EXPECT_EQ(p[2][0][201 + k - 1].item<int64_t>(), 18 + k);
  const int64_t S = static_cast<int64_t>(ids.size());
  EXPECT_EQ(r.rope_deltas.item<int64_t>(), 18 + k + 1 - S);
  EXPECT_EQ(r.rope_deltas.item<int64_t>(), 14 - 196);  // max(Hm, Wm) - Hm*Wm for one image
  EXPECT_EQ(r.next_position[0], 19 + k);

  // Left padding: the real tokens keep their positions, pads hold 1, the delta absorbs the pads.
  std::vector<int64_t> padded(3, kPad);
  padded.insert(padded.end(), ids.begin(), ids.end());
  auto mask = torch::ones({1, S + 3}, torch::kLong);
  mask.narrow(1, 0, 3).zero_();
  auto rp = cm::compute_rope_index(row(padded), grid, mask, kSpec);
  EXPECT_TRUE(rp.position_ids.narrow(2, 3, S).equal(p));
  EXPECT_TRUE(rp.position_ids.narrow(2, 0, 3).eq(1).all().item<bool>());
  EXPECT_EQ(rp.rope_deltas.item<int64_t>(), r.rope_deltas.item<int64_t>() - 3);
}

TEST(MRope, SeveralImagesInABatchAndErrors) {
  // Row 0: two images (grids (1,4,6) -> 2x3 tokens, (1,2,2) -> 1 token); row 1: one image (1,2,4).
  std::vector<int64_t> r0{kImStart, kVStart, kImage, kImage, kImage, kImage, kImage, kImage, kVEnd, 5, kVStart, kImage, kVEnd, 6};
  std::vector<int64_t> r1{kImStart, kVStart, kImage, kImage, kVEnd, 7, 8, 9, kPad, kPad, kPad, kPad, kPad, kPad};
  auto ids = torch::stack({torch::tensor(r0, torch::kLong), torch::tensor(r1, torch::kLong)});
  auto mask = torch::ones_like(ids);
  mask[1].narrow(0, 8, 6).zero_();
  auto grid = torch::tensor({1, 4, 6, 1, 2, 2, 1, 2, 4}, torch::kLong).view({3, 3});
  auto r = cm::compute_rope_index(ids, grid, mask, kSpec);
  auto at = [&](int a, int b, int t) { return r.position_ids[a][b][t].item<int64_t>(); };
  // Row 0: image 1 at base 2 (rows 0..1, cols 0..2), then text resumes at 5; image 2 at base 8.
  EXPECT_EQ(at(1, 0, 7), 2 + 1);
  EXPECT_EQ(at(2, 0, 7), 2 + 2);
  EXPECT_EQ(at(0, 0, 8), 5);   // <|vision_end|>
  EXPECT_EQ(at(0, 0, 10), 7);  // second <|vision_start|>
  EXPECT_EQ(at(1, 0, 11), 8);  // its single token at base 8
  EXPECT_EQ(at(0, 0, 13), 10);
  EXPECT_EQ(at(2, 1, 3), 2 + 1);  // row 1: image (1 x 2 tokens), second column
  EXPECT_EQ(at(0, 1, 7), 7);
  EXPECT_EQ(r.rope_deltas[0].item<int64_t>(), 11 - 14);
  EXPECT_EQ(r.rope_deltas[1].item<int64_t>(), 8 - 14);

  EXPECT_THROW(cm::compute_rope_index(ids, grid.narrow(0, 0, 2), mask, kSpec), coordexp::DataError);  // too few grids
  EXPECT_THROW(cm::compute_rope_index(ids, torch::cat({grid, grid.narrow(0, 0, 1)}), mask, kSpec), coordexp::DataError);
  auto wrong = grid.clone();
  wrong[2][2] = 6;  // row 1's block needs 3 tokens now
  try {
    cm::compute_rope_index(ids, wrong, mask, kSpec);
    FAIL();
  } catch (const coordexp::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("image block 0 of row 1 has 2 <|image_pad|> tokens but its grid (1, 2, 6) needs 3"),
              std::string::npos) << e.what();
  }
}

TEST(MRope, InterleavedSectionsTakeTheRightAxis) {
  // hd = 32, section [8, 4, 4]: slot j uses H when j%3==1 && j<12, W when j%3==2 && j<12, else T.
  auto inv = cm::rope_inv_freq(32, 10000.0);
  ASSERT_EQ(inv.size(0), 16);
  EXPECT_FLOAT_EQ(inv[1].item<float>(), 1.0f / std::pow(10000.0f, 2.0f / 32.0f));
  auto pos = torch::tensor({3, 50, 700}, torch::kLong).view({3, 1, 1});  // T=3, H=50, W=700
  auto [cos, sin] = cm::mrope_cos_sin(pos, inv, {8, 4, 4});
  for (int64_t j = 0; j < 16; ++j) {
    const int64_t p = (j % 3 == 1 && j < 12) ? 50 : (j % 3 == 2 && j < 12) ? 700 : 3;
    const float ang = static_cast<float>(p) * inv[j].item<float>();
    EXPECT_FLOAT_EQ(cos[0][0][j].item<float>(), std::cos(ang)) << j;
    EXPECT_FLOAT_EQ(sin[0][0][j + 16].item<float>(), std::sin(ang)) << j;
  }
}
