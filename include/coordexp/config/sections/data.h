// Config section `data`: which JSONL files to read and how to treat their records (coordinate
// kind, invalid-record policy, object order, swapped boxes, sequence length). Plain strings so the
// config layer can read/dump them; coordexp/data/jsonl.h turns them into enums. No YAML here.
#pragma once

#include <string>
#include <vector>

#include "coordexp/config/field.h"
#include "coordexp/config/sections/protocol.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct DataOptions {
  // Training JSONL files (docs/data/JSONL_CONTRACT.md), read in this order.
  std::vector<std::string> train_jsonl;
  // Validation JSONL files (evaluation during/after training).
  std::vector<std::string> val_jsonl;
  // Folder that relative image paths are resolved against; "" = the folder of each JSONL file.
  std::string image_root;
  // How numeric geometry values are read: "auto" (numbers are pixels, "<|coord_k|>" strings are
  // bins), "pixel" (numbers only, coord-token strings are an error), "norm1000" (numbers are
  // already norm1000 bins in [0, 999]).
  std::string coords = "auto";
  // Invalid record: "error" stops at the first one (file:line and the rule broken), "skip" drops it,
  // counts it by reason and reports the counts.
  std::string on_invalid = "error";
  // Object order in the GT sequence: "sorted" (stable by (y1, x1); polygons by min y then min x),
  // "as_is" (file order), "random" (deterministic per sample and epoch). FN injection in Channel-B
  // uses sorted (or as_is when as_is is configured), never random.
  std::string object_order = "sorted";
  // Box with x2 < x1 or y2 < y1: "swap" the pair (counted), or "reject" the record (invalid).
  std::string swapped_box = "swap";
  // Longest prompt + answer in tokens; the data loader treats a longer sample as invalid (per
  // on_invalid) rather than truncating its answer.
  int max_length = 8192;

  // --- Detection prompt and data loader (coordexp/data/prompt.h, loader.h) ---
  // System turn of the detection prompt; "" = no system turn (Qwen3-VL's template adds none).
  std::string prompt_system;
  // User text after the image(s). "{format}" is replaced by the output-format instruction generated
  // from protocol.field_order, data.object_order and data.prompt_geometry, so the prompt never
  // contradicts the rendered answers. Used identically by training, rollout and inference.
  std::string prompt_user = "Detect every object in the image. {format}";
  // Geometry the format instruction announces: "bbox", "poly" or "bbox_or_poly". A record holding
  // another kind is invalid (per on_invalid, reason geometry_not_in_prompt).
  std::string prompt_geometry = "bbox";
  // Threads that decode, resize and tokenize samples off the training thread; 0 = on the calling
  // thread (no prefetch).
  int num_workers = 2;
  // Batches prepared ahead of the one being consumed (memory: this many batches of pixel_values).
  int prefetch_batches = 2;
  // Shuffle the sample order each epoch, deterministically from (seed, epoch).
  bool shuffle = true;
  // When the epoch's batches do not divide evenly: true drops the tail (the incomplete last batch
  // and batches beyond a multiple of the world size), false pads by repeating the epoch's first
  // samples/batches so every rank gets the same number of batches. Both are counted.
  bool drop_last = false;
  // > 0: token-budget batching: batches hold at most this many padded tokens (samples x longest
  // sequence, image tokens included); batch size then varies (train batch size caps it). 0 = off.
  int max_batch_tokens = 0;
  // Token-budget batching sorts samples by length inside windows of this many consecutive
  // (shuffled) samples before cutting batches, then shuffles the batches: less padding, still random.
  int length_group_window = 256;

  void validate() const {
    sections_detail::require_choice("data.coords", coords, {"auto", "pixel", "norm1000"});
    sections_detail::require_choice("data.on_invalid", on_invalid, {"error", "skip"});
    sections_detail::require_choice("data.object_order", object_order, {"sorted", "as_is", "random"});
    sections_detail::require_choice("data.swapped_box", swapped_box, {"swap", "reject"});
    if (max_length < 16)
      throw ConfigError("must be >= 16, got " + std::to_string(max_length), "key data.max_length",
                        "set it to the longest prompt + answer the model should see");
    sections_detail::require_choice("data.prompt_geometry", prompt_geometry, {"bbox", "poly", "bbox_or_poly"});
    if (num_workers < 0)
      throw ConfigError("must be >= 0, got " + std::to_string(num_workers), "key data.num_workers",
                        "0 builds samples on the training thread");
    if (prefetch_batches < 1)
      throw ConfigError("must be >= 1, got " + std::to_string(prefetch_batches), "key data.prefetch_batches",
                        "use 1 or 2");
    if (max_batch_tokens != 0 && max_batch_tokens < max_length)
      throw ConfigError("must be 0 (off) or >= data.max_length (" + std::to_string(max_length) + "), got " +
                            std::to_string(max_batch_tokens),
                        "key data.max_batch_tokens", "every sample must fit into one batch on its own");
    if (length_group_window < 1)
      throw ConfigError("must be >= 1, got " + std::to_string(length_group_window), "key data.length_group_window",
                        "1 disables length grouping");
  }
};

template <class V>
void visit_fields(V& v, DataOptions& o) {
  v.field(Field("train_jsonl", "training JSONL files (docs/data/JSONL_CONTRACT.md)"), o.train_jsonl);
  v.field(Field("val_jsonl", "validation JSONL files"), o.val_jsonl);
  v.field(Field("image_root", "folder for relative image paths; empty = each JSONL's folder"),
          o.image_root);
  v.field(Field("coords", "numeric coordinates are pixels (auto, pixel) or norm1000 bins")
              .choices({"auto", "pixel", "norm1000"}), o.coords);
  v.field(Field("on_invalid", "invalid record: error (stop) or skip (count and report)")
              .choices({"error", "skip"}), o.on_invalid);
  v.field(Field("object_order", "GT object order: sorted by (y1, x1), as_is, or random per epoch")
              .choices({"sorted", "as_is", "random"}), o.object_order);
  v.field(Field("swapped_box", "box with x2 < x1 or y2 < y1: swap (counted) or reject")
              .choices({"swap", "reject"}), o.swapped_box);
  v.field(Field("max_length", "longest prompt + answer in tokens").min(16), o.max_length);
  v.field(Field("prompt_system", "system turn of the detection prompt; empty = none"), o.prompt_system);
  v.field(Field("prompt_user", "user text after the image(s); {format} = generated output-format instruction"),
          o.prompt_user);
  v.field(Field("prompt_geometry", "geometry the prompt announces; other kinds are invalid records")
              .choices({"bbox", "poly", "bbox_or_poly"}), o.prompt_geometry);
  v.field(Field("num_workers", "sample-building threads (decode, resize, tokenize); 0 = calling thread").min(0),
          o.num_workers);
  v.field(Field("prefetch_batches", "batches prepared ahead of the consumer").min(1), o.prefetch_batches);
  v.field(Field("shuffle", "shuffle each epoch from (seed, epoch)"), o.shuffle);
  v.field(Field("drop_last", "uneven epoch end: true drops the tail, false pads with repeated samples (counted)"),
          o.drop_last);
  v.field(Field("max_batch_tokens", "token-budget batching: max samples x longest sequence per batch; 0 = off")
              .min(0), o.max_batch_tokens);
  v.field(Field("length_group_window", "token-budget batching: samples sorted by length within windows of this size")
              .min(1), o.length_group_window);
}

}  // namespace coordexp::config
