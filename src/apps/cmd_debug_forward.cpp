// `coordexp-train debug-forward --model DIR --inputs IN.safetensors --out OUT.safetensors`: one full
// forward for inspection and parity checks. IN holds input_ids (int [B, T] or [T]), optionally
// attention_mask, pixel_values and image_grid_thw; OUT gets logits (float32, every position),
// vision_features (merged image embeddings, when images were given), position_ids and rope_deltas.
#include <spdlog/spdlog.h>

#include "apps/commands.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/util/error.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::apps {
namespace {

struct DebugForwardArgs {
  std::string model_dir, inputs, out;
  config::ModelOptions model;
};

torch::Tensor optional_tensor(const util::SafetensorsFile& f, const char* name) {
  return f.find(name) ? f.tensor(name).clone() : torch::Tensor();
}

int run_debug_forward(const DebugForwardArgs& a) {
  config::ModelOptions opts = a.model;
  opts.path = a.model_dir;
  auto model = model::Qwen3VL::load(a.model_dir, model::ModelRuntime::from_options(opts));
  model.module()->eval();
  auto in = util::SafetensorsFile::open(a.inputs);
  auto ids = optional_tensor(*in, "input_ids");
  if (!ids.defined())
    throw DataError("missing tensor 'input_ids'", a.inputs, "IN must hold input_ids, optionally pixel_values + image_grid_thw");
  if (ids.dim() == 1) ids = ids.unsqueeze(0);
  auto pixel_values = optional_tensor(*in, "pixel_values");
  auto grid = optional_tensor(*in, "image_grid_thw");
  if (pixel_values.defined() != grid.defined())
    throw DataError("pixel_values and image_grid_thw must be given together", a.inputs);

  torch::NoGradGuard no_grad;
  model::ForwardInputs fin;
  fin.input_ids = ids.to(torch::kLong);
  fin.attention_mask = optional_tensor(*in, "attention_mask");
  fin.logits = model::LogitsRequest::all();
  model::VisionFeatures vision;
  if (pixel_values.defined()) {
    vision = model.encode_images(pixel_values, grid.to(torch::kLong));
    fin.vision = &vision;
  }
  auto out = model.forward(fin);
  util::NamedTensors tensors{{"logits", out.logits.to(torch::kCPU, torch::kFloat)},
                             {"position_ids", out.position_ids.to(torch::kCPU)},
                             {"rope_deltas", out.rope_deltas.to(torch::kCPU)}};
  if (fin.vision) tensors.emplace_back("vision_features", vision.image_embeds.to(torch::kCPU, torch::kFloat));
  util::write_safetensors(a.out, tensors);
  spdlog::info("debug-forward: wrote {} (logits {})", a.out, c10::str(out.logits.sizes()));
  return 0;
}

}  // namespace

CommandRegistration add_debug_forward_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<DebugForwardArgs>();
  auto* sub = app.add_subcommand("debug-forward", "Run one full Qwen3-VL forward and dump logits, vision features, position ids");
  sub->add_option("--model", args->model_dir, "Hugging Face model directory")->required();
  sub->add_option("--inputs", args->inputs, "safetensors with input_ids [, attention_mask, pixel_values, image_grid_thw]")->required();
  sub->add_option("--out", args->out, "output safetensors (logits, vision_features, position_ids, rope_deltas)")->required();
  sub->add_option("--dtype", args->model.dtype, "parameter dtype: float32 | bfloat16")->capture_default_str();
  sub->add_option("--device", args->model.device, "auto | cpu | cuda")->capture_default_str();
  return {sub, [args] { return run_debug_forward(*args); }};
}

}  // namespace coordexp::apps
