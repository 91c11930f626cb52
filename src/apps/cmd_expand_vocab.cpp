// `coordexp-train expand-vocab --src DIR --dst DIR`: writes a copy of the tokenizer in DIR with the
// coord tokens added (tokenizer::expand_vocab_files). The model side (resizing the embeddings of a
// checkpoint in the same directories) is not done yet.
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "coordexp/tokenizer/expand_vocab.h"

namespace coordexp::apps {
namespace {

struct ExpandVocabArgs {
  std::string src, dst;
};

int run_expand_vocab(const ExpandVocabArgs& a) {
  const tokenizer::ExpandVocabResult r = tokenizer::expand_vocab_files(a.src, a.dst);
  std::cout << (r.added ? "added" : "already present") << ": <|coord_*|> = " << r.coord.wildcard_id
            << ", <|coord_0|>..<|coord_999|> = " << r.coord.first_id << ".."
            << r.coord.first_id + tokenizer::CoordVocab::kNumBins - 1 << "; vocab " << r.vocab_size_before << " -> "
            << r.vocab_size_after << "; wrote " << a.dst << "/tokenizer.json\n";
  return 0;
}

}  // namespace

CommandRegistration add_expand_vocab_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<ExpandVocabArgs>();
  auto* sub = app.add_subcommand("expand-vocab", "Copy a tokenizer with the coord tokens <|coord_*|>, <|coord_0..999|> added");
  sub->add_option("--src", args->src, "Directory with tokenizer.json (+ tokenizer_config.json)")->required();
  sub->add_option("--dst", args->dst, "Output directory (created if missing; may equal --src)")->required();
  return {sub, [args] { return run_expand_vocab(*args); }};
}

}  // namespace coordexp::apps
