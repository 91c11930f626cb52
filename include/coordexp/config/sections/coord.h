// Config section `coord`: how coord-token logits become continuous coordinates and boxes (seed 2.2-2.6,
// 5.5.2 (3)). Only the options struct, its validation and its field list; the math lives in
// include/coordexp/coord/. Channel-A's self-context temperature (tau_a) and embedding mode are not here.
#pragma once

#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct CoordOptions {
  // Temperature of the coord-subspace softmax p = softmax(s / tau) used by every geometry and
  // coord-distribution loss (not Channel-A's context temperature tau_a).
  double decode_tau = 1.0;
  // exp: expectation decode c = sum_k p_k k/999; st: hard argmax value forward, exp gradient backward.
  std::string decode_mode = "exp";
  // Minimum box side after canonicalization, in normalized [0,1] units (0.1 of a 1/999 bin):
  // x_hi = max(max(x1,x2), min(x1,x2) + box_eps). Keeps IoU/CIoU denominators and atan(w/h) finite.
  double box_eps = 1e-4;

  // Throws ConfigError naming `<prefix>.<key>`.
  void validate(const std::string& prefix = "coord") const {
    if (!(decode_tau >= 1e-3 && decode_tau <= 100.0))
      throw ConfigError("decode_tau = " + std::to_string(decode_tau) + " is out of range",
                        "key " + prefix + ".decode_tau", "use a temperature in [0.001, 100]; 1.0 is the default");
    if (decode_mode != "exp" && decode_mode != "st")
      throw ConfigError("decode_mode '" + decode_mode + "' is unknown", "key " + prefix + ".decode_mode",
                        "use exp or st");
    if (!(box_eps >= 1e-6 && box_eps <= 0.01))
      throw ConfigError("box_eps = " + std::to_string(box_eps) + " is out of range", "key " + prefix + ".box_eps",
                        "use a small positive size in [1e-6, 0.01]; 1e-4 is the default");
  }
};

template <class V>
void visit_fields(V& v, CoordOptions& o) {
  v.field(Field("decode_tau", "temperature of the coord softmax used by geometry/distribution losses")
              .range(1e-3, 100.0),
          o.decode_tau);
  v.field(Field("decode_mode", "coord decode for geometry: exp (expectation) or st (hard forward, exp gradient)")
              .choices({"exp", "st"}),
          o.decode_mode);
  v.field(Field("box_eps", "minimum box side after canonicalization (normalized units)").range(1e-6, 0.01),
          o.box_eps);
}

}  // namespace coordexp::config
