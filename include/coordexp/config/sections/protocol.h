// Config section `protocol`: how coordinates and CoordJSON records are written (pixel -> bin
// convention, box rounding, field order). Plain strings so the config layer can read/dump them;
// coordexp/protocol/coords.h and coordjson.h turn them into enums. No YAML here.
#pragma once

#include <string>
#include <vector>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

namespace sections_detail {
// Throws ConfigError naming `key` unless `value` is one of `allowed`.
inline void require_choice(const std::string& key, const std::string& value,
                           const std::vector<std::string>& allowed) {
  for (const auto& a : allowed)
    if (value == a) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
  throw ConfigError("invalid value '" + value + "'", "key " + key, "use one of " + list);
}
}  // namespace sections_detail

struct ProtocolOptions {
  // Denominator of pixel -> [0,1]: "size" divides by W (H), "size_minus_one" by W-1 (H-1) for data
  // produced by tools that map the last pixel centre to 1.0.
  std::string pixel_extent = "size";
  // Pixel box -> bins: "round" = round(999*c) for every coordinate (seed 3.3); "outward" = floor for
  // x1,y1 and ceil for x2,y2, then nudged so x2 > x1 and y2 > y1 (boxes never collapse).
  std::string box_rounding = "round";
  // Order of fields inside an object record: "desc_first" (seed default) or "geometry_first".
  std::string field_order = "desc_first";

  void validate() const {
    sections_detail::require_choice("protocol.pixel_extent", pixel_extent, {"size", "size_minus_one"});
    sections_detail::require_choice("protocol.box_rounding", box_rounding, {"round", "outward"});
    sections_detail::require_choice("protocol.field_order", field_order, {"desc_first", "geometry_first"});
  }
};

template <class V>
void visit_fields(V& v, ProtocolOptions& o) {
  v.field(Field("pixel_extent", "pixel -> [0,1] denominator: size (W) or size_minus_one (W-1)")
              .choices({"size", "size_minus_one"}), o.pixel_extent);
  v.field(Field("box_rounding", "pixel box -> bins: round, or outward (floor x1,y1 / ceil x2,y2)")
              .choices({"round", "outward"}), o.box_rounding);
  v.field(Field("field_order", "object record field order: desc_first or geometry_first")
              .choices({"desc_first", "geometry_first"}), o.field_order);
}

}  // namespace coordexp::config
