// Collation: samples -> one right-padded batch (ids, attention mask, labels), the images of all
// samples concatenated in row order with their grids, and a "response view" that lines every
// sample's answer up for the coord module: the flat logit rows predicting each answer token, the
// targets, and one ResponseLayout over all answers concatenated (positions offset per sample).
// Positions come from the samples' layouts, never from searching ids. No threads, no I/O.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "coordexp/coord/masks.h"
#include "coordexp/data/dataset.h"

namespace coordexp::data {

struct Batch {
  int64_t epoch = 0;
  int64_t index = -1;  // batch index within this rank's epoch (loader.h)

  torch::Tensor input_ids;       // int64 [B, T], right-padded with the pad id (<|endoftext|>)
  torch::Tensor attention_mask;  // int64 [B, T], 1 on real tokens, 0 on padding
  torch::Tensor labels;          // int64 [B, T], unshifted (labels[b, t] = input_ids[b, t] on answer
                                 // tokens), kIgnoreLabel on prompt and padding
  torch::Tensor pixel_values;    // float32 [sum of patches, patch_dim], sample 0's images first
  torch::Tensor image_grid_thw;  // int64 [num_images, 3], same order
  std::vector<int64_t> images_per_sample;  // images of row b

  // Per-row metadata (objects, spans, positions within the row, GT boxes); pixel_values released.
  std::vector<Sample> samples;

  // Response view. Answer token t of row b is response token response_offsets[b] + t.
  std::vector<int64_t> response_offsets;  // size B + 1; back() = total answer tokens N
  torch::Tensor response_logit_rows;      // int64 [N]: b * T + answer_begin_b - 1 + t, the row of
                                          // logits.view({B * T, V}) that predicts that token;
                                          // strictly increasing (a boolean row mask selects the same)
  torch::Tensor response_targets;         // int64 [N]: the answer token ids
  // All answers concatenated (context gt): types, objects with offset positions; array_close,
  // object_close and eos are -1 (per-sample values: samples[b].response_layout()).
  protocol::ResponseLayout response_layout;

  int64_t num_tokens = 0;         // real tokens (sum of lengths), image tokens included
  int64_t num_padded_tokens = 0;  // B * T
  ReasonCounts skipped;           // samples planned for this batch but skipped (on_invalid=skip)

  int64_t size() const { return static_cast<int64_t>(samples.size()); }
};

// Collates samples (any number >= 0; 0 gives empty tensors with B = T = 0 and no images).
// Moves the samples' pixel tensors into the batch.
Batch collate(std::vector<Sample> samples, tokenizer::TokenId pad_id);

}  // namespace coordexp::data
