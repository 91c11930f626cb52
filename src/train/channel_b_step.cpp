// Channel-B micro-batch (channel_b_step.h): samples -> batched rollout -> per-sample parse, match,
// y_in with the overlength rule -> collated prompt + y_in batch with rollout-context weights ->
// one teacher-forced forward and the L_B terms.
#include "coordexp/train/channel_b_step.h"

#include <algorithm>
#include <spdlog/spdlog.h>

#include <chrono>

#include "coordexp/coord/losses.h"
#include "coordexp/coord/masks.h"
#include "coordexp/rollout/sampling.h"
#include "coordexp/util/error.h"

namespace coordexp::train {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// `parsed` with only its first `keep` complete entries (the append-ready cut moved back to the end
// of the last kept one, or to just after the head's `[`).
protocol::ParseResult keep_prefix_entries(const protocol::ParseResult& parsed, size_t keep) {
  protocol::ParseResult p = parsed;
  if (keep >= p.num_complete) return p;
  p.entries.resize(keep);
  p.num_complete = keep;
  if (keep > 0) {
    p.append_cut = p.entries.back().chars.record.end;
  } else {
    // The head `{"objects": [` holds the text's first `[` (nothing before it can contain one).
    const size_t open = p.text.find('[');
    COORDEXP_CHECK(open != std::string::npos, "a parse with a head has no '['");
    p.append_cut = static_cast<uint32_t>(open + 1);
  }
  return p;
}

}  // namespace

ChannelBSettings ChannelBSettings::from_config(const config::RunConfig& c, const tokenizer::Tokenizer& tok) {
  c.channel_b.validate();
  c.channel_b.matching.validate();
  ChannelBSettings s;
  s.batch_size = c.channel_b.batch_size > 0 ? c.channel_b.batch_size : c.train.micro_batch_size;
  s.prefix_mode = protocol::prefix_mode_from_name(c.channel_b.prefix_mode);
  s.field_order = protocol::field_order(c.protocol);
  s.fn_order = data::fn_injection_order(data::object_order_from_name(c.data.object_order));
  s.matching = c.channel_b.matching;
  s.fn_coord_ce = c.channel_b.fn_coord_ce;
  s.loss = c.loss;
  s.loss.geo.weight = c.channel_b.geo_weight;
  s.coord = c.coord;
  s.coord.decode_mode = c.channel_b.coord_decode_mode;
  s.term_weights = coord::term_weights(s.loss);
  for (coord::Term t : {coord::Term::kGeoHuber, coord::Term::kGeoIou})
    s.term_weights[static_cast<int>(t)] *= c.channel_b.matched_geo_weight;
  s.generation = rollout::GenerationOptions::from_config(c.rollout, tok);
  // Channel-B must see the model's real failures: never constrained, whatever rollout.constrained says.
  s.generation.constraint = nullptr;
  if (c.rollout.constrained && c.train.stage == "stage2")
    spdlog::warn("rollout.constrained applies to infer / generate only; Channel-B rollouts stay unconstrained");
  s.max_length = c.data.max_length;
  s.async_producer = c.channel_b.producer == "async";
  s.version_window = c.channel_b.version_window;
  s.queue_limit = c.channel_b.queue_limit;
  return s;
}

std::vector<BGtObject> b_gt_objects(const data::Record& record, data::ObjectOrder order) {
  COORDEXP_CHECK(order != data::ObjectOrder::kRandom, "FN objects are injected in a canonical order");
  std::vector<data::GtObject> kept;
  for (const auto& o : record.objects)
    if (!o.crowd) kept.push_back(o);  // crowd regions are evaluation-only, never rendered
  std::vector<BGtObject> out;
  for (const size_t i : data::object_order(kept, order, record.sample_key, 0)) {
    const data::GtObject& g = kept[i];
    BGtObject b;
    b.object = g.to_protocol();
    std::vector<double> flat;
    for (const auto& c : g.coords) flat.push_back(c.c_gt);
    b.match = matching::match_object_from_norm(g.desc, g.kind, flat);
    if (g.kind == protocol::GeometryKind::kBbox && flat.size() == 4) b.gt_box = {flat[0], flat[1], flat[2], flat[3]};
    out.push_back(std::move(b));
  }
  return out;
}

BTarget build_b_target(const std::vector<tokenizer::TokenId>& rollout_ids, const std::vector<BGtObject>& gt,
                       const tokenizer::Tokenizer& tok, const ChannelBSettings& settings,
                       const config::MatchingOptions& gates, int64_t max_answer_tokens) {
  BTarget t;
  t.gates = gates;
  t.parsed = protocol::parse_ids(rollout_ids, tok);
  t.predictions = matching::predictions_from_parse(t.parsed);
  std::vector<matching::MatchObject> gt_match;
  gt_match.reserve(gt.size());
  for (const auto& g : gt) gt_match.push_back(g.match);
  t.match = matching::match_objects(t.predictions.objects, gt_match, gates);

  // FN in GT canonical order: match.fn ascends and `gt` is in canonical order.
  size_t num_fn = t.match.fn.size();
  size_t num_prefix = t.parsed.has_prefix ? t.parsed.num_complete : 0;
  for (;;) {
    const protocol::ParseResult p = keep_prefix_entries(t.parsed, num_prefix);
    std::vector<protocol::Object> fn_objects;
    for (size_t i = 0; i < num_fn; ++i) fn_objects.push_back(gt[static_cast<size_t>(t.match.fn[i])].object);
    t.y_in = protocol::build_y_in(p, fn_objects, tok, settings.prefix_mode, settings.field_order);
    if (static_cast<int64_t>(t.y_in.ids.size()) <= max_answer_tokens || (num_fn == 0 && num_prefix == 0)) break;
    if (num_fn > 0) {
      --num_fn;
    } else {
      --num_prefix;
    }
  }
  t.num_fn_dropped = static_cast<int64_t>(t.match.fn.size() - num_fn);
  t.num_prefix_dropped = static_cast<int64_t>((t.parsed.has_prefix ? t.parsed.num_complete : 0) - num_prefix);
  t.fn_gt.assign(t.match.fn.begin(), t.match.fn.begin() + static_cast<std::ptrdiff_t>(num_fn));

  matching::set_prefix_subsets(t.y_in, t.predictions, t.match, gt_match);
  for (size_t i = 0; i < t.y_in.layout.objects.size(); ++i) {
    const protocol::ObjectOrigin& origin = t.y_in.origins[i];
    if (origin.source != protocol::ObjectSource::kInjectedFn) continue;
    t.y_in.layout.objects[i].gt_box = gt[static_cast<size_t>(t.fn_gt.at(static_cast<size_t>(origin.index)))].gt_box;
  }
  return t;
}

ChannelBDiagnostics& ChannelBDiagnostics::operator+=(const ChannelBDiagnostics& o) {
  num_rollouts += o.num_rollouts;
  num_parse_complete += o.num_parse_complete;
  num_invalid_rollout += o.num_invalid_rollout;
  num_truncated += o.num_truncated;
  num_valid_pred += o.num_valid_pred;
  num_drop_invalid += o.num_drop_invalid;
  for (const auto& [k, v] : o.drop_invalid_by_reason) drop_invalid_by_reason[k] += v;
  num_matched += o.num_matched;
  num_fp += o.num_fp;
  num_fn += o.num_fn;
  num_gt += o.num_gt;
  num_overlength += o.num_overlength;
  rollout_tokens += o.rollout_tokens;
  y_in_tokens += o.y_in_tokens;
  rollout_seconds += o.rollout_seconds;
  build_seconds += o.build_seconds;
  forward_backward_seconds += o.forward_backward_seconds;
  return *this;
}

PreparedBatch prepare_b_forward(std::vector<data::Sample> samples, const std::vector<BTarget>& targets,
                                const ChannelBSettings& settings, tokenizer::TokenId pad_id) {
  COORDEXP_CHECK(samples.size() == targets.size(), "" << samples.size() << " samples for " << targets.size() << " targets");
  protocol::ResponseLayout all;
  std::vector<coord::TokenWeights> weights;
  for (size_t i = 0; i < samples.size(); ++i) {
    data::Sample& s = samples[i];
    const protocol::YIn& y = targets[i].y_in;
    const auto p = static_cast<size_t>(s.answer_begin);
    s.input_ids.resize(p);
    s.input_ids.insert(s.input_ids.end(), y.ids.begin(), y.ids.end());
    s.labels.assign(p, data::kIgnoreLabel);
    s.labels.insert(s.labels.end(), y.ids.begin(), y.ids.end());
    s.answer_types = y.layout.types;
    s.objects.clear();  // the layout below (with subsets) replaces the GT view
    auto full = [&s](int32_t a) { return a < 0 ? int64_t{-1} : s.answer_begin + a; };
    s.array_close = full(y.layout.array_close);
    s.outer_close = full(y.layout.object_close);
    s.eos = full(y.layout.eos);

    weights.push_back(coord::build_token_weights(y.layout, coord::Context::kRollout, settings.loss, settings.fn_coord_ce));
    const auto shift = static_cast<int32_t>(all.types.size());
    all.types.insert(all.types.end(), y.layout.types.begin(), y.layout.types.end());
    for (protocol::ObjectSpan o : y.layout.objects) {
      o.tokens = {o.tokens.begin + shift, o.tokens.end + shift};
      o.desc = {o.desc.begin + shift, o.desc.end + shift};
      for (int32_t& c : o.coord_positions) c += shift;
      all.objects.push_back(std::move(o));
    }
  }
  PreparedBatch out;
  out.batch = data::collate(std::move(samples), pad_id);
  out.batch.response_layout = std::move(all);  // concatenated, per-sample closures in the weights
  auto cat = [&weights](torch::Tensor coord::TokenWeights::*member) {
    if (weights.empty()) return torch::zeros({0}, torch::kFloat);
    std::vector<torch::Tensor> parts;
    for (const auto& w : weights) parts.push_back(w.*member);
    return torch::cat(parts);
  };
  out.weights = {cat(&coord::TokenWeights::struct_w), cat(&coord::TokenWeights::desc_w),
                 cat(&coord::TokenWeights::coord_w), cat(&coord::TokenWeights::eos_w)};
  const coord::TermCounts ce = coord::token_ce_counts(out.weights, settings.loss);
  const coord::TermCounts geo =
      coord::coord_term_counts(out.batch.response_layout.objects, coord::Context::kRollout, settings.loss);
  for (int i = 0; i < coord::kNumTerms; ++i) out.counts[i] = ce[i] + geo[i];
  return out;
}

BSamples load_b_samples(const data::DetectionDataset& dataset, const std::vector<BSampler::Pick>& picks,
                        data::ReasonCounts* skipped) {
  BSamples out;
  for (const auto& pick : picks) {
    data::SampleResult r = dataset.try_get(pick.index, pick.epoch);
    if (!r.sample) {
      if (skipped) ++(*skipped)[r.reason];
      continue;
    }
    out.samples.push_back(std::move(*r.sample));
    out.picks.push_back(pick);
  }
  return out;
}

rollout::GenerationResult rollout_b_samples(model::Qwen3VL& model, const BSamples& in, int64_t ver,
                                            const ChannelBSettings& settings) {
  rollout::GenerationRequest request;
  std::vector<torch::Tensor> pixels, grids;
  int64_t longest_prompt = 0;
  const uint64_t step_seed = rollout::row_seed(settings.generation.seed, static_cast<uint64_t>(ver));
  for (size_t i = 0; i < in.samples.size(); ++i) {
    const data::Sample& s = in.samples[i];
    request.prompts.emplace_back(s.input_ids.begin(), s.input_ids.begin() + s.answer_begin);
    longest_prompt = std::max(longest_prompt, s.answer_begin);
    if (s.pixel_values.defined() && s.pixel_values.numel() > 0) {
      pixels.push_back(s.pixel_values);
      grids.push_back(s.image_grid_thw);
    }
    // A sample draws the same tokens whichever micro-batch or rank it lands in.
    request.row_seeds.push_back(rollout::row_seed(step_seed, static_cast<uint64_t>(in.picks[i].index)));
  }
  if (!pixels.empty()) {
    request.pixel_values = torch::cat(pixels, 0);
    request.image_grid_thw = torch::cat(grids, 0);
  }
  rollout::GenerationOptions gen = settings.generation;
  gen.max_new_tokens = std::max<int64_t>(1, std::min<int64_t>(gen.max_new_tokens, settings.max_length - longest_prompt));
  torch::NoGradGuard no_grad;
  return rollout::generate(model, request, gen);
}

BTarget build_b_target_for_row(const rollout::GeneratedRow& row, const data::Record& record,
                               const data::Sample& sample, int64_t ver, const tokenizer::Tokenizer& tok,
                               const ChannelBSettings& settings, ChannelBDiagnostics& d) {
  std::vector<tokenizer::TokenId> ids(row.ids.begin(), row.ids.end());
  const std::vector<BGtObject> gt = b_gt_objects(record, settings.fn_order);
  BTarget t = build_b_target(ids, gt, tok, settings, settings.matching.at_step(ver),
                             settings.max_length - sample.answer_begin);
  ++d.num_rollouts;
  d.rollout_tokens += static_cast<int64_t>(row.ids.size());
  if (row.finish == rollout::FinishReason::kMaxNewTokens) ++d.num_truncated;
  if (t.parsed.status == protocol::RolloutStatus::kComplete) ++d.num_parse_complete;
  if (t.y_in.invalid_rollout) ++d.num_invalid_rollout;
  d.num_valid_pred += static_cast<int64_t>(t.predictions.objects.size());
  for (const auto& e : t.parsed.entries)
    if (!e.valid()) {
      ++d.num_drop_invalid;
      ++d.drop_invalid_by_reason[protocol::drop_reason_name(e.reason)];
    }
  d.num_matched += static_cast<int64_t>(t.match.matched.size());
  d.num_fp += static_cast<int64_t>(t.match.fp.size());
  d.num_fn += static_cast<int64_t>(t.match.fn.size());
  d.num_gt += static_cast<int64_t>(gt.size());
  if (t.num_fn_dropped + t.num_prefix_dropped > 0) ++d.num_overlength;
  d.y_in_tokens += static_cast<int64_t>(t.y_in.ids.size());
  return t;
}

ChannelBBatch prepare_channel_b(model::Qwen3VL& model, const data::DetectionDataset& dataset,
                                const std::vector<BSampler::Pick>& picks, int64_t step,
                                const ChannelBSettings& settings, data::ReasonCounts* skipped) {
  ChannelBBatch out;
  ChannelBDiagnostics& d = out.diagnostics;
  const double t0 = now_s();
  BSamples in = load_b_samples(dataset, picks, skipped);
  if (in.samples.empty()) {
    out.prepared = prepare_b_forward({}, {}, settings, dataset.pad_id());
    return out;
  }
  // B0: rollout of every prompt with the current weights.
  const rollout::GenerationResult rolled = rollout_b_samples(model, in, step, settings);
  const double t1 = now_s();
  d.rollout_seconds = t1 - t0;
  // B1-B3 per sample.
  for (size_t i = 0; i < in.samples.size(); ++i)
    out.targets.push_back(build_b_target_for_row(rolled.rows[i], dataset.record(in.picks[i].index), in.samples[i],
                                                 step, dataset.tokenizer(), settings, d));
  out.prepared = prepare_b_forward(std::move(in.samples), out.targets, settings, dataset.pad_id());
  d.build_seconds = now_s() - t1;
  return out;
}

coord::LossTerms channel_b_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                      const ChannelBSettings& settings) {
  const data::Batch& b = prepared.batch;
  if (b.size() == 0 || b.response_targets.numel() == 0) return {};
  const torch::Device device = model.runtime().device;
  const model::VisionFeatures vision = model.encode_images(b.pixel_values.to(device), b.image_grid_thw.to(device));
  GtForward f = gt_forward(model, prepared, vision, ids, settings.loss);
  f.ce_terms += coord::coord_terms(f.coord_logits, b.response_layout.objects, coord::Context::kRollout, coord::CoordIdRange{0},
                                   settings.coord, settings.loss);
  return f.ce_terms;
}

}  // namespace coordexp::train
