// Channel-B, Stage-2's cold path (seed 7.2 B0-B4), on one micro-batch of training samples: rollout
// with the current weights (no grad, batched) -> strict parse -> Hungarian + gates -> y_in = the
// append-ready rollout prefix + the missed GT objects (FN) + "]}" + <|im_end|> -> one teacher-forced
// forward over prompt + y_in with context=rollout masks (FP-neutral, EOS-enforced) and
// L_B = L_struct_ce + L_desc_ce + lambda_geo^B * (mean(ValidMatched) + mean(FN)) of L_geo.
// Building the target (build_b_target) is pure and shared with `inspect-b`; the forward reuses
// Stage-1's teacher-forced forward (stage1_step.h gt_forward) with the rollout weights.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordexp/config/run_config.h"
#include "coordexp/coord/loss_terms.h"
#include "coordexp/data/dataset.h"
#include "coordexp/matching/matcher.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/protocol/channel_b.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/rollout/generator.h"
#include "coordexp/train/b_sampler.h"
#include "coordexp/train/stage1_step.h"

namespace coordexp::train {

// The channel_b / rollout / loss sections resolved once for a run.
struct ChannelBSettings {
  int64_t batch_size = 1;  // rollouts per rank per micro-step
  protocol::PrefixMode prefix_mode = protocol::PrefixMode::kRaw;
  protocol::FieldOrder field_order = protocol::FieldOrder::kDescFirst;
  data::ObjectOrder fn_order = data::ObjectOrder::kSorted;  // GT canonical order (never random)
  config::MatchingOptions matching;  // gates at step 0 + their curriculum (at_step)
  bool fn_coord_ce = false;
  config::LossOptions loss;          // the run's loss section with geo.weight = channel_b.geo_weight
  config::CoordOptions coord;        // the run's coord section with decode_mode = channel_b's
  std::array<double, coord::kNumTerms> term_weights{};  // of `loss`, matched geo x matched_geo_weight
  rollout::GenerationOptions generation;  // rollout.*; sampling rows seeded per (step, sample)
  int64_t max_length = 8192;         // data.max_length: prompt + y_in tokens
  bool async_producer = false;       // channel_b.producer: async (rollout_actor.h)
  int64_t version_window = 2;        // async: freshness window (rollout_queue.h)
  int64_t queue_limit = 32;          // async: items held per rank

  static ChannelBSettings from_config(const config::RunConfig& config, const tokenizer::Tokenizer& tok);
};

// One GT object as Channel-B sees it: rendered (FN injection) and matched (normalized box).
struct BGtObject {
  protocol::Object object;         // desc, kind, bins
  matching::MatchObject match;     // normalized geometry from the continuous c_gt
  std::array<double, 4> gt_box{};  // normalized bbox target for L_geo (bbox objects)
};
// A record's non-crowd objects in the GT canonical order `order` (sorted or as_is).
std::vector<BGtObject> b_gt_objects(const data::Record& record, data::ObjectOrder order);

// Everything B derives from one rollout (seed 7.2 B1-B3), for the loss and for inspection.
struct BTarget {
  protocol::ParseResult parsed;
  matching::Predictions predictions;  // the valid entries as matcher objects
  matching::MatchResult match;        // over predictions x gt (after the gates)
  config::MatchingOptions gates;      // the gates in force
  protocol::YIn y_in;                 // subsets set; gt_box filled for matched and FN objects
  std::vector<int> fn_gt;             // GT index of each injected FN object, in y_in order
  int64_t num_fn_dropped = 0;         // FN records left out to fit max_answer_tokens (b_overlength)
  int64_t num_prefix_dropped = 0;     // prefix entries left out for the same reason (after all FN)
};

// Builds the B target from the generated ids (the answer only; a trailing stop id is fine).
// Overlength rule: while y_in has more than `max_answer_tokens` ids, drop the last FN record; when
// no FN is left, drop the last complete prefix entry. The closing "]}" + <|im_end|> is never cut.
BTarget build_b_target(const std::vector<tokenizer::TokenId>& rollout_ids, const std::vector<BGtObject>& gt,
                       const tokenizer::Tokenizer& tok, const ChannelBSettings& settings,
                       const config::MatchingOptions& gates, int64_t max_answer_tokens);

// Summed over the micro-batches of a B step (and over ranks: every field adds).
struct ChannelBDiagnostics {
  int64_t num_rollouts = 0;
  int64_t num_parse_complete = 0;    // rollouts whose status is complete
  int64_t num_invalid_rollout = 0;   // no `{"objects": [` head: y_in = empty prefix + all GT as FN
  int64_t num_truncated = 0;         // rollouts that hit max_new_tokens
  int64_t num_valid_pred = 0;
  int64_t num_drop_invalid = 0;      // entries dropped by the strict parse, by reason below
  std::map<std::string, int64_t> drop_invalid_by_reason;
  int64_t num_matched = 0, num_fp = 0, num_fn = 0, num_gt = 0;
  int64_t num_overlength = 0;        // rollouts whose y_in had to drop records to fit data.max_length
  int64_t rollout_tokens = 0;        // generated tokens
  int64_t y_in_tokens = 0;
  double rollout_seconds = 0.0, build_seconds = 0.0, forward_backward_seconds = 0.0;

  ChannelBDiagnostics& operator+=(const ChannelBDiagnostics& o);
};

// One B micro-batch ready for the forward: the collated prompt + y_in batch (response view and
// layout with subsets), its rollout-context weights and counts (PreparedBatch), and what happened.
struct ChannelBBatch {
  PreparedBatch prepared;
  std::vector<BTarget> targets;
  ChannelBDiagnostics diagnostics;
};

// The pieces of prepare_channel_b, shared with the asynchronous actor (rollout_actor.h), which runs
// B0 on its rollout thread and B1-B3 on its preprocess thread.
// The picks' samples (prompt ids + images); a sample the dataset cannot build is skipped and counted.
struct BSamples {
  std::vector<data::Sample> samples;
  std::vector<BSampler::Pick> picks;  // of the samples kept, in order
};
BSamples load_b_samples(const data::DetectionDataset& dataset, const std::vector<BSampler::Pick>& picks,
                        data::ReasonCounts* skipped = nullptr);
// B0: one batched rollout of the samples' prompts with `model` in no-grad, sampling rows seeded by
// (rollout.seed, ver, dataset index): ver is the optimizer step of the weights (a sync B step: the
// step itself), so a sample draws the same tokens whichever producer, batch or rank rolls it out.
rollout::GenerationResult rollout_b_samples(model::Qwen3VL& model, const BSamples& samples, int64_t ver,
                                            const ChannelBSettings& settings);
// B1-B3 for one rollout `row` of `sample` (dataset record `record`) with the gates of step `ver`;
// adds this rollout's counts to `d` (not the times).
BTarget build_b_target_for_row(const rollout::GeneratedRow& row, const data::Record& record,
                               const data::Sample& sample, int64_t ver, const tokenizer::Tokenizer& tok,
                               const ChannelBSettings& settings, ChannelBDiagnostics& d);

// B0-B3 for `picks` at optimizer step `step` (0-based; sets the gate curriculum and the sampling
// seeds): builds the samples, rolls them out with `model` in eval/no-grad, builds y_in and the masks.
// A sample the dataset cannot build (unreadable image, ...) is skipped and counted in `skipped`.
ChannelBBatch prepare_channel_b(model::Qwen3VL& model, const data::DetectionDataset& dataset,
                                const std::vector<BSampler::Pick>& picks, int64_t step,
                                const ChannelBSettings& settings, data::ReasonCounts* skipped = nullptr);

// Rollout-context weights and counts for given samples (prompt ids + images) and targets: the
// part of prepare_channel_b after the rollout, exposed so tests can supply their own rollouts.
PreparedBatch prepare_b_forward(std::vector<data::Sample> samples, const std::vector<BTarget>& targets,
                                const ChannelBSettings& settings, tokenizer::TokenId pad_id);

// B4: one forward on the prepared batch: token CE (rollout weights) from the answer-row logits and
// L_geo over matched (kGeo*) and FN (kGeo*Fn) objects; FP / invalid objects excluded.
coord::LossTerms channel_b_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                      const ChannelBSettings& settings);

}  // namespace coordexp::train
