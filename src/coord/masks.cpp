// Token-weight builder for the gt / self_context / rollout contexts (seed 5.5.4; see masks.h).
// rollout follows the seed's order of operations: zeros, matched, fn, EOS-enforced, and the FP/invalid
// zeroing applied last so FP-neutral wins over EOS-enforced.
#include "coordexp/coord/masks.h"

#include <algorithm>

#include "coordexp/util/error.h"

namespace coordexp::coord {

const char* to_string(Context c) {
  switch (c) {
    case Context::kGt: return "gt";
    case Context::kSelfContext: return "self_context";
    case Context::kRollout: return "rollout";
  }
  return "?";
}

void check_layout(const ResponseLayout& layout) {
  const auto n = static_cast<int64_t>(layout.types.size());
  auto in_range = [n](int64_t t) { return t >= 0 && t < n; };
  for (int64_t pos : {layout.array_close, layout.object_close, layout.eos})
    COORDEXP_CHECK(pos == -1 || in_range(pos), "closing position " << pos << " outside the response of " << n
                                                                   << " tokens");
  if (layout.eos >= 0)
    COORDEXP_CHECK(layout.types[layout.eos] == TokenType::kEos, "eos position " << layout.eos << " is not typed eos");
  std::vector<int64_t> coords;
  for (size_t i = 0; i < layout.objects.size(); ++i) {
    const ObjectSpan& o = layout.objects[i];
    const TokenRange& r = o.tokens;
    COORDEXP_CHECK(r.begin >= 0 && r.begin <= r.end && r.end <= n,
                   "object " << i << " record [" << r.begin << ", " << r.end << ") outside [0, " << n << ")");
    COORDEXP_CHECK(o.desc.begin <= o.desc.end &&
                       (o.desc.begin == o.desc.end || (o.desc.begin >= r.begin && o.desc.end <= r.end)),
                   "object " << i << " desc [" << o.desc.begin << ", " << o.desc.end << ") not inside its record");
    for (int64_t c : o.coord_positions) {
      COORDEXP_CHECK(r.contains(static_cast<int32_t>(c)),
                     "object " << i << " coord position " << c << " outside its record");
      COORDEXP_CHECK(layout.types[c] == TokenType::kCoord,
                     "object " << i << " coord position " << c << " is not typed coord");
      coords.push_back(c);
    }
    if (o.subset != ObjectSubset::kInvalid) {
      const size_t nc = o.coord_positions.size();
      if (o.geometry == GeometryKind::kBbox)
        COORDEXP_CHECK(nc == 4, "bbox object " << i << " has " << nc << " coord positions");
      else
        COORDEXP_CHECK(nc >= 6 && nc % 2 == 0, "poly object " << i << " has " << nc << " coord positions");
    }
    if (i > 0) {
      // Sequence order; neighbours may share boundary tokens (masks.h), never contain one another.
      const TokenRange& prev = layout.objects[i - 1].tokens;
      COORDEXP_CHECK(r.begin >= prev.begin && r.end >= prev.end && (r.begin > prev.begin || r.empty() || prev.empty()),
                     "object " << i << " record [" << r.begin << ", " << r.end << ") is not after object " << i - 1
                               << " [" << prev.begin << ", " << prev.end << ")");
    }
  }
  std::sort(coords.begin(), coords.end());
  COORDEXP_CHECK(std::adjacent_find(coords.begin(), coords.end()) == coords.end(), "two objects share a coord position");
}

namespace {

struct Weights {
  std::vector<float> struct_w, desc_w, coord_w, eos_w;
  explicit Weights(size_t n) : struct_w(n, 0.f), desc_w(n, 0.f), coord_w(n, 0.f), eos_w(n, 0.f) {}

  // Sets the weight of token t's own type (types are exclusive, so only that one is non-zero).
  void set_by_type(const std::vector<TokenType>& types, int64_t t, float w_struct, float w_desc, float w_coord,
                   float w_eos) {
    switch (types[t]) {
      case TokenType::kStruct: struct_w[t] = w_struct; break;
      case TokenType::kDesc: desc_w[t] = w_desc; break;
      case TokenType::kCoord: coord_w[t] = w_coord; break;
      case TokenType::kEos: eos_w[t] = w_eos; break;
    }
  }
  void zero(int64_t t) { struct_w[t] = desc_w[t] = coord_w[t] = eos_w[t] = 0.f; }

  TokenWeights to_tensors() const {
    auto t = [](const std::vector<float>& v) {
      return torch::tensor(torch::ArrayRef<float>(v), torch::kFloat);
    };
    return {t(struct_w), t(desc_w), t(coord_w), t(eos_w)};
  }
};

}  // namespace

TokenWeights build_token_weights(const ResponseLayout& layout, Context context, const config::LossOptions& loss,
                                 bool fn_coord_ce) {
  check_layout(layout);
  const auto n = static_cast<int64_t>(layout.types.size());
  Weights w(layout.types.size());
  const auto w_struct = static_cast<float>(loss.struct_weight);
  const auto w_desc = static_cast<float>(loss.desc_weight);
  const auto w_eos = static_cast<float>(loss.eos_weight);
  const auto w_coord = static_cast<float>(loss.coord_ce.upweight);

  switch (context) {
    case Context::kSelfContext:
      break;
    case Context::kGt: {
      const float coord = loss.coord_ce.weight > 0.0 ? w_coord : 0.f;
      for (int64_t t = 0; t < n; ++t) w.set_by_type(layout.types, t, w_struct, w_desc, coord, w_eos);
      break;
    }
    case Context::kRollout: {
      COORDEXP_CHECK(layout.eos >= 0, "context=rollout needs the <|im_end|> position (y_in must end with it)");
      for (const ObjectSpan& o : layout.objects) {
        COORDEXP_CHECK(o.subset != ObjectSubset::kUnassigned,
                       "context=rollout needs every object's subset (run matching before building masks)");
        if (o.subset == ObjectSubset::kMatched) {
          for (int64_t t = o.tokens.begin; t < o.tokens.end; ++t) w.set_by_type(layout.types, t, w_struct, 0, 0, 0);
        } else if (o.subset == ObjectSubset::kFn) {
          const float coord = fn_coord_ce ? w_coord : 0.f;
          for (int64_t t = o.tokens.begin; t < o.tokens.end; ++t)
            w.set_by_type(layout.types, t, w_struct, w_desc, coord, 0);
        }
      }
      // EOS-enforced: the top-level `]`, the outermost `}` (struct) and <|im_end|> (eos).
      for (int64_t pos : {layout.array_close, layout.object_close})
        if (pos >= 0) w.set_by_type(layout.types, pos, w_struct, 0, 0, 0);
      w.eos_w[layout.eos] = w_eos;
      // FP-neutral wins: FP and dropped-invalid spans are all zero, whatever was set above.
      for (const ObjectSpan& o : layout.objects)
        if (o.subset == ObjectSubset::kFp || o.subset == ObjectSubset::kInvalid)
          for (int64_t t = o.tokens.begin; t < o.tokens.end; ++t) w.zero(t);
      break;
    }
  }
  return w.to_tensors();
}

}  // namespace coordexp::coord
