// `coordexp-train export --model BASE --adapter CKPT --out DIR [--force]`: merges a LoRA/DoRA adapter
// and the coord-offset table into plain Hugging Face Qwen3-VL weights (model::export_merged_model),
// streamed shard by shard, and prints what it merged. Argument parsing and the summary only.
#include <malloc.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "apps/commands.h"
#include "coordexp/model/adapter_export.h"

namespace coordexp::apps {
namespace {

struct ExportArgs {
  std::string model, adapter, out;
  bool force = false;
};

// A "VmRSS:" / "VmHWM:" line of /proc/self/status in MiB (-1 where unreadable).
double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size())) / 1024.0;  // kB
  return -1.0;
}

int run_export(const ExportArgs& a) {
  // The process baseline (libraries, thread pools) before anything is read, so the peak can be
  // compared with the shard size (export_test.cpp's memory test reads this line).
  const double rss_before = status_mib("VmRSS:");
#ifdef __GLIBC__
  // Blocks of 1 MiB and more (merged tensors, their float64 row blocks) are mmap'd and go back to
  // the system when freed. glibc's default threshold rises to the largest block freed so far, after
  // which such blocks come from the heap, which is not trimmed: RSS grew by ~10 MiB per merged
  // weight that way (measured), instead of reusing memory.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  const auto r = model::export_merged_model(a.model, a.adapter, a.out, {a.force});
  std::cout << "export: merged " << r.num_lora_merged << " LoRA and " << r.num_dora_merged << " DoRA weights"
            << (r.coord_offset_applied ? ", the coord offset" : "")
            << (r.lm_head_materialized ? " (lm_head materialised, tie_word_embeddings false)" : "") << "; wrote "
            << r.weight_files.size() << " weight files (" << r.total_bytes / 1e6 << " MB, largest "
            << r.largest_shard_bytes / 1e6 << " MB) and config.json to " << a.out << "; copied "
            << r.copied_files.size() << " tokenizer/processor files";
  for (size_t i = 0; i < r.copied_files.size(); ++i) std::cout << (i ? ", " : " (") << r.copied_files[i];
  std::cout << (r.copied_files.empty() ? "" : ")") << "\n";
  std::cout << "export: memory: RSS " << rss_before << " MiB before loading, peak " << status_mib("VmHWM:")
            << " MiB\n";
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
