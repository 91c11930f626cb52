// Channel-B matching (see matcher.h): pair costs from bounding boxes (and optionally descs), the exact
// assignment, then the gates. Output order is fixed (ascending indices) so every rank and every rerun
// builds the same y_in.
#include "coordexp/matching/matcher.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "coordexp/protocol/coords.h"
#include "coordexp/util/error.h"

namespace coordexp::matching {

MatchObject match_object_from_bins(const protocol::Object& object) {
  COORDEXP_CHECK(protocol::valid_arity(object.kind, object.bins.size()),
                 "object '" << object.desc << "' has " << object.bins.size() << " coordinates");
  std::vector<double> flat(object.bins.size());
  for (size_t k = 0; k < flat.size(); ++k) flat[k] = protocol::bin_to_norm(object.bins[k]);
  return {object.desc, object.kind, bounding_box(flat)};
}

MatchObject match_object_from_norm(std::string desc, protocol::GeometryKind kind,
                                   const std::vector<double>& flat_xy) {
  COORDEXP_CHECK(protocol::valid_arity(kind, flat_xy.size()),
                 "object '" << desc << "' has " << flat_xy.size() << " coordinates");
  return {std::move(desc), kind, bounding_box(flat_xy)};
}

Predictions predictions_from_parse(const protocol::ParseResult& parsed) {
  Predictions out;
  for (size_t e = 0; e < parsed.entries.size(); ++e) {
    if (!parsed.entries[e].valid()) continue;
    out.objects.push_back(match_object_from_bins(parsed.entries[e].object));
    out.entry_index.push_back(static_cast<int32_t>(e));
  }
  return out;
}

std::string normalize_desc(const std::string& desc) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  std::string out;
  out.reserve(desc.size());
  bool pending_space = false;
  for (char c : desc) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

namespace {

bool use_giou(const config::MatchingOptions& options) { return options.cost_iou_kind == "giou"; }

std::vector<std::string> normalized_descs(const std::vector<MatchObject>& objects) {
  std::vector<std::string> out;
  out.reserve(objects.size());
  for (const auto& o : objects) out.push_back(normalize_desc(o.desc));
  return out;
}

}  // namespace

CostMatrix build_cost_matrix(const std::vector<MatchObject>& preds, const std::vector<MatchObject>& gts,
                             const config::MatchingOptions& options) {
  const bool giou_cost = use_giou(options);
  const bool text = options.cost_text > 0.0;
  const auto pred_descs = text ? normalized_descs(preds) : std::vector<std::string>{};
  const auto gt_descs = text ? normalized_descs(gts) : std::vector<std::string>{};
  CostMatrix cost_PG(static_cast<int>(preds.size()), static_cast<int>(gts.size()));
  for (int p = 0; p < cost_PG.rows; ++p) {
    for (int g = 0; g < cost_PG.cols; ++g) {
      const MatchObject& a = preds[p];
      const MatchObject& b = gts[g];
      if (a.kind != b.kind && !options.cross_kind) {
        cost_PG.at(p, g) = std::numeric_limits<double>::infinity();
        continue;
      }
      const double overlap = giou_cost ? giou(a.box, b.box) : iou(a.box, b.box);
      double c = options.cost_l1 * mean_l1(a.box, b.box) + options.cost_iou * (1.0 - overlap);
      if (text && pred_descs[p] != gt_descs[g]) c += options.cost_text;
      cost_PG.at(p, g) = c;
    }
  }
  return cost_PG;
}

MatchResult match_objects(const std::vector<MatchObject>& preds, const std::vector<MatchObject>& gts,
                          const config::MatchingOptions& options) {
  options.validate();
  COORDEXP_CHECK(options.min_iou.is_constant() && options.max_l1.is_constant(),
                 "match_objects takes the gates of one step: pass MatchingOptions::at_step(step)");
  const CostMatrix cost_PG = build_cost_matrix(preds, gts, options);
  const Assignment assignment = solve_assignment(cost_PG);

  MatchResult out;
  std::vector<char> gt_matched(gts.size(), 0);
  for (int p = 0; p < cost_PG.rows; ++p) {
    const int g = assignment.col_of_row[p];
    if (g < 0) {
      out.fp.push_back(p);
      continue;
    }
    const MatchedPair pair{p, g, iou(preds[p].box, gts[g].box), mean_l1(preds[p].box, gts[g].box),
                           cost_PG.at(p, g)};
    const bool accepted = pair.iou >= options.min_iou.value() && pair.l1 <= options.max_l1.value() &&
                          (!options.text_gate || normalize_desc(preds[p].desc) == normalize_desc(gts[g].desc));
    if (accepted) {
      out.matched.push_back(pair);
      gt_matched[g] = 1;
    } else {
      out.rejected.push_back(pair);
      out.fp.push_back(p);
    }
  }
  for (int g = 0; g < cost_PG.cols; ++g)
    if (!gt_matched[g]) out.fn.push_back(g);
  return out;
}

void set_prefix_subsets(protocol::YIn& y_in, const Predictions& preds, const MatchResult& result,
                        const std::vector<MatchObject>& gts) {
  COORDEXP_CHECK(y_in.origins.size() == y_in.layout.objects.size());
  std::vector<int> gt_of(preds.objects.size(), -1);
  for (const auto& m : result.matched) {
    COORDEXP_CHECK(m.gt >= 0 && static_cast<size_t>(m.gt) < gts.size(), "matched GT " << m.gt << " out of range");
    gt_of.at(m.pred) = m.gt;
  }
  for (size_t i = 0; i < y_in.layout.objects.size(); ++i) {
    protocol::ObjectSpan& o = y_in.layout.objects[i];
    const protocol::ObjectOrigin& origin = y_in.origins[i];
    if (origin.source != protocol::ObjectSource::kRolloutPrefix || o.subset != protocol::ObjectSubset::kUnassigned)
      continue;
    const auto it = std::lower_bound(preds.entry_index.begin(), preds.entry_index.end(), origin.index);
    COORDEXP_CHECK(it != preds.entry_index.end() && *it == origin.index,
                   "y_in prefix entry " << origin.index << " is not one of the matched predictions");
    const int g = gt_of[it - preds.entry_index.begin()];
    o.subset = g >= 0 ? protocol::ObjectSubset::kMatched : protocol::ObjectSubset::kFp;
    if (g >= 0) o.gt_box = gts[g].box;
  }
}

}  // namespace coordexp::matching
