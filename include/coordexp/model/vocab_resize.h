// Coord-vocabulary resize of a Qwen3-VL checkpoint (the model half of `expand-vocab`): grows
// embed_tokens (and an untied lm_head) to cover <|coord_*|> and <|coord_0..999|>, initialises the
// coord rows and any other new rows by a documented rule, and updates vocab_size in config.json.
// Every other tensor is copied unchanged with the source's key names, dtypes and sharding.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>

#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::model {

struct VocabResizeOptions {
  // "mean": row = mean of the trained rows + noise. "digits": <|coord_k|> = mean of the rows of
  // the digit tokens spelling k in decimal ("150" -> rows of "1", "5", "0") + noise; the wildcard
  // and non-coord new rows use "mean". "ordinal": <|coord_k|> = mean + ordinal_scale * std (per
  // dimension) * phi(k) + noise, phi(k)_d = sqrt(2) cos(w_{d/2} k / 999 - (d odd) pi/2) with w
  // geometric from pi to 500 pi: neighbouring bins start with similar rows (far bins do not), so a
  // logit h . row_k is a smooth function of k and what is learnt for one bin carries to its
  // neighbours; the wildcard and non-coord new rows use "mean".
  std::string init = "mean";
  double ordinal_scale = 1.0;  // "ordinal": amplitude of phi relative to the trained rows' std
  // Noise per dimension d ~ N(0, (noise_scale * std_d)^2), std_d = std of the trained rows in d;
  // breaks the symmetry between coord rows (HF's mean_resizing uses a full covariance instead).
  double noise_scale = 0.02;
  uint64_t seed = 0;  // noise generator seed (CPU generator: same rows on every machine)
};

// Where the coord tokens are and which rows hold trained tokens.
struct CoordRows {
  tokenizer::CoordVocab coord;        // ids from the expanded tokenizer
  int64_t num_trained_rows = 0;       // rows [0, n) belong to tokens that existed before expansion
  std::array<int64_t, 10> digit_ids{};  // ids of "0".."9" (init = "digits" only)
};

// phi(k) of init "ordinal" for one coord value k in [0, 999]: [H] float64, unit RMS per dimension
// over k (each dimension is a sinusoid of k / 999).
torch::Tensor ordinal_coord_features(int64_t k, int64_t hidden);

// old_rows [V, H] -> [new_rows, H] (float32). Rows < min(V, num_trained_rows) are kept; every other
// row (new rows and untrained padding rows reused by coord ids) is initialised by `options`.
torch::Tensor expand_embedding_rows(const torch::Tensor& old_rows, int64_t new_rows, const CoordRows& rows,
                                    const VocabResizeOptions& options);

struct VocabResizeResult {
  int64_t vocab_before = 0, vocab_after = 0;
  int64_t rows_initialised = 0;
};

// Reads the model in src_dir (config.json + weights) and writes dst_dir (created if missing; may
// equal src_dir) with vocab_size = max(old, last coord id + 1). Throws ConfigError for a bad init
// name and FormatError for a checkpoint that does not match its config.
VocabResizeResult expand_checkpoint_vocab(const std::string& src_dir, const std::string& dst_dir, const CoordRows& rows,
                                          const VocabResizeOptions& options);

}  // namespace coordexp::model
