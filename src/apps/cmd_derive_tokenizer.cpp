// `coordexp-train derive-tokenizer --src DIR --merges M --out DIR`: writes a smaller tokenizer cut
// from DIR's byte-level BPE (256 byte tokens + first M merges + added tokens + coord tokens, ids
// renumbered densely; tokenizer::derive_tokenizer_files). For small demo models whose LM head
// would otherwise be dominated by Qwen3's 151k rows; make-tiny then sizes the model to it.
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "coordexp/tokenizer/derive_vocab.h"

namespace coordexp::apps {
namespace {

struct DeriveTokenizerArgs {
  std::string src, out;
  size_t merges = 0;
};

int run_derive_tokenizer(const DeriveTokenizerArgs& a) {
  const tokenizer::DeriveTokenizerResult r = tokenizer::derive_tokenizer_files(a.src, a.merges, a.out);
  std::cout << "kept " << r.kept_vocab << " of " << r.source_vocab << " vocab tokens and " << r.kept_merges << " of "
            << r.source_merges << " merges";
  if (r.skipped_merges) std::cout << " (" << r.skipped_merges << " of the first " << a.merges << " skipped: they use a token no kept merge makes)";
  std::cout << ", " << r.added_tokens << " added tokens; coord tokens <|coord_*|> = " << r.coord.wildcard_id
            << ", <|coord_0|>..<|coord_999|> = " << r.coord.first_id << ".."
            << r.coord.first_id + tokenizer::CoordVocab::kNumBins - 1 << "; vocab size " << r.vocab_size << "; wrote "
            << a.out << "/tokenizer.json\n";
  return 0;
}

}  // namespace

CommandRegistration add_derive_tokenizer_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<DeriveTokenizerArgs>();
  auto* sub = app.add_subcommand(
      "derive-tokenizer",
      "Write a smaller tokenizer: the 256 byte tokens, the first M BPE merges, every added token and the coord tokens");
  sub->add_option("--src", args->src, "Directory with tokenizer.json (+ tokenizer_config.json), e.g. Qwen3's")->required();
  sub->add_option("--merges", args->merges, "Number of merges to keep, in priority order (0 = bytes only)")->required();
  sub->add_option("--out", args->out, "Output directory (created if missing; must differ from --src)")->required();
  return {sub, [args] { return run_derive_tokenizer(*args); }};
}

}  // namespace coordexp::apps
