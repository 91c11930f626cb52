// Qwen3-VL (dense) configuration: the fields of a Hugging Face config.json that the model needs
// (spec section 1), parsed and validated with errors naming config.json and the key. Accepts both
// rope spellings (transformers 4.57 `rope_theta` + `rope_scaling`, v5 `rope_parameters`); MoE
// variants are rejected. The original document is kept so saving writes unknown keys back
// unchanged (and the original bytes when nothing was modified). No weights, no tokenizer here.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace coordexp::model {

struct VisionConfig {
  int64_t depth = 27;                   // number of ViT blocks (Lv)
  int64_t hidden_size = 1152;           // ViT width (Dv)
  int64_t num_heads = 16;               // ViT heads; head dim = hidden_size / num_heads
  int64_t intermediate_size = 4304;     // ViT MLP width
  int64_t in_channels = 3;
  int64_t patch_size = 16;              // spatial patch (p)
  int64_t temporal_patch_size = 2;      // frames per patch (tp)
  int64_t spatial_merge_size = 2;       // m: m x m patches become one LLM token
  int64_t out_hidden_size = 3584;       // merger output width; must equal the text hidden size
  int64_t num_position_embeddings = 2304;  // learned abs-pos table rows (a square grid)
  std::vector<int64_t> deepstack_visual_indexes = {8, 16, 24};  // ViT blocks tapped for DeepStack
  std::string hidden_act = "gelu_pytorch_tanh";

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int64_t merged_dim() const { return hidden_size * spatial_merge_size * spatial_merge_size; }
  int64_t pos_grid_side() const;  // sqrt(num_position_embeddings)
};

struct TextConfig {
  int64_t vocab_size = 151936;          // embedding rows (V)
  int64_t hidden_size = 4096;           // residual width (H)
  int64_t intermediate_size = 22016;    // SwiGLU width (I)
  int64_t num_hidden_layers = 32;       // L
  int64_t num_attention_heads = 32;     // nh
  int64_t num_key_value_heads = 32;     // nkv (GQA)
  int64_t head_dim = 128;               // hd; not hidden_size / nh in general
  double rms_norm_eps = 1e-6;
  double rope_theta = 5000000.0;
  std::vector<int64_t> mrope_section = {24, 20, 20};  // (T, H, W); sums to head_dim / 2
  std::string hidden_act = "silu";
  int64_t bos_token_id = -1;            // informational (-1 = absent)
  int64_t eos_token_id = -1;
};

struct Qwen3VLConfig {
  TextConfig text;
  VisionConfig vision;
  int64_t image_token_id = 151655;
  int64_t video_token_id = 151656;
  int64_t vision_start_token_id = 151652;
  int64_t vision_end_token_id = 151653;
  bool tie_word_embeddings = false;

  // Parses config.json text; `where` names the file in errors. Throws FormatError for malformed or
  // unsupported configs (MoE, non-default rope, other activations, attention biases).
  static Qwen3VLConfig from_json_text(const std::string& text, const std::string& where);
  static Qwen3VLConfig from_file(const std::string& path);
  static Qwen3VLConfig from_dir(const std::string& dir);  // dir/config.json

  // Checks cross-field invariants (Dout == H, heads divide widths, mrope sections sum to hd/2,
  // DeepStack indexes increasing and < depth, ...); throws FormatError naming `where` and the key.
  void validate(const std::string& where) const;

  // The config.json document: the original one with every field above written back (keys the
  // model does not know are preserved), or a complete fresh document for a config built in code.
  nlohmann::ordered_json to_json() const;
  // Text for config.json: the original bytes when to_json() equals what was parsed, else
  // to_json() dumped with 2-space indentation and a trailing newline.
  std::string to_json_text() const;

 private:
  nlohmann::ordered_json source_;  // the parsed document (empty for configs built in code)
  std::string source_text_;        // its exact bytes
};

}  // namespace coordexp::model
