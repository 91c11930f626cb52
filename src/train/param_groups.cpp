// Splitting Qwen3-VL parameters into optimizer groups by Hugging Face key prefix, with the coord rows
// of the embedding / LM head carved out as their own slices. Pure bookkeeping over tensor views.
#include "coordexp/train/param_groups.h"

#include <set>

#include "coordexp/util/error.h"

namespace coordexp::train {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

int64_t num_rows_of(const torch::Tensor& t) { return t.dim() == 0 ? 1 : t.size(0); }

}  // namespace

const char* to_string(ParamGroup g) {
  switch (g) {
    case ParamGroup::kVision: return "vision";
    case ParamGroup::kMerger: return "merger";
    case ParamGroup::kLanguageModel: return "language_model";
    case ParamGroup::kCoordRows: return "coord_rows";
    case ParamGroup::kCoordOffset: return "coord_offset";
  }
  return "?";
}

bool ParamSlice::whole() const { return row_begin == 0 && row_end == num_rows_of(param); }

torch::Tensor ParamSlice::value() const {
  if (whole()) return param;
  return param.narrow(0, row_begin, row_end - row_begin);
}

torch::Tensor ParamSlice::grad() const {
  const torch::Tensor& g = param.grad();
  if (!g.defined() || whole()) return g;
  return g.narrow(0, row_begin, row_end - row_begin);
}

std::string ParamSlice::state_key() const {
  if (whole()) return key;
  return key + "[rows " + std::to_string(row_begin) + ":" + std::to_string(row_end) + "]";
}

ParamGroup group_of_key(const std::string& key) {
  if (starts_with(key, "model.visual.merger.") || starts_with(key, "model.visual.deepstack_merger_list."))
    return ParamGroup::kMerger;
  if (starts_with(key, "model.visual.")) return ParamGroup::kVision;
  if (starts_with(key, "model.language_model.") || starts_with(key, "lm_head.")) return ParamGroup::kLanguageModel;
  if (starts_with(key, "coord_offset.")) return ParamGroup::kCoordOffset;
  COORDEXP_CHECK(false, "parameter '" << key << "' belongs to no optimizer group");
  return ParamGroup::kLanguageModel;
}

bool has_token_rows(const std::string& key) {
  return key == "model.language_model.embed_tokens.weight" || key == "lm_head.weight";
}

std::vector<ParamSlice> partition_parameters(const std::map<std::string, torch::Tensor>& params, CoordRows coord) {
  std::vector<ParamSlice> slices;
  std::set<const void*> seen;
  for (const auto& [key, param] : params) {
    if (!seen.insert(param.unsafeGetTensorImpl()).second) continue;  // tied copy of an earlier key
    const bool decay = param.dim() >= 2;
    const int64_t rows = num_rows_of(param);
    if (!has_token_rows(key)) {
      slices.push_back({key, param, 0, rows, group_of_key(key), decay});
      continue;
    }
    const int64_t begin = coord.first_id, end = coord.first_id + coord.num_rows;
    if (begin < 0 || end > rows)
      throw DataError("tensor has " + std::to_string(rows) + " token rows but the coord vocabulary needs rows " +
                          std::to_string(begin) + ".." + std::to_string(end - 1),
                      "parameter " + key,
                      "add the coord tokens to the model first (coordexp-train expand-vocab)");
    if (begin > 0) slices.push_back({key, param, 0, begin, ParamGroup::kLanguageModel, decay});
    slices.push_back({key, param, begin, end, ParamGroup::kCoordRows, decay});
    if (end < rows) slices.push_back({key, param, end, rows, ParamGroup::kLanguageModel, decay});
  }
  return slices;
}

std::array<int64_t, kNumParamGroups> count_elements(const std::vector<ParamSlice>& slices) {
  std::array<int64_t, kNumParamGroups> n{};
  for (const auto& s : slices) n[static_cast<int>(s.group)] += s.value().numel();
  return n;
}

}  // namespace coordexp::train
