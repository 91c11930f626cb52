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

  void validate() const {
    sections_detail::require_choice("data.coords", coords, {"auto", "pixel", "norm1000"});
    sections_detail::require_choice("data.on_invalid", on_invalid, {"error", "skip"});
    sections_detail::require_choice("data.object_order", object_order, {"sorted", "as_is", "random"});
    sections_detail::require_choice("data.swapped_box", swapped_box, {"swap", "reject"});
    if (max_length < 16)
      throw ConfigError("must be >= 16, got " + std::to_string(max_length), "key data.max_length",
                        "set it to the longest prompt + answer the model should see");
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
}

}  // namespace coordexp::config
