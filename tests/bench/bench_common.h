// Shared by the model-level benchmarks (bench_model, bench_rollout, bench_step): the ~119M-parameter
// Qwen3-VL shape they measure, the FLOP count of a forward, and the thread setup (COORDEXP_BENCH_THREADS, default all hardware threads,
// applied to LibTorch and BLIS). Not a benchmark itself.
#pragma once

#include <cstdlib>

#include "coordexp/model/config.h"
#include "coordexp/util/heap.h"
#include "coordexp/util/threads.h"

namespace coordexp::bench {

// COORDEXP_BENCH_SMOKE set (the bench-smoke ctest label): shapes shrink to a few thousand
// parameters per layer, so every benchmark runs once quickly and keeps compiling and working.
inline bool smoke_run() { return std::getenv("COORDEXP_BENCH_SMOKE") != nullptr; }

// Text decoder hidden 768, 12 layers, 12 query / 4 KV heads, SwiGLU 2048, vocab 32000 (tied);
// vision depth 4, width 384, DeepStack taps at blocks 1 and 2 (smoke: see below).
inline model::Qwen3VLConfig medium_config() {
  model::Qwen3VLConfig c;
  c.text.vocab_size = 32000;
  c.text.hidden_size = 768;
  c.text.intermediate_size = 2048;
  c.text.num_hidden_layers = 12;
  c.text.num_attention_heads = 12;
  c.text.num_key_value_heads = 4;
  c.text.head_dim = 64;
  c.text.mrope_section = {12, 10, 10};
  c.vision.depth = 4;
  c.vision.hidden_size = 384;
  c.vision.num_heads = 6;
  c.vision.intermediate_size = 1536;
  c.vision.out_hidden_size = 768;
  c.vision.deepstack_visual_indexes = {1, 2};
  c.tie_word_embeddings = true;
  c.image_token_id = 31000;
  c.video_token_id = 31001;
  c.vision_start_token_id = 31002;
  c.vision_end_token_id = 31003;
  if (smoke_run()) {  // the bench-smoke ctest label: the same code paths at a tiny width and depth
    c.text.hidden_size = 64;
    c.text.intermediate_size = 128;
    c.text.num_hidden_layers = 2;
    c.text.num_attention_heads = 4;
    c.text.num_key_value_heads = 2;
    c.text.head_dim = 16;
    c.text.mrope_section = {4, 2, 2};
    c.vision.depth = 2;
    c.vision.hidden_size = 32;
    c.vision.num_heads = 2;
    c.vision.intermediate_size = 64;
    c.vision.out_hidden_size = 64;
    c.vision.deepstack_visual_indexes = {1};
  }
  c.validate("bench");
  return c;
}

// Matmul FLOPs of one forward by part (2 per multiply-add of every matmul executed; elementwise work
// is not counted): the vision tower + mergers for `np` patches of one image, the decoder over `t`
// tokens with causal attention counted in full (T x T scores and values), the LM head at
// `logit_rows` rows.
struct ForwardFlops {
  double vision = 0, decoder = 0, head = 0;
  double total() const { return vision + decoder + head; }
};
inline ForwardFlops forward_flops(const model::Qwen3VLConfig& c, int64_t np, int64_t t, int64_t logit_rows) {
  ForwardFlops f;
  const auto& v = c.vision;
  const double Dv = v.hidden_size, Iv = v.intermediate_size, M = v.merged_dim(), nv = np / 4.0;
  f.vision = 2.0 * np * v.patch_dim() * Dv;                                         // patch embedding
  f.vision += v.depth * (2.0 * np * (4 * Dv * Dv + 2 * Dv * Iv) + 4.0 * np * np * Dv);  // qkv, proj, mlp, attn
  f.vision += (1 + v.deepstack_visual_indexes.size()) * 2.0 * nv * (M * M + M * v.out_hidden_size);  // mergers
  const auto& x = c.text;
  const double H = x.hidden_size, hd = x.head_dim, nh = x.num_attention_heads, nkv = x.num_key_value_heads;
  const double per_token = 2.0 * (H * nh * hd * 2 + H * nkv * hd * 2 + 3 * H * x.intermediate_size);
  f.decoder = x.num_hidden_layers * (t * per_token + 4.0 * t * t * nh * hd);
  f.head = 2.0 * logit_rows * H * x.vocab_size;
  return f;
}

// Once per process, before the first matmul (BLIS reads its thread count at its first call); also
// the heap policy of the `train` command (util/heap.h), so benchmarks allocate as training does.
inline void set_bench_threads() {
  static const bool done = [] {
    util::configure_heap();
    const char* env = std::getenv("COORDEXP_BENCH_THREADS");
    util::set_compute_threads(env ? std::atoi(env) : util::default_compute_threads());
    return true;
  }();
  (void)done;
}

}  // namespace coordexp::bench
