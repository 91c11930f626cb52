// `channel_b:` section — Channel-B rollout + Hungarian + FN injection one-pass update (seed 7.2):
// batch size, the L_B weights, the y_in prefix mode, the geometry decode, and the matching / gating
// keys (`channel_b.matching.*`, seed 5.5.3 coord_gate / text_gate, 7.2 B2, with the strict-to-relaxed
// gate curriculum of seed 11 / 14.1). The math lives in include/coordexp/matching/ and
// train/channel_b_step.h; rollout sampling settings are the `rollout:` section. Values only, no YAML.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

// Cost of a (prediction, GT) pair for the Hungarian solve and the gate applied to its result.
// cost = cost_l1 * mean|pred - gt| over (x1, y1, x2, y2) + cost_iou * (1 - IoU or 1 - GIoU)
//        + cost_text * [normalized descs differ]; boxes are normalized [0,1] (docs/matching.md).
struct MatchingOptions {
  double cost_l1 = 1.0;                // weight of the mean absolute coordinate difference (in [0,1])
  double cost_iou = 1.0;               // weight of the overlap term 1 - IoU (in [0,1]) or 1 - GIoU (in [0,2])
  std::string cost_iou_kind = "giou";  // giou (still ranks disjoint boxes) | iou
  double cost_text = 0.0;              // weight of the desc-mismatch indicator; 0 = geometry-only (seed default)
  // Gates, each a number or a curriculum {start, end, ramp_steps} (seed 11 / 14.1: strict early,
  // relaxed later; linear in optimizer steps, a function of the step only, so resumes see the same
  // values). The matcher sees the constant gates of one step: at_step().
  Ramp min_iou = 0.5;                  // coord_gate: an assigned pair is kept only if IoU >= min_iou (0 = off)
  Ramp max_l1 = 1.0;                   // coord_gate: ... and mean L1 <= max_l1 (1 = off: L1 never exceeds 1)
  bool text_gate = false;              // text_gate: ... and the normalized descs are equal
  bool cross_kind = false;             // allow bbox <-> poly pairs (off: such pairs are forbidden)

  void validate(const std::string& prefix = "channel_b.matching") const {
    auto weight = [&](double w, const char* key) {
      if (!(std::isfinite(w) && w >= 0.0))
        throw ConfigError(std::string(key) + " = " + std::to_string(w) + " is out of range",
                          "key " + prefix + "." + key, "use a finite weight >= 0");
    };
    weight(cost_l1, "cost_l1");
    weight(cost_iou, "cost_iou");
    weight(cost_text, "cost_text");
    if (cost_l1 == 0.0 && cost_iou == 0.0 && cost_text == 0.0)
      throw ConfigError("every matching cost weight is 0, so every assignment costs the same",
                        "key " + prefix + ".cost_l1", "set cost_l1, cost_iou or cost_text > 0");
    if (cost_iou_kind != "giou" && cost_iou_kind != "iou")
      throw ConfigError("cost_iou_kind '" + cost_iou_kind + "' is unknown",
                        "key " + prefix + ".cost_iou_kind", "use giou or iou");
    auto gate = [&](const Ramp& r, const char* key, const char* off) {
      for (double x : {r.start, r.end})
        if (!(x >= 0.0 && x <= 1.0))
          throw ConfigError(std::string(key) + " = " + std::to_string(x) + " is out of range", "key " + prefix + "." + key,
                            std::string("use a value in [0, 1] (") + off + ")");
      if (!r.is_constant() && r.ramp_steps <= 0)
        throw ConfigError(std::string(key) + " moves from " + std::to_string(r.start) + " to " + std::to_string(r.end) +
                              " with ramp_steps " + std::to_string(r.ramp_steps),
                          "key " + prefix + "." + key, "set ramp_steps > 0 (optimizer steps of the ramp)");
    };
    gate(min_iou, "min_iou", "0 turns the IoU gate off");
    gate(max_l1, "max_l1", "1 turns the L1 gate off");
  }

  // The gates in force at optimizer step `step` (0-based), the curriculum applied.
  MatchingOptions at_step(int64_t step) const {
    MatchingOptions m = *this;
    m.min_iou = min_iou.at(step);
    m.max_l1 = max_l1.at(step);
    return m;
  }
};

struct ChannelBOptions {
  int batch_size = 0;                    // rollouts per rank per micro-step (0 = train.micro_batch_size)
  double geo_weight = 1.0;               // lambda_geo^B: weight of L_geo in L_B
  double matched_geo_weight = 1.0;       // multiplier of the ValidMatched half of L_geo (FN-focused < 1)
  bool fn_coord_ce = false;              // also token CE on the coord tokens of injected FN objects
  std::string prefix_mode = "raw";       // raw: the rollout's own ids | canonical: re-rendered valid objects
  std::string coord_decode_mode = "exp"; // geometry decode of L_geo in B: exp | st
  MatchingOptions matching;

  void validate() const {
    if (batch_size < 0)
      throw ConfigError("batch_size = " + std::to_string(batch_size) + " is negative", "key channel_b.batch_size",
                        "use 0 (= train.micro_batch_size) or a positive number of rollouts per micro-step");
    for (auto [w, key] : {std::pair<double, const char*>{geo_weight, "geo_weight"},
                          {matched_geo_weight, "matched_geo_weight"}})
      if (!(std::isfinite(w) && w >= 0.0))
        throw ConfigError(std::string(key) + " = " + std::to_string(w) + " is out of range",
                          std::string("key channel_b.") + key, "use a finite weight >= 0");
    if (prefix_mode != "raw" && prefix_mode != "canonical")
      throw ConfigError("prefix_mode '" + prefix_mode + "' is unknown", "key channel_b.prefix_mode",
                        "use raw or canonical");
    if (coord_decode_mode != "exp" && coord_decode_mode != "st")
      throw ConfigError("coord_decode_mode '" + coord_decode_mode + "' is unknown",
                        "key channel_b.coord_decode_mode", "use exp or st");
  }
};

template <class V>
void visit_fields(V& v, MatchingOptions& o) {
  v.field(Field("cost_l1", "Weight of the mean absolute difference of the 4 normalized box coordinates "
                           "(x1, y1, x2, y2) in the pair cost.").min(0.0),
          o.cost_l1);
  v.field(Field("cost_iou", "Weight of the overlap term (1 - IoU, or 1 - GIoU) in the pair cost.").min(0.0),
          o.cost_iou);
  v.field(Field("cost_iou_kind", "Overlap term of the cost: giou (1 - GIoU in [0, 2]; disjoint boxes are "
                                 "still ranked by distance) or iou (1 - IoU in [0, 1]).")
              .choices({"giou", "iou"}),
          o.cost_iou_kind);
  v.field(Field("cost_text", "Weight of the desc-mismatch term (1 when the normalized descs differ: "
                             "ASCII lower-case, whitespace runs collapsed, trimmed); 0 = geometry-only "
                             "matching (seed default).").min(0.0),
          o.cost_text);
  v.field(Field("min_iou", "coord_gate: an assigned pair becomes ValidMatched only if its plain IoU >= "
                           "min_iou; otherwise the prediction is FP and the GT is FN. 0 = no IoU gate. A number, "
                           "or a curriculum {start, end, ramp_steps} (seed 11 / 14.1: strict early, relaxed "
                           "later): linear in optimizer steps from start at step 0 to end at ramp_steps, then "
                           "end; the value in force is logged as b_gate_min_iou on B steps.")
              .range(0.0, 1.0),
          o.min_iou);
  v.field(Field("max_l1", "coord_gate: an assigned pair also needs mean |pred - gt| <= max_l1 over the "
                          "4 normalized coordinates. 1 = no L1 gate. A number or {start, end, ramp_steps} "
                          "like min_iou (logged as b_gate_max_l1).").range(0.0, 1.0),
          o.max_l1);
  v.field(Field("text_gate", "text_gate: an assigned pair also needs equal normalized descs (off by "
                             "default)."),
          o.text_gate);
  v.field(Field("cross_kind", "Allow a bbox prediction to match a polygon GT and vice versa (both sides "
                              "are compared through their bounding boxes). Off: such pairs are "
                              "forbidden."),
          o.cross_kind);
}

template <class V>
void visit_fields(V& v, ChannelBOptions& o) {
  v.field(Field("batch_size", "Rollouts per rank per micro-step of a Channel-B step (0 = "
                              "train.micro_batch_size).").min(0),
          o.batch_size);
  v.field(Field("geo_weight", "lambda_geo^B: L_B = L_struct_ce + L_desc_ce + geo_weight * L_geo, with L_geo = "
                              "mean(ValidMatched) + mean(FN) (each loss.geo.huber_weight * SmoothL1 + "
                              "loss.geo.ciou_weight * (1 - CIoU)).").min(0.0),
          o.geo_weight);
  v.field(Field("matched_geo_weight", "Multiplier of the ValidMatched half of L_geo (seed 8.2's optional "
                                      "FN-focused Channel-B: < 1 trusts noisy early matches less).").min(0.0),
          o.matched_geo_weight);
  v.field(Field("fn_coord_ce", "Also supervise the coord tokens of injected FN objects with token CE (seed "
                               "default off: FN coords learn through L_geo only)."),
          o.fn_coord_ce);
  v.field(Field("prefix_mode", "y_in prefix: raw = the rollout's own token ids up to the append-ready cut "
                               "(invalid-but-complete entries kept and masked like FP); canonical = the "
                               "valid parsed objects re-rendered canonically, invalid entries left out.")
              .choices({"raw", "canonical"}),
          o.prefix_mode);
  v.field(Field("coord_decode_mode", "Geometry decode of L_geo on B steps: exp (expectation) or st (hard "
                                     "argmax forward, expectation gradient).")
              .choices({"exp", "st"}),
          o.coord_decode_mode);
  v.section("matching", "Hungarian matching of the rollout's valid objects to the GT objects and the "
                        "gates that decide ValidMatched / FP / FN (docs/matching.md).",
            o.matching);
}

}  // namespace coordexp::config
