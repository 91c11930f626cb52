// `eval:` section — train-time detection evaluation: every `train.eval_every` optimizer steps the
// trainer can also predict on `data.val_jsonl` (the `infer` path: rollout.*, infer.coord_readout)
// and score it like `coordexp-train eval`, logging eval_* metrics. Plain data + validation.
#pragma once

#include <cstdint>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct EvalOptions {
  bool detection = false;     // also run infer + eval at each validation pass (train.eval_every)
  int64_t max_images = 64;    // val records predicted per pass (the first ones, in file order); 0 = all

  void validate() const {
    if (max_images < 0)
      throw ConfigError("must be >= 0, got " + std::to_string(max_images), "key eval.max_images",
                        "0 = every val record");
  }
};

template <class V>
void visit_fields(V& v, EvalOptions& o) {
  v.field(Field("detection", "At every validation pass (train.eval_every) also predict boxes for the first "
                             "eval.max_images records of data.val_jsonl (rollout.*, infer.coord_readout) and "
                             "score them as `coordexp-train eval` does: eval_AP, eval_AP50, eval_f1_50, "
                             "eval_parse_rate, ... in metrics.jsonl; predictions.jsonl and metrics.json in "
                             "<output_dir>/eval/step-<N>/. Rank 0 predicts; the other ranks wait."),
          o.detection);
  v.field(Field("max_images", "Val records predicted per detection-eval pass (the first ones in file order, "
                              "over the val files in order); 0 = all.").min(0), o.max_images);
}

}  // namespace coordexp::config
