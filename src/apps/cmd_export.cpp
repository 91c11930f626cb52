// `coordexp-train export --model BASE --adapter CKPT --out DIR [--force]`: merges a LoRA/DoRA adapter
// and the coord-offset table into plain Hugging Face Qwen3-VL weights (model::export_merged_model),
// streamed shard by shard, and prints what it merged. Argument parsing and the summary only.
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "coordexp/model/adapter_export.h"

namespace coordexp::apps {
namespace {

struct ExportArgs {
  std::string model, adapter, out;
  bool force = false;
};

int run_export(const ExportArgs& a) {
  const auto r = model::export_merged_model(a.model, a.adapter, a.out, {a.force});
  std::cout << "export: merged " << r.num_lora_merged << " LoRA and " << r.num_dora_merged << " DoRA weights"
            << (r.coord_offset_applied ? ", the coord offset" : "")
            << (r.lm_head_materialized ? " (lm_head materialised, tie_word_embeddings false)" : "") << "; wrote "
            << r.weight_files.size() << " weight files (" << r.total_bytes / 1e6 << " MB, largest "
            << r.largest_shard_bytes / 1e6 << " MB) and config.json to " << a.out << "; copied "
            << r.copied_files.size() << " tokenizer/processor files";
  for (size_t i = 0; i < r.copied_files.size(); ++i) std::cout << (i ? ", " : " (") << r.copied_files[i];
  std::cout << (r.copied_files.empty() ? "" : ")") << "\n";
  if (r.copied_files.empty())
    std::cerr << "export: warning: the base has no tokenizer/processor files; add them before loading with "
                 "transformers\n";
  return 0;
}

}  // namespace

CommandRegistration add_export_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<ExportArgs>();
  auto* sub = app.add_subcommand(
      "export", "Merge a LoRA/DoRA adapter and the coord offsets into full Hugging Face Qwen3-VL weights");
  sub->add_option("--model", args->model, "Base model directory (config.json + model.safetensors or shards)")->required();
  sub->add_option("--adapter", args->adapter,
                  "Adapter directory (adapter_config.json, PEFT layout) or a training checkpoint with adapter/")
      ->required();
  sub->add_option("--out", args->out, "Output directory (must be empty unless --force)")->required();
  sub->add_flag("--force", args->force, "Write into a non-empty --out (its old weight files are replaced)");
  return {sub, [args] { return run_export(*args); }};
}

}  // namespace coordexp::apps
