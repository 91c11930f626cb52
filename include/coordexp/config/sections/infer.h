// `infer:` section — `coordexp-train infer` (batched rollouts over a JSONL, one prediction line per
// record): how coordinates are read out of the generated coord tokens. Generation itself is the
// `rollout:` section. Plain data + validation; no YAML here.
#pragma once

#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct InferOptions {
  // discrete: each coord token's bin k -> k/999; expectation: CoordExp decode of the 1000 coord
  // logits at that step, c = sum_k softmax(s / coord.decode_tau)_k * k/999 (seed 9.3).
  std::string coord_readout = "discrete";
  double progress_every_s = 10.0;  // seconds between progress lines (0 = only the final one)

  void validate() const {
    if (coord_readout != "discrete" && coord_readout != "expectation")
      throw ConfigError("invalid value '" + coord_readout + "'", "key infer.coord_readout",
                        "allowed: discrete | expectation");
    if (!(progress_every_s >= 0.0))
      throw ConfigError("must be >= 0, got " + std::to_string(progress_every_s), "key infer.progress_every_s");
  }
};

template <class V>
void visit_fields(V& v, InferOptions& o) {
  v.field(Field("coord_readout", "how a predicted box's coordinates are read: discrete (the coord token's bin "
                                 "k -> k/999) or expectation (sum_k softmax(logits / coord.decode_tau)_k k/999 "
                                 "over the 1000 coord logits of that step)")
              .choices({"discrete", "expectation"}), o.coord_readout);
  v.field(Field("progress_every_s", "seconds between progress lines (records done, images/s, ETA); 0 = only "
                                    "the final line").min(0.0), o.progress_every_s);
}

}  // namespace coordexp::config
