// Channel-B (train/channel_b_step.h) on the tiny random model: a B micro-batch (real rollout ->
// parse -> match -> y_in -> forward) runs end to end with finite gradients; with a hand-written
// rollout holding an FP object, changing the CE targets inside the FP span leaves the loss and
// every gradient bit-identical (FP-neutral), while changing a matched struct target does not; and
// the trainer runs stage2 with b_ratio 0.5 as A, B, A, B ..., logging the B diagnostics, and resumes
// bit-exactly from a mid-run checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <vector>

#include "coordexp/coord/masks.h"
#include "coordexp/data/dataset.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/train/channel_b_step.h"
#include "coordexp/train/step_router.h"
#include "coordexp/train/trainer.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "fixture.h"

namespace coordexp::train {
namespace {

using testing::Assets;

const testing::TinySetup& setup() { return testing::tiny_setup(); }

ChannelBSettings b_settings(int max_new_tokens = 24) {
  config::RunConfig c = testing::base_config("/tmp/unused");
  c.rollout.max_new_tokens = max_new_tokens;
  c.channel_b.geo_weight = 1.0;
  return ChannelBSettings::from_config(c, *setup().tok);
}

std::map<std::string, torch::Tensor> grads_after_backward(model::Qwen3VL& m, const PreparedBatch& pb,
                                                          const ChannelBSettings& s, double* loss) {
  for (auto& [k, p] : m.named_parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
  const coord::LossTerms terms = channel_b_loss_terms(m, pb, setup().ids, s);
  const torch::Tensor total = coord::total_loss(terms, pb.counts, s.term_weights);
  *loss = total.item<double>();
  total.backward();
  std::map<std::string, torch::Tensor> g;
  for (auto& [k, p] : m.named_parameters())
    if (p.grad().defined()) g[k] = p.grad().detach().clone();
  return g;
}

TEST(ChannelB, RealRolloutMicroBatchRunsEndToEndWithFiniteGradients) {
  model::Qwen3VL m = setup().model();
  const ChannelBSettings s = b_settings();
  const std::vector<BSampler::Pick> picks = {{0, 0}, {1, 0}, {2, 0}};
  ChannelBBatch cb = prepare_channel_b(m, *setup().dataset, picks, /*step=*/0, s);
  const ChannelBDiagnostics& d = cb.diagnostics;
  EXPECT_EQ(d.num_rollouts, 3);
  EXPECT_GT(d.rollout_tokens, 0);
  EXPECT_EQ(d.num_matched + d.num_fn, d.num_gt);  // every GT is matched or injected
  EXPECT_EQ(cb.prepared.batch.size(), 3);
  for (const BTarget& t : cb.targets) {
    EXPECT_EQ(t.y_in.ids.back(), setup().tok->im_end_id());
    // Whatever the random model wrote, every GT it did not match is inside y_in as an FN record.
    int64_t fn = 0;
    for (const auto& o : t.y_in.layout.objects) fn += o.subset == protocol::ObjectSubset::kFn ? 1 : 0;
    EXPECT_EQ(fn, static_cast<int64_t>(t.match.fn.size()));
    EXPECT_EQ(protocol::parse_text(t.y_in.text).status, protocol::RolloutStatus::kComplete) << t.y_in.text;
  }
  double loss = 0.0;
  const auto g = grads_after_backward(m, cb.prepared, s, &loss);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_GT(loss, 0.0);
  double norm = 0.0;
  for (const auto& [k, t] : g) {
    ASSERT_TRUE(torch::isfinite(t).all().item<bool>()) << k;
    norm += t.pow(2).sum().item<double>();
  }
  EXPECT_GT(norm, 0.0);
}

TEST(ChannelB, TargetsInsideFpSpansDoNotReachTheLossOrTheGradients) {
  const testing::TinySetup& su = setup();
  const ChannelBSettings s = b_settings();
  // Sample 0's GT, and a rollout with a far-away "sofa" (FP) before a copy of the first GT object
  // (matched), so the FP span sits between supervised tokens.
  data::Sample sample = su.dataset->get(0, 0);
  const std::vector<BGtObject> gt = b_gt_objects(su.dataset->record(0), s.fn_order);
  ASSERT_FALSE(gt.empty());
  std::vector<protocol::Object> rolled = {{"sofa", protocol::GeometryKind::kBbox, {900, 900, 990, 990}}, gt[0].object};
  const protocol::AnswerText text = protocol::render_text(rolled, s.field_order);
  std::vector<tokenizer::TokenId> ids = su.tok->encode(text.text);
  ids.push_back(su.tok->im_end_id());
  const BTarget t = build_b_target(ids, gt, *su.tok, s, s.matching, 4096);
  ASSERT_EQ(t.y_in.layout.objects.size(), gt.size() + 1);
  ASSERT_EQ(t.y_in.layout.objects[0].subset, protocol::ObjectSubset::kFp);
  ASSERT_EQ(t.y_in.layout.objects[1].subset, protocol::ObjectSubset::kMatched);

  const PreparedBatch base = prepare_b_forward({sample}, {t}, s, su.dataset->pad_id());
  model::Qwen3VL m = su.model();
  double loss_base = 0.0, loss_fp = 0.0, loss_matched = 0.0;
  const auto g_base = grads_after_backward(m, base, s, &loss_base);

  // Every CE target inside the FP record replaced by another id.
  PreparedBatch fp = base;
  fp.batch.response_targets = base.batch.response_targets.clone();
  const protocol::TokenRange r = t.y_in.layout.objects[0].tokens;
  for (int32_t i = r.begin; i < r.end; ++i) fp.batch.response_targets[i] = 17;
  const auto g_fp = grads_after_backward(m, fp, s, &loss_fp);
  EXPECT_EQ(loss_fp, loss_base);
  ASSERT_EQ(g_fp.size(), g_base.size());
  for (const auto& [k, v] : g_base) EXPECT_TRUE(torch::equal(v, g_fp.at(k))) << k;

  // Control: the same change on a supervised struct token of the matched record moves the loss.
  PreparedBatch matched = base;
  matched.batch.response_targets = base.batch.response_targets.clone();
  const protocol::TokenRange rm = t.y_in.layout.objects[1].tokens;
  matched.batch.response_targets[rm.end - 1] = 17;
  grads_after_backward(m, matched, s, &loss_matched);
  EXPECT_NE(loss_matched, loss_base);
}

TEST(ChannelB, TrainerAlternatesAAndBAndResumesBitExactly) {
  const std::string dir_a = testing::fresh_dir("channel_b_stage2_a");
  config::RunConfig c = testing::base_config(dir_a);
  c.train.stage = "stage2";
  c.train.max_steps = 4;
  c.train.micro_batch_size = 2;
  c.stage2.b_ratio = 0.5;
  c.rollout.max_new_tokens = 16;
  c.loss.geo.weight = 1.0;
  c.checkpoint.every = 2;
  {
    Trainer t(c);
    t.run();
  }
  const auto recs = testing::metrics_with(dir_a, "step_kind");
  ASSERT_EQ(recs.size(), 4u);
  const std::vector<std::string> kinds = {"A", "B", "A", "B"};  // floor((s+1)/2) > floor(s/2) for odd s
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(recs[i]["step_kind"], kinds[i]) << recs[i];
    EXPECT_TRUE(std::isfinite(recs[i]["loss"].get<double>()));
    if (kinds[i] == "B") {
      EXPECT_EQ(recs[i]["b_num_rollouts"], 2);
      for (const char* k : {"b_parse_success_rate", "b_num_valid_pred", "b_num_matched", "b_num_fp", "b_num_fn",
                            "b_invalid_rollout", "b_rollout_len_mean", "b_truncation_rate", "b_rollout_tokens_per_s",
                            "b_time_rollout_s", "b_time_build_s", "b_time_forward_backward_s", "b_gate_min_iou",
                            "b_ratio_realized"})
        EXPECT_TRUE(recs[i].contains(k)) << k << " in " << recs[i];
      EXPECT_EQ(recs[i]["b_num_matched"].get<int64_t>() + recs[i]["b_num_fn"].get<int64_t>(),
                recs[i]["b_num_gt"].get<int64_t>());
    }
  }
  // Resume from checkpoint-2 (after A, B): steps 3 (A) and 4 (B, new rollouts) bit-exact.
  const std::string dir_b = testing::fresh_dir("channel_b_stage2_b");
  std::filesystem::create_directories(dir_b);
  std::filesystem::copy(std::filesystem::path(dir_a) / "checkpoint-2", std::filesystem::path(dir_b) / "checkpoint-2",
                        std::filesystem::copy_options::recursive);
  auto cb = c;
  cb.train.output_dir = dir_b;
  cb.checkpoint.resume = "auto";
  Trainer t(cb);
  EXPECT_EQ(t.step(), 2);
  t.run();
  const auto recs_b = testing::metrics_with(dir_b, "step_kind");
  ASSERT_EQ(recs_b.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(recs_b[i]["step_kind"], kinds[i + 2]);
    EXPECT_EQ(recs_b[i]["loss"].get<double>(), recs[i + 2]["loss"].get<double>()) << "step " << i + 3;
    if (kinds[i + 2] == "B") {
      EXPECT_EQ(recs_b[i]["b_rollout_len_mean"], recs[i + 2]["b_rollout_len_mean"]);
    }
  }
}


// The parameters of a saved checkpoint's model, by key.
std::map<std::string, torch::Tensor> checkpoint_params(const std::string& dir) {
  return model::Qwen3VL::load(dir).named_parameters();
}

config::RunConfig async_config(const std::string& dir) {
  config::RunConfig c = testing::base_config(dir);
  c.train.stage = "stage2";
  c.train.micro_batch_size = 2;
  c.rollout.max_new_tokens = 16;
  c.loss.geo.weight = 1.0;
  c.channel_b.producer = "async";
  return c;
}

// With version_window 0 and a refresh after every step, the asynchronous actor must roll out exactly
// what the synchronous path rolls out (same samples, same weights, same seeds), so the two runs
// train bit-identically: the actor/queue/preprocess path changes where work happens, not what.
TEST(ChannelB, AsyncProducerWithWindowZeroTrainsOnTheSameItemsAsSync) {
  const std::string dir_sync = testing::fresh_dir("channel_b_sync_ref");
  config::RunConfig c = async_config(dir_sync);
  c.channel_b.producer = "sync";
  c.train.max_steps = 6;
  c.stage2.b_ratio = 0.5;
  {
    Trainer t(c);
    t.run();
  }
  const std::string dir_async = testing::fresh_dir("channel_b_async_w0");
  config::RunConfig ca = c;
  ca.train.output_dir = dir_async;
  ca.channel_b.producer = "async";
  ca.channel_b.version_window = 0;
  ca.actor.sync_every = 1;
  {
    Trainer t(ca);
    t.run();
  }
  const auto rs = testing::metrics_with(dir_sync, "step_kind");
  const auto ra = testing::metrics_with(dir_async, "step_kind");
  ASSERT_EQ(rs.size(), 6u);
  ASSERT_EQ(ra.size(), 6u);
  int num_b = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(ra[i]["step_kind"], rs[i]["step_kind"]);
    EXPECT_EQ(ra[i]["loss"].get<double>(), rs[i]["loss"].get<double>()) << "step " << i + 1;
    if (rs[i]["step_kind"] == "B") {
      ++num_b;
      for (const char* k : {"b_num_rollouts", "b_num_matched", "b_num_fp", "b_num_fn", "b_num_valid_pred",
                            "b_rollout_len_mean", "b_y_in_len_mean"})
        EXPECT_EQ(ra[i][k], rs[i][k]) << k << " at step " << i + 1;
      EXPECT_TRUE(ra[i].contains("b_queue_wait_s")) << ra[i];
      EXPECT_EQ(ra[i]["queue_dropped_overflow"], 0);
    }
    for (const char* k : {"queue_raw", "queue_ready", "queue_ready_fresh", "queue_lag_mean", "queue_lag_max",
                          "queue_dropped_stale", "actor_rollouts", "actor_rollouts_per_s", "actor_snapshot_lag"})
      EXPECT_TRUE(ra[i].contains(k)) << k << " in " << ra[i];
  }
  EXPECT_EQ(num_b, 3);
  const auto ps = checkpoint_params(dir_sync + "/checkpoint-6");
  const auto pa = checkpoint_params(dir_async + "/checkpoint-6");
  ASSERT_EQ(ps.size(), pa.size());
  for (const auto& [k, t] : ps) EXPECT_TRUE(torch::equal(t, pa.at(k))) << k;
}

// The queue schedule: B only when the rollouts are ready and the realized ratio is below b_ratio;
// a resumed run rolls the queued samples out again and continues.
TEST(ChannelB, QueueScheduleRoutesByReadyRolloutsAndResumes) {
  const std::string dir = testing::fresh_dir("channel_b_queue");
  config::RunConfig c = async_config(dir);
  c.stage2.schedule = "queue";
  c.stage2.b_ratio = 0.5;
  c.channel_b.version_window = 2;
  c.actor.sync_every = 1;
  c.train.max_steps = 10;
  c.train.stop_at_step = 6;
  c.checkpoint.every = 3;
  c.checkpoint.resume = "auto";
  {
    Trainer t(c);
    const TrainResult r = t.run();
    EXPECT_TRUE(r.stopped_at_step);
  }
  const auto first = testing::metrics_with(dir, "step_kind");
  ASSERT_EQ(first.size(), 6u);
  const auto state = nlohmann::json::parse(util::read_file(dir + "/checkpoint-6/trainer_state/state.json"));
  ASSERT_TRUE(state.contains("b_producer")) << state;
  ASSERT_EQ(state["b_producer"]["ranks"].size(), 1u);
  c.train.stop_at_step = 0;
  {
    Trainer t(c);
    EXPECT_EQ(t.step(), 6);
    t.run();
  }
  const auto recs = testing::metrics_with(dir, "step_kind");
  ASSERT_EQ(recs.size(), 10u);
  int64_t num_b = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    const bool b = recs[i]["step_kind"] == "B";
    if (b) {
      // B needs the whole update ready (2 rollouts) and the ratio so far below 0.5.
      EXPECT_TRUE(queue_wants_b(static_cast<int64_t>(i), num_b, 0.5)) << "step " << i + 1;
      EXPECT_EQ(recs[i]["b_num_rollouts"], 2);
      ++num_b;
    }
    EXPECT_EQ(recs[i]["num_b_steps"], num_b);
    EXPECT_LE(recs[i]["queue_lag_max"].get<int64_t>(), 2) << recs[i];
  }
  EXPECT_GE(num_b, 1) << "the actor produced no update's worth of rollouts in 10 steps";
}

TEST(ChannelB, QueueScheduleConfigErrorsNameBothKeys) {
  config::RunConfig c = async_config(testing::fresh_dir("channel_b_queue_err"));
  c.stage2.schedule = "queue";
  c.channel_b.producer = "sync";
  try {
    Trainer t(c);
    FAIL() << "queue with a sync producer was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.where()).find("stage2.schedule"), std::string::npos) << e.where();
    EXPECT_NE(std::string(e.where()).find("channel_b.producer"), std::string::npos) << e.where();
  }
  c.channel_b.producer = "async";
  c.channel_b.version_window = 1;
  c.actor.sync_every = 3;
  try {
    Trainer t(c);
    FAIL() << "version_window < sync_every was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.where()).find("actor.sync_every"), std::string::npos) << e.where();
  }
  c.actor.sync_every = 1;
  c.channel_b.queue_limit = 1;  // one update needs 2
  EXPECT_THROW(Trainer{c}, ConfigError);
}

TEST(ChannelB, InspectBPrintsTheTargetAsJson) {
  const Assets& a = Assets::get();
  const testing::TinySetup& su = setup();
  const std::vector<BGtObject> gt = b_gt_objects(su.dataset->record(0), data::ObjectOrder::kSorted);
  ASSERT_FALSE(gt.empty());
  // The rollout: the first GT object exactly, then an FP far away.
  std::vector<protocol::Object> rolled = {gt[0].object, {"sofa", protocol::GeometryKind::kBbox, {900, 900, 990, 990}}};
  const std::string text_file = testing::fresh_dir("inspect_b") + ".txt";
  {
    std::ofstream(text_file) << protocol::render_text(rolled, protocol::FieldOrder::kDescFirst).text << "\n";
  }
  const auto r = testing::run_binary("--log-level warn inspect-b --tokenizer " + a.model_dir + " --gt " + a.train_jsonl +
                                     " --line 1 --rollout-text " + text_file + " --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_FALSE(j["invalid_rollout"].get<bool>());
  ASSERT_EQ(j["objects"].size(), gt.size() + 1);
  EXPECT_EQ(j["objects"][0]["subset"], "matched");
  EXPECT_EQ(j["objects"][0]["gt_index"], 0);
  EXPECT_EQ(j["objects"][1]["subset"], "fp");
  EXPECT_TRUE(j["objects"][1]["gt_index"].is_null());
  for (size_t i = 2; i < j["objects"].size(); ++i) EXPECT_EQ(j["objects"][i]["source"], "fn");
  EXPECT_EQ(j["num_matched"], 1);
  EXPECT_EQ(j["num_fp"], 1);
  EXPECT_EQ(j["num_fn"].get<size_t>(), gt.size() - 1);
  // Token rows agree with the objects: nothing of the FP record is weighted, the last token is eos.
  const auto& toks = j["tokens"];
  ASSERT_FALSE(toks.empty());
  EXPECT_EQ(toks.back()["type"], "eos");
  EXPECT_EQ(toks.back()["weight"], 1.0);
  std::string rebuilt;
  for (const auto& t : toks) {
    if (t["object"] == 1) {
      EXPECT_EQ(t["weight"], 0.0) << t;
    }
    if (t["type"] != "eos") rebuilt += t["piece"].get<std::string>();
  }
  EXPECT_EQ(rebuilt, j["y_in"].get<std::string>());
  // Garbage is an invalid rollout: every GT object injected.
  { std::ofstream(text_file) << "no json here"; }
  const auto g = testing::run_binary("--log-level warn inspect-b --tokenizer " + a.model_dir + " --gt " + a.train_jsonl +
                                     " --rollout-text " + text_file + " --json");
  ASSERT_EQ(g.code, 0) << g.output;
  const auto jg = nlohmann::json::parse(g.output);
  EXPECT_TRUE(jg["invalid_rollout"].get<bool>());
  EXPECT_EQ(jg["num_fn"].get<size_t>(), gt.size());
  // Neither or both sources: a usage error.
  EXPECT_EQ(testing::run_binary("inspect-b --tokenizer " + a.model_dir + " --gt " + a.train_jsonl).code, 2);
}

}  // namespace
}  // namespace coordexp::train
