// Right-padded collation and the concatenated response view (see collate.h).
#include "coordexp/data/collate.h"

#include <algorithm>

#include "coordexp/util/error.h"

namespace coordexp::data {

Batch collate(std::vector<Sample> samples, tokenizer::TokenId pad_id) {
  Batch batch;
  const auto b_size = static_cast<int64_t>(samples.size());
  int64_t t_size = 0;
  for (const Sample& s : samples) {
    COORDEXP_CHECK(s.answer_begin >= 1 && s.answer_begin < s.length() &&
                       static_cast<int64_t>(s.labels.size()) == s.length() &&
                       static_cast<int64_t>(s.answer_types.size()) == s.answer_length(),
                   "sample " << s.source << ": inconsistent (length " << s.length() << ", answer_begin " << s.answer_begin
                            << ")");
    t_size = std::max(t_size, s.length());
    batch.num_tokens += s.length();
  }
  batch.num_padded_tokens = b_size * t_size;

  batch.input_ids = torch::full({b_size, t_size}, static_cast<int64_t>(pad_id), torch::kInt64);
  batch.attention_mask = torch::zeros({b_size, t_size}, torch::kInt64);
  batch.labels = torch::full({b_size, t_size}, static_cast<int64_t>(kIgnoreLabel), torch::kInt64);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  auto labels = batch.labels.accessor<int64_t, 2>();

  std::vector<torch::Tensor> pixels, grids;
  std::vector<int64_t> logit_rows, targets;
  batch.response_offsets.push_back(0);
  for (int64_t b = 0; b < b_size; ++b) {
    Sample& s = samples[static_cast<size_t>(b)];
    for (int64_t t = 0; t < s.length(); ++t) {
      ids[b][t] = s.input_ids[static_cast<size_t>(t)];
      mask[b][t] = 1;
      labels[b][t] = s.labels[static_cast<size_t>(t)];
    }
    pixels.push_back(std::move(s.pixel_values));
    grids.push_back(s.image_grid_thw);
    batch.images_per_sample.push_back(s.image_grid_thw.size(0));

    // Response view: answer token t sits at s.answer_begin + t; its logit at one position earlier.
    const int64_t offset = batch.response_offsets.back();
    for (int64_t t = 0; t < s.answer_length(); ++t) {
      logit_rows.push_back(b * t_size + s.answer_begin - 1 + t);
      targets.push_back(s.input_ids[static_cast<size_t>(s.answer_begin + t)]);
    }
    protocol::ResponseLayout layout = s.response_layout();
    auto& all = batch.response_layout;
    all.types.insert(all.types.end(), layout.types.begin(), layout.types.end());
    const auto shift = static_cast<int32_t>(offset);
    for (protocol::ObjectSpan& o : layout.objects) {
      o.tokens = {o.tokens.begin + shift, o.tokens.end + shift};
      o.desc = {o.desc.begin + shift, o.desc.end + shift};
      for (int32_t& c : o.coord_positions) c += shift;
      all.objects.push_back(std::move(o));
    }
    batch.response_offsets.push_back(offset + s.answer_length());
  }
  batch.response_logit_rows = torch::tensor(logit_rows, torch::kInt64);
  batch.response_targets = torch::tensor(targets, torch::kInt64);
  if (b_size > 0) {
    batch.pixel_values = torch::cat(pixels, 0);
    batch.image_grid_thw = torch::cat(grids, 0);
  } else {
    batch.pixel_values = torch::zeros({0, 0}, torch::kFloat32);
    batch.image_grid_thw = torch::zeros({0, 3}, torch::kInt64);
  }
  batch.samples = std::move(samples);
  return batch;
}

}  // namespace coordexp::data
