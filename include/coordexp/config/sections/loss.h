// Config section `loss`: weights of the Unified Loss Registry terms (seed 5.5.2): token CE by type,
// coord hard CE, the coord-distribution loss (one primary mode unless `combine` is set) and L_geo.
// Only the options struct, its validation and its field list; the math lives in include/coordexp/coord/.
// Stage-specific copies (e.g. Channel-A vs Channel-B lambda_geo) are the same struct under another key.
#pragma once

#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

// L_coord_token_ce: full-vocab hard CE on the GT coord token.
struct CoordCeOptions {
  double weight = 1.0;    // lambda_coord_ce on the finalized term; 0 turns coord CE off (gt context)
  double upweight = 1.0;  // per-token weight on coord tokens (multiplies the summand, not the count)
};

// L_coord_dist on coord-subspace distributions at the coord slots of geometry-supervised objects.
struct CoordDistOptions {
  std::string mode = "none";   // primary mode: none | dfl | w1 | entropy (dfl is the recommended one)
  double weight = 1.0;         // lambda_coord_dist of the primary mode
  bool combine = false;        // allow adding the non-primary modes below (stacking needs this flag)
  double dfl_weight = 0.0;     // weight of DFL when it is not the primary mode (needs combine)
  double w1_weight = 0.0;      // weight of W1 when it is not the primary mode (needs combine)
  double entropy_weight = 0.0; // weight of the entropy penalty when not the primary mode (needs combine)
};

// L_geo = sum_obj [huber_weight * SmoothL1(b_pred - b_gt; delta) + iou_weight * (1 - CIoU or GIoU)].
struct GeoOptions {
  double weight = 0.0;         // lambda_geo; 0 (default) skips the geometry computation entirely
  double huber_weight = 1.0;   // lambda_huber
  double delta = 0.1;          // SmoothL1 transition point, normalized units (0 = plain L1)
  double iou_weight = 1.0;     // lambda_ciou (applies to GIoU when iou_kind = giou)
  std::string iou_kind = "ciou";  // ciou | giou
};

struct LossOptions {
  double struct_weight = 1.0;  // per-token weight of struct tokens inside L_struct_ce
  double desc_weight = 1.0;    // per-token weight of desc tokens inside L_desc_ce
  double eos_weight = 1.0;     // per-token weight of <|im_end|> inside L_struct_ce
  // LM head + token CE over this many answer rows at a time (coord/head_ce.h); 0 = one [K, V] logits
  // tensor for all K rows (the unchunked path).
  int head_chunk_rows = 256;
  CoordCeOptions coord_ce;
  CoordDistOptions coord_dist;
  GeoOptions geo;

  // Throws ConfigError naming `<prefix>.<key>`.
  void validate(const std::string& prefix = "loss") const {
    auto nonneg = [&](double x, const std::string& key) {
      if (!(x >= 0.0 && x <= 1e6))
        throw ConfigError(key + " = " + std::to_string(x) + " is out of range", "key " + prefix + "." + key,
                          "use a finite weight >= 0");
    };
    nonneg(struct_weight, "struct_weight");
    nonneg(desc_weight, "desc_weight");
    nonneg(eos_weight, "eos_weight");
    if (head_chunk_rows < 0)
      throw ConfigError("head_chunk_rows = " + std::to_string(head_chunk_rows) + " is negative",
                        "key " + prefix + ".head_chunk_rows", "use 0 (all rows at once) or a chunk size, e.g. 256");
    nonneg(coord_ce.weight, "coord_ce.weight");
    nonneg(coord_ce.upweight, "coord_ce.upweight");
    nonneg(coord_dist.weight, "coord_dist.weight");
    nonneg(coord_dist.dfl_weight, "coord_dist.dfl_weight");
    nonneg(coord_dist.w1_weight, "coord_dist.w1_weight");
    nonneg(coord_dist.entropy_weight, "coord_dist.entropy_weight");
    nonneg(geo.weight, "geo.weight");
    nonneg(geo.huber_weight, "geo.huber_weight");
    nonneg(geo.iou_weight, "geo.iou_weight");
    if (!(geo.delta >= 0.0 && geo.delta <= 1.0))
      throw ConfigError("geo.delta = " + std::to_string(geo.delta) + " is out of range",
                        "key " + prefix + ".geo.delta", "use a value in [0, 1] (normalized units; 0 = L1)");
    if (geo.iou_kind != "ciou" && geo.iou_kind != "giou")
      throw ConfigError("geo.iou_kind '" + geo.iou_kind + "' is unknown", "key " + prefix + ".geo.iou_kind",
                        "use ciou or giou");
    const std::string& m = coord_dist.mode;
    if (m != "none" && m != "dfl" && m != "w1" && m != "entropy")
      throw ConfigError("coord_dist.mode '" + m + "' is unknown", "key " + prefix + ".coord_dist.mode",
                        "use none, dfl, w1 or entropy");
    const struct { const char* mode; double w; } extras[] = {
        {"dfl", coord_dist.dfl_weight}, {"w1", coord_dist.w1_weight}, {"entropy", coord_dist.entropy_weight}};
    for (const auto& e : extras) {
      if (e.w == 0.0) continue;
      const std::string key = prefix + ".coord_dist." + e.mode + "_weight";
      if (m == e.mode)
        throw ConfigError(std::string(e.mode) + " is the primary mode", "key " + key,
                          "the primary mode's weight is " + prefix + ".coord_dist.weight; set this to 0");
      if (m == "none")
        throw ConfigError("a secondary coord_dist weight is set but coord_dist.mode is none", "key " + key,
                          "choose a primary mode (dfl is recommended) or set this weight to 0");
      if (!coord_dist.combine)
        throw ConfigError("stacking coord_dist modes needs an explicit flag", "key " + key,
                          "set " + prefix + ".coord_dist.combine: true, or set this weight to 0 "
                          "(one primary mode at a time is the default)");
    }
  }
};

template <class V>
void visit_fields(V& v, CoordCeOptions& o) {
  v.field(Field("weight", "lambda_coord_ce: weight of the hard CE on GT coord tokens (0 = off)").min(0.0), o.weight);
  v.field(Field("upweight", "per-token weight on coord tokens (multiplies the summand, not the count)").min(0.0),
          o.upweight);
}

template <class V>
void visit_fields(V& v, CoordDistOptions& o) {
  v.field(Field("mode", "primary coord-distribution loss: none, dfl (recommended), w1 or entropy")
              .choices({"none", "dfl", "w1", "entropy"}),
          o.mode);
  v.field(Field("weight", "lambda_coord_dist of the primary mode").min(0.0), o.weight);
  v.field(Field("combine", "allow stacking the non-primary modes below (off: one mode at a time)"), o.combine);
  v.field(Field("dfl_weight", "weight of DFL as a secondary mode (needs combine)").min(0.0), o.dfl_weight);
  v.field(Field("w1_weight", "weight of W1 as a secondary mode (needs combine)").min(0.0), o.w1_weight);
  v.field(Field("entropy_weight", "weight of the entropy penalty as a secondary mode (needs combine)").min(0.0),
          o.entropy_weight);
}

template <class V>
void visit_fields(V& v, GeoOptions& o) {
  v.field(Field("weight", "lambda_geo: weight of L_geo (0 = geometry off)").min(0.0), o.weight);
  v.field(Field("huber_weight", "lambda_huber: weight of SmoothL1 inside L_geo").min(0.0), o.huber_weight);
  v.field(Field("delta", "SmoothL1 transition point in normalized units (0 = L1)").range(0.0, 1.0), o.delta);
  v.field(Field("iou_weight", "lambda_ciou: weight of (1 - CIoU) or (1 - GIoU) inside L_geo").min(0.0),
          o.iou_weight);
  v.field(Field("iou_kind", "box overlap loss: ciou or giou").choices({"ciou", "giou"}), o.iou_kind);
}

template <class V>
void visit_fields(V& v, LossOptions& o) {
  v.field(Field("struct_weight", "per-token weight of struct tokens in L_struct_ce").min(0.0), o.struct_weight);
  v.field(Field("desc_weight", "per-token weight of desc tokens in L_desc_ce").min(0.0), o.desc_weight);
  v.field(Field("eos_weight", "per-token weight of <|im_end|> in L_struct_ce").min(0.0), o.eos_weight);
  v.field(Field("head_chunk_rows", "LM head + token CE over this many answer rows at a time: the [rows, vocab] "
                                   "logits never exist for more rows than this, in forward or backward "
                                   "(coord/head_ce.h; the coord terms read their 1000 columns from the same "
                                   "chunks). 0 = all answer rows' logits at once.").min(0),
          o.head_chunk_rows);
  v.section("coord_ce", "hard CE on GT coord tokens (L_coord_token_ce)", o.coord_ce);
  v.section("coord_dist", "coord-distribution loss (L_coord_dist): one primary mode unless combine", o.coord_dist);
  v.section("geo", "box geometry loss (L_geo): SmoothL1 + CIoU/GIoU on decoded boxes", o.geo);
}

}  // namespace coordexp::config
