// `model:` config section: which Qwen3-VL checkpoint to load and how to run it (parameter dtype,
// device, attention implementation, gradient checkpointing). Plain data + validation; the model
// module turns it into runtime choices (coordexp/model/qwen3vl.h). No YAML here (see field.h).
#pragma once

#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct ModelOptions {
  std::string path;                          // Hugging Face model directory (config.json + safetensors)
  std::string dtype = "float32";             // dtype parameters are kept in: float32 | bfloat16
  std::string device = "auto";               // auto (cuda if available, else cpu) | cpu | cuda
  std::string attn_implementation = "chunked";  // chunked (no T x T tensor; docs/performance.md) | eager | sdpa
  bool cuda_autocast = true;                 // CUDA only: bf16 autocast for matmuls; CPU always computes float32
  bool gradient_checkpointing_text = false;  // recompute each decoder layer in backward (saves memory)
  bool gradient_checkpointing_vision = false;  // recompute each vision block in backward

  void validate() const {
    auto one_of = [](const std::string& key, const std::string& v, std::initializer_list<const char*> allowed) {
      std::string list;
      for (const char* a : allowed) {
        if (v == a) return;
        list += list.empty() ? a : std::string(" | ") + a;
      }
      throw ConfigError("invalid value '" + v + "'", "key " + key, "allowed: " + list);
    };
    one_of("model.dtype", dtype, {"float32", "bfloat16"});
    one_of("model.device", device, {"auto", "cpu", "cuda"});
    one_of("model.attn_implementation", attn_implementation, {"eager", "sdpa", "chunked"});
  }
};

template <class V>
void visit_fields(V& v, ModelOptions& o) {
  v.field(Field("path", "Hugging Face model directory (config.json + model*.safetensors)"), o.path);
  v.field(Field("dtype", "dtype the parameters are kept in (checkpoints of any float dtype load); bfloat16 "
                         "parameters train through float32 master weights kept by the optimizer")
              .choices({"float32", "bfloat16"}), o.dtype);
  v.field(Field("device", "where the model runs: auto picks cuda when available").choices({"auto", "cpu", "cuda"}),
          o.device);
  v.field(Field("attn_implementation", "eager: matmul + float32 softmax over [B, H, T, T] scores; sdpa: fused "
                                       "attention kernel; chunked: query chunks with an online softmax, no T x T "
                                       "tensor (text and vision; KV-cache decode steps stay eager)")
              .choices({"eager", "sdpa", "chunked"}), o.attn_implementation);
  v.field(Field("cuda_autocast", "CUDA only: run in bf16 autocast (CPU always computes float32)"), o.cuda_autocast);
  v.field(Field("gradient_checkpointing_text", "recompute each decoder layer in backward to save memory"),
          o.gradient_checkpointing_text);
  v.field(Field("gradient_checkpointing_vision", "recompute each vision block in backward to save memory"),
          o.gradient_checkpointing_vision);
}

}  // namespace coordexp::config
