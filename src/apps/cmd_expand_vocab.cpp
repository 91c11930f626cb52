// `coordexp-train expand-vocab --src DIR --dst DIR`: writes a copy of the tokenizer in DIR with the
// coord tokens added (tokenizer::expand_vocab_files) and, when DIR holds a model (config.json +
// weights), resizes its embed_tokens / lm_head to cover the coord ids (model::expand_checkpoint_vocab)
// and copies the model's other files (preprocessor_config.json, generation_config.json, ...).
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "coordexp/model/vocab_resize.h"
#include "coordexp/tokenizer/expand_vocab.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

namespace fs = std::filesystem;

struct ExpandVocabArgs {
  std::string src, dst;
  model::VocabResizeOptions init;
  bool reinit_coord_rows = false;
};

// Files expand-vocab writes itself (everything else of a model directory is copied as is).
bool written_by_expand_vocab(const std::string& name) {
  return name == "tokenizer.json" || name == "tokenizer_config.json" || name == "config.json" ||
         name == "model.safetensors.index.json" ||
         (name.rfind("model", 0) == 0 && name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0);
}

int run_expand_vocab(const ExpandVocabArgs& a) {
  const tokenizer::ExpandVocabResult r = tokenizer::expand_vocab_files(a.src, a.dst);
  std::cout << (r.added ? "added" : "already present") << ": <|coord_*|> = " << r.coord.wildcard_id
            << ", <|coord_0|>..<|coord_999|> = " << r.coord.first_id << ".."
            << r.coord.first_id + tokenizer::CoordVocab::kNumBins - 1 << "; vocab " << r.vocab_size_before << " -> "
            << r.vocab_size_after << "; wrote " << a.dst << "/tokenizer.json\n";
  if (!fs::exists(fs::path(a.src) / "config.json")) return 0;  // a tokenizer-only directory

  model::CoordRows rows;
  rows.coord = r.coord;
  rows.num_trained_rows = static_cast<int64_t>(r.vocab_size_before);
  if (a.reinit_coord_rows) {
    // The coord block (wildcard + 1000 bins) must be the tail of the vocabulary: rows before it are
    // kept, the block is initialised again.
    const int64_t first = r.coord.first_id;
    const int64_t block = r.coord.wildcard_id == first - 1 ? first - 1 : first;
    if (first + tokenizer::CoordVocab::kNumBins != static_cast<int64_t>(r.vocab_size_after))
      throw ConfigError("the coord tokens are not the last ids of the vocabulary (<|coord_0|> = " + std::to_string(first) +
                            ", vocab " + std::to_string(r.vocab_size_after) + ")",
                        "expand-vocab --reinit-coord-rows", "re-initialising needs the coord block at the end");
    rows.num_trained_rows = block;
  }
  const auto tok = tokenizer::Tokenizer::from_dir(a.dst);
  for (int d = 0; d < 10; ++d) {
    const auto id = tok->token_to_id(std::string(1, static_cast<char>('0' + d)));
    rows.digit_ids[d] = id ? *id : -1;
  }
  const auto m = model::expand_checkpoint_vocab(a.src, a.dst, rows, a.init);
  if (!fs::equivalent(a.src, a.dst))
    for (const auto& entry : fs::directory_iterator(a.src)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && !written_by_expand_vocab(name))
        fs::copy_file(entry.path(), fs::path(a.dst) / name, fs::copy_options::overwrite_existing);
    }
  std::cout << "model: embedding rows " << m.vocab_before << " -> " << m.vocab_after << " (" << m.rows_initialised
            << " initialised by '" << a.init.init << "'); wrote " << a.dst << "/config.json and weights\n";
  return 0;
}

}  // namespace

CommandRegistration add_expand_vocab_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<ExpandVocabArgs>();
  auto* sub = app.add_subcommand(
      "expand-vocab", "Add the coord tokens <|coord_*|>, <|coord_0..999|> to a tokenizer (and resize a model's embeddings)");
  sub->add_option("--src", args->src, "Directory with tokenizer.json (+ tokenizer_config.json, optionally a model)")->required();
  sub->add_option("--dst", args->dst, "Output directory (created if missing; may equal --src)")->required();
  sub->add_option("--init", args->init.init, "New embedding rows: mean (mean of trained rows + noise) | digits (coord k = mean of its digit tokens + noise) | ordinal (coord k = mean + std * sinusoidal features of k + noise: neighbouring bins start similar)")
      ->check(CLI::IsMember({"mean", "digits", "ordinal"}))
      ->capture_default_str();
  sub->add_option("--ordinal-scale", args->init.ordinal_scale,
                  "init ordinal: amplitude of the sinusoidal bin features relative to the trained rows' std")
      ->capture_default_str();
  sub->add_flag("--reinit-coord-rows", args->reinit_coord_rows,
                "Initialise the coord rows again (by --init) when the model already has them (they must be the last "
                "rows); every other row is kept");
  sub->add_option("--noise-scale", args->init.noise_scale, "Noise std per dimension, relative to the trained rows' std")
      ->capture_default_str();
  sub->add_option("--init-seed", args->init.seed, "Seed of the init noise")->capture_default_str();
  return {sub, [args] { return run_expand_vocab(*args); }};
}

}  // namespace coordexp::apps
