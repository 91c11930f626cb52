// libFuzzer target for the JSONL record validator. The first byte picks the options (coords mode,
// pixel extent, box rounding, swapped-box policy); the rest is one line. Checked properties: no
// exception escapes; exactly one of record/error; a valid record has bins in 0..999, finite c_gt in
// [0, 1], valid arity and descs that render and parse back unchanged.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "coordexp/data/jsonl.h"
#include "coordexp/protocol/parse.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coordexp;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  data::JsonlOptions opt;
  opt.check_images = false;
  opt.coords = static_cast<data::CoordsMode>(flags % 3);
  opt.convention.pixel_extent = flags & 4 ? protocol::PixelExtent::kSizeMinusOne : protocol::PixelExtent::kSize;
  opt.convention.box_rounding = flags & 8 ? protocol::BoxRounding::kOutward : protocol::BoxRounding::kRound;
  opt.swapped_box = flags & 16 ? data::SwappedBoxPolicy::kReject : data::SwappedBoxPolicy::kSwap;
  data::RecordContext ctx{"fuzz.jsonl", 1, ""};
  const auto v = data::validate_record(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), ctx, opt);
  require(v.record.has_value() != v.error.has_value(), "exactly one of record / error");
  if (!v.record) return 0;
  std::vector<protocol::Object> objs;
  for (const auto& o : v.record->objects) {
    require(protocol::valid_arity(o.kind, o.coords.size()), "arity");
    for (const auto& c : o.coords)
      require(c.bin >= 0 && c.bin <= 999 && std::isfinite(c.c_gt) && c.c_gt >= 0 && c.c_gt <= 1, "coord range");
    if (o.kind == protocol::GeometryKind::kBbox)
      require(o.coords[0].bin <= o.coords[2].bin && o.coords[1].bin <= o.coords[3].bin, "box order");
    objs.push_back(o.to_protocol());
  }
  const auto parsed = protocol::parse_text(protocol::render_text(objs, protocol::FieldOrder::kDescFirst).text);
  require(parsed.status == protocol::RolloutStatus::kComplete && parsed.valid_objects() == objs,
          "valid record renders and parses back unchanged");
  return 0;
}
