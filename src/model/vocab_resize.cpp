// Embedding-row expansion for the coord vocabulary and its checkpoint-level driver (see
// vocab_resize.h). Unchanged tensors travel as zero-copy views of the source files.
#include "coordexp/model/vocab_resize.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include <filesystem>

#include "coordexp/model/config.h"
#include "coordexp/model/weights.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::model {
namespace {

const char* const kEmbedKey = "model.language_model.embed_tokens.weight";
const char* const kLmHeadKey = "lm_head.weight";

}  // namespace

torch::Tensor ordinal_coord_features(int64_t k, int64_t hidden) {
  const int64_t num_freq = (hidden + 1) / 2;
  const double t = static_cast<double>(k) / static_cast<double>(tokenizer::CoordVocab::kNumBins - 1);
  auto phi = torch::empty({hidden}, torch::kDouble);
  auto* p = phi.data_ptr<double>();
  for (int64_t d = 0; d < hidden; ++d) {
    const int64_t f = d / 2;
    // Frequencies pi .. 500 pi (half a period over the whole range .. a period of 4 bins).
    const double w = M_PI * std::pow(500.0, num_freq > 1 ? static_cast<double>(f) / static_cast<double>(num_freq - 1) : 0.0);
    p[d] = std::sqrt(2.0) * std::cos(w * t - (d % 2 == 1 ? M_PI / 2 : 0.0));
  }
  return phi;
}

torch::Tensor expand_embedding_rows(const torch::Tensor& old_rows, int64_t new_rows, const CoordRows& rows,
                                    const VocabResizeOptions& options) {
  if (options.init != "mean" && options.init != "digits" && options.init != "ordinal")
    throw ConfigError("unknown embedding init '" + options.init + "'", "key init", "use mean, digits or ordinal");
  const int64_t V = old_rows.size(0), H = old_rows.size(1);
  const int64_t trained = std::min(V, rows.num_trained_rows);
  COORDEXP_CHECK(trained > 0 && new_rows >= V, "trained " << trained << ", rows " << V << " -> " << new_rows);
  auto old = old_rows.to(torch::kCPU, torch::kDouble);
  auto base = old.narrow(0, 0, trained);
  auto mean = base.mean(0);
  auto std = base.std(0, /*unbiased=*/false);
  auto out = torch::empty({new_rows, H}, torch::kDouble);
  out.narrow(0, 0, trained).copy_(base);
  const int64_t n_init = new_rows - trained;
  if (n_init == 0) return out.to(torch::kFloat);
  auto gen = at::detail::createCPUGenerator(options.seed);
  auto noise = torch::randn({n_init, H}, gen, torch::kDouble) * (options.noise_scale * std);
  for (int64_t r = trained; r < new_rows; ++r) {
    torch::Tensor centre = mean;
    if (options.init == "digits" && rows.coord.is_coord(static_cast<tokenizer::TokenId>(r))) {
      const std::string digits = std::to_string(rows.coord.coord_value(static_cast<tokenizer::TokenId>(r)));
      std::vector<int64_t> ids;
      for (char ch : digits) {
        const int64_t id = rows.digit_ids[ch - '0'];
        if (id < 0 || id >= trained)
          throw ConfigError("digit token '" + std::string(1, ch) + "' has id " + std::to_string(id) +
                                ", not a trained embedding row", "key init", "use init mean");
        ids.push_back(id);
      }
      centre = old.index_select(0, torch::tensor(ids, torch::kLong)).mean(0);
    } else if (options.init == "ordinal" && rows.coord.is_coord(static_cast<tokenizer::TokenId>(r))) {
      const int64_t k = rows.coord.coord_value(static_cast<tokenizer::TokenId>(r));
      centre = mean + options.ordinal_scale * std * ordinal_coord_features(k, H);
    }
    out[r] = centre + noise[r - trained];
  }
  return out.to(torch::kFloat);
}

VocabResizeResult expand_checkpoint_vocab(const std::string& src_dir, const std::string& dst_dir, const CoordRows& rows,
                                          const VocabResizeOptions& options) {
  if (!rows.coord.valid()) throw DataError("the tokenizer has no coord tokens", src_dir, "add them first (expand-vocab)");
  Qwen3VLConfig config = Qwen3VLConfig::from_dir(src_dir);
  const auto ckpt = util::SafetensorsCheckpoint::open_dir(src_dir);
  const CheckpointLayout layout = inspect_checkpoint(ckpt, src_dir, weight_table(config));
  VocabResizeResult result;
  result.vocab_before = config.text.vocab_size;
  result.vocab_after = std::max<int64_t>(config.text.vocab_size, rows.coord.first_id + tokenizer::CoordVocab::kNumBins);
  result.rows_initialised = result.vocab_after - std::min(result.vocab_before, rows.num_trained_rows);

  std::map<std::string, torch::Tensor> tensors;  // canonical key -> data to write
  for (const auto& [key, st] : layout.tensors) tensors[key] = ckpt.tensor(st.stored_key);
  auto resize = [&](const std::string& key, uint64_t seed) {
    VocabResizeOptions o = options;
    o.seed = seed;
    const auto dtype = util::st_dtype_to_torch(layout.tensors.at(key).dtype);
    tensors[key] = expand_embedding_rows(tensors[key], result.vocab_after, rows, o).to(dtype);
  };
  resize(kEmbedKey, options.seed);
  if (config.tie_word_embeddings) tensors.erase(kLmHeadKey);  // a stored tied copy is rewritten from embed_tokens
  else resize(kLmHeadKey, options.seed + 1);                 // its own noise stream

  config.text.vocab_size = result.vocab_after;
  std::filesystem::create_directories(dst_dir);
  save_weights(dst_dir, layout, weight_table(config), tensors);
  util::write_file_atomic(dst_dir + "/config.json", config.to_json_text());
  spdlog::info("expand-vocab: {} -> {} embedding rows ({} initialised with '{}'), wrote {}", result.vocab_before,
               result.vocab_after, result.rows_initialised, options.init, dst_dir);
  return result;
}

}  // namespace coordexp::model
