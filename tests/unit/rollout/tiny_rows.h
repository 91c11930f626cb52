// Shared by the rollout unit tests: the tiny fixture model (tests/data/qwen3vl-tiny-a, 2051-token
// vocabulary), chat-like prompt rows with and without images, the request builder, teacher-forced
// full forwards (no cache) and greedy options. Header-only test helpers.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/rollout/generator.h"

namespace coordexp::rollout::testing {

inline const std::string kFixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";
constexpr int64_t kImStart = 1025, kImEnd = 1026, kVStart = 1033, kVEnd = 1034, kImage = 1036;
constexpr int64_t kVocab = 2051;

inline ::coordexp::model::Qwen3VL& model() {
  static ::coordexp::model::Qwen3VL m = ::coordexp::model::Qwen3VL::load(kFixture);
  return m;
}

struct Row {
  std::vector<int64_t> prompt;
  std::vector<torch::Tensor> pixels;  // per image [gh*gw, 1536]
  std::vector<std::vector<int64_t>> grids;
};

// A chat-like prompt: optional image (gh x gw patches), then `text` ids, then the assistant prefix.
inline Row make_row(int64_t gh, int64_t gw, uint64_t seed, std::vector<int64_t> text) {
  Row r;
  r.prompt = {kImStart, 872, 198};
  if (gh > 0) {
    auto gen = at::detail::createCPUGenerator(seed);
    r.pixels.push_back(torch::rand({gh * gw, 1536}, gen, torch::kFloat) * 2 - 1);
    r.grids.push_back({1, gh, gw});
    r.prompt.push_back(kVStart);
    for (int64_t i = 0; i < gh * gw / 4; ++i) r.prompt.push_back(kImage);
    r.prompt.push_back(kVEnd);
  }
  r.prompt.insert(r.prompt.end(), text.begin(), text.end());
  for (int64_t t : {kImEnd, int64_t{198}, kImStart, int64_t{517}, int64_t{198}}) r.prompt.push_back(t);
  return r;
}

inline std::vector<Row> rows() {
  return {make_row(6, 8, 1, {620, 279, 731, 905, 13}), make_row(0, 0, 0, {100, 200}),
          make_row(4, 4, 2, {400, 500, 600, 700, 800, 900, 1000, 11, 12, 13, 14, 15, 16}),
          make_row(8, 6, 3, {300})};
}

inline ::coordexp::rollout::GenerationRequest request(const std::vector<Row>& rs) {
  ::coordexp::rollout::GenerationRequest req;
  std::vector<torch::Tensor> px, grid;
  for (const auto& r : rs) {
    req.prompts.push_back(r.prompt);
    for (size_t i = 0; i < r.pixels.size(); ++i) {
      px.push_back(r.pixels[i]);
      grid.push_back(torch::tensor(r.grids[i], torch::kLong).unsqueeze(0));
    }
  }
  if (!px.empty()) {
    req.pixel_values = torch::cat(px);
    req.image_grid_thw = torch::cat(grid);
  }
  return req;
}

// Teacher forcing: logits [T, V] of one full forward (no cache, no padding) over prompt + ids.
inline torch::Tensor full_logits(const Row& r, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  ::coordexp::model::VisionFeatures vision;
  if (!r.pixels.empty()) {
    std::vector<torch::Tensor> grid;
    for (const auto& g : r.grids) grid.push_back(torch::tensor(g, torch::kLong).unsqueeze(0));
    vision = model().encode_images(torch::cat(r.pixels), torch::cat(grid));
  }
  std::vector<int64_t> seq = r.prompt;
  seq.insert(seq.end(), ids.begin(), ids.end());
  ::coordexp::model::ForwardInputs in;
  in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
  in.vision = r.pixels.empty() ? nullptr : &vision;
  in.logits = ::coordexp::model::LogitsRequest::all();
  return model().forward(in).logits[0].to(torch::kFloat);
}

inline ::coordexp::rollout::GenerationOptions greedy(int64_t max_new, int64_t batch_size = 8) {
  ::coordexp::rollout::GenerationOptions o;
  o.max_new_tokens = max_new;
  o.batch_size = batch_size;
  return o;
}

}  // namespace coordexp::rollout::testing
