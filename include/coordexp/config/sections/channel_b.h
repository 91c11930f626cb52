// `channel_b:` section — Channel-B rollout + Hungarian + FN injection one-pass update (seed 7.2).
// This build holds the matching and gating keys (`channel_b.matching.*`, seed 5.5.3 coord_gate /
// text_gate, 7.2 B2); the math lives in include/coordexp/matching/. Rollout settings and the
// Channel-B loss weights arrive with the steps that implement them. Values only, no YAML.
#pragma once

#include <cmath>
#include <string>

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
  double min_iou = 0.5;                // coord_gate: an assigned pair is kept only if IoU >= min_iou (0 = off)
  double max_l1 = 1.0;                 // coord_gate: ... and mean L1 <= max_l1 (1 = off: L1 never exceeds 1)
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
    if (!(min_iou >= 0.0 && min_iou <= 1.0))
      throw ConfigError("min_iou = " + std::to_string(min_iou) + " is out of range",
                        "key " + prefix + ".min_iou", "use a value in [0, 1] (0 turns the IoU gate off)");
    if (!(max_l1 >= 0.0 && max_l1 <= 1.0))
      throw ConfigError("max_l1 = " + std::to_string(max_l1) + " is out of range",
                        "key " + prefix + ".max_l1", "use a value in [0, 1] (1 turns the L1 gate off)");
  }
};

struct ChannelBOptions {
  MatchingOptions matching;
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
                           "min_iou; otherwise the prediction is FP and the GT is FN. 0 = no IoU gate.")
              .range(0.0, 1.0),
          o.min_iou);
  v.field(Field("max_l1", "coord_gate: an assigned pair also needs mean |pred - gt| <= max_l1 over the "
                          "4 normalized coordinates. 1 = no L1 gate.").range(0.0, 1.0),
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
  v.section("matching", "Hungarian matching of the rollout's valid objects to the GT objects and the "
                        "gates that decide ValidMatched / FP / FN (docs/matching.md).",
            o.matching);
}

}  // namespace coordexp::config
