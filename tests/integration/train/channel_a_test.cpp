// Channel-A (train/channel_a_step.h) on the tiny random model and synthetic batches: one forward
// equals Stage-1, init=gt is the seed's one-iteration delay, padding/batching does not move the coord
// slots, ST is hard forward, the self-context really changes the coord logits, unroll is the exact
// gradient of the soft loop (float64 central differences) while em_detach is not, prefix reuse gives
// the full recompute's losses and gradients, and the trainer runs stage2 with Channel-A steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include "coordexp/data/dataset.h"
#include "coordexp/data/loader.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/train/channel_a_step.h"
#include "coordexp/train/trainer.h"
#include "fixture.h"

namespace coordexp::train {
namespace {

using testing::Assets;

// Geometry and a coord-distribution term on, so the self-context forwards feed the loss.
config::LossOptions geo_loss() {
  config::LossOptions l;
  l.geo.weight = 1.0;
  l.coord_dist.mode = "dfl";
  l.coord_dist.weight = 0.5;
  return l;
}

const testing::TinySetup& setup() { return testing::tiny_setup(); }

ChannelASettings settings(int n, const std::string& mode = "st", const std::string& grad = "unroll",
                          const std::string& init = "ctx") {
  config::ChannelAOptions o;
  o.n_softctx_iter = n;
  o.coord_ctx_embed_mode = mode;
  o.softctx_grad_mode = grad;
  o.init = init;
  return ChannelASettings::from_options(o);
}

// Every active term's sum, in term order (inactive terms are NaN so activity must match too).
std::vector<double> sums_of(const coord::LossTerms& t) {
  std::vector<double> out;
  const auto s = t.detached_sums();
  const auto a = t.active();
  for (int i = 0; i < coord::kNumTerms; ++i) out.push_back(a[i] ? s[i] : std::nan(""));
  return out;
}

void expect_same_sums(const coord::LossTerms& a, const coord::LossTerms& b, double tol, const std::string& what) {
  const auto x = sums_of(a), y = sums_of(b);
  for (int i = 0; i < coord::kNumTerms; ++i) {
    if (std::isnan(x[i]) || std::isnan(y[i])) {
      EXPECT_EQ(std::isnan(x[i]), std::isnan(y[i])) << what << " term " << i;
      continue;
    }
    EXPECT_NEAR(x[i], y[i], tol * (1.0 + std::abs(y[i]))) << what << " term " << i;
  }
}

// A batch with at least one bbox object (the synthetic data has 1-2 per image).
PreparedBatch first_batch_with_objects(int64_t n, const config::LossOptions& loss) {
  for (int64_t i = 0; i + n <= setup().dataset->size(); ++i) {
    PreparedBatch pb = setup().batch(i, n, loss);
    if (!pb.batch.response_layout.objects.empty()) return pb;
  }
  throw std::runtime_error("no sample with objects");
}

TEST(ChannelA, OneForwardIsStage1AndInitGtDelaysByOneIteration) {
  const auto loss = geo_loss();
  auto model = setup().model();
  const PreparedBatch pb = first_batch_with_objects(2, loss);
  const config::CoordOptions coord;
  torch::NoGradGuard no_grad;
  const auto stage1 = stage1_loss_terms(model, pb, setup().ids, coord, loss);
  ChannelADiagnostics d1;
  const auto a1 = channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(1), &d1);
  expect_same_sums(a1, stage1, 0.0, "n=1 vs stage1");
  EXPECT_EQ(d1.decoder_forwards, 1);
  EXPECT_EQ(d1.num_slots, 0);
  // init=gt: forward 1 would see GT coords, so n=2 is n=1 and n=3 is init=ctx's n=2.
  expect_same_sums(channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(2, "st", "unroll", "gt")), stage1,
                   0.0, "gt n=2 vs stage1");
  expect_same_sums(channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(3, "st", "unroll", "gt")),
                   channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(2)), 0.0, "gt n=3 vs ctx n=2");
}

TEST(ChannelA, SelfContextChangesOnlyGeometryAndStIsHardForward) {
  const auto loss = geo_loss();
  auto model = setup().model();
  const PreparedBatch pb = first_batch_with_objects(2, loss);
  const config::CoordOptions coord;
  torch::NoGradGuard no_grad;
  const auto tf = channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(1));
  ChannelADiagnostics d;
  const auto st = channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(2, "st"), &d);
  const auto hard = channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(2, "hard"));
  const auto soft = channel_a_loss_terms(model, pb, setup().ids, coord, loss, settings(2, "soft"));
  // CE terms come from forward 0 in every mode.
  for (auto term : {coord::Term::kStructCe, coord::Term::kDescCe, coord::Term::kCoordTokenCe})
    EXPECT_EQ(st[term].sum.item<double>(), tf[term].sum.item<double>());
  // ST = hard row forward: identical values; soft embeddings are a different input.
  expect_same_sums(st, hard, 0.0, "st vs hard");
  EXPECT_NE(st[coord::Term::kGeoHuber].sum.item<double>(), soft[coord::Term::kGeoHuber].sum.item<double>());
  // The coord slots' context really changed the last forward's coord logits.
  EXPECT_NE(st[coord::Term::kGeoHuber].sum.item<double>(), tf[coord::Term::kGeoHuber].sum.item<double>());
  int64_t slots = 0;
  for (const auto& o : pb.batch.response_layout.objects) slots += static_cast<int64_t>(o.coord_positions.size());
  EXPECT_EQ(d.num_slots, slots);
  EXPECT_EQ(d.decoder_forwards, 2);
  EXPECT_GT(d.abs_shift_sum, 0.0);
  // Counts are Stage-1's: one per bbox object for L_geo.
  EXPECT_EQ(st[coord::Term::kGeoHuber].count, pb.counts[static_cast<int>(coord::Term::kGeoHuber)]);
}

TEST(ChannelA, BatchingAndPaddingGiveThePerSampleTerms) {
  const auto loss = geo_loss();
  auto model = setup().model();
  const config::CoordOptions coord;
  torch::NoGradGuard no_grad;
  const int64_t n = std::min<int64_t>(4, setup().dataset->size());
  const PreparedBatch together = setup().batch(0, n, loss);
  ASSERT_GT(together.batch.attention_mask.eq(0).sum().item<int64_t>(), 0) << "want padding in the batch";
  coord::LossTerms separate;
  for (int64_t i = 0; i < n; ++i)
    separate += channel_a_loss_terms(model, setup().batch(i, 1, loss), setup().ids, coord, loss, settings(3));
  expect_same_sums(channel_a_loss_terms(model, together, setup().ids, coord, loss, settings(3)), separate, 2e-4,
                   "batched vs per-sample");
}

// Directional derivative along a random direction v of all parameters: autograd (g . v) against
// central differences of the float64 loss. The soft/exp loop is smooth, so unroll must match;
// em_detach drops the paths through the context distribution and must not.
TEST(ChannelA, UnrollIsTheExactGradientOfTheSoftLoopInFloat64) {
  auto loss = geo_loss();
  loss.coord_dist.mode = "w1";  // smooth in the logits (DFL is too, W1 adds a second path)
  loss.geo.iou_kind = "giou";   // CIoU's alpha is a constant in its backward (torchvision), not a derivative
  // Only the self-context terms: the loop's share of the gradient is then not drowned by the CE's.
  loss.struct_weight = loss.desc_weight = loss.eos_weight = 0.0;
  loss.coord_ce.weight = 0.0;
  auto model = setup().model(torch::kDouble);
  const PreparedBatch pb = first_batch_with_objects(1, loss);
  const config::CoordOptions coord;  // exp decode
  auto params = model.named_parameters();
  std::vector<torch::Tensor> dirs;
  auto gen = at::detail::createCPUGenerator(11);
  for (auto& [k, p] : params) dirs.push_back(torch::randn(p.sizes(), gen, torch::kDouble));

  auto total = [&](const ChannelASettings& s) {
    const auto terms = channel_a_loss_terms(model, pb, setup().ids, coord, loss, s);
    return coord::total_loss(terms, terms.counts(), loss);
  };
  auto directional = [&](const ChannelASettings& s) {
    for (auto& [k, p] : params) p.mutable_grad() = torch::Tensor();
    total(s).backward();
    double dot = 0.0;
    size_t i = 0;
    for (auto& [k, p] : params) {
      if (p.grad().defined()) dot += (p.grad() * dirs[i]).sum().item<double>();
      ++i;
    }
    return dot;
  };
  auto shifted_loss = [&](const ChannelASettings& s, double eps) {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& [k, p] : params) p.add_(dirs[i++], eps);
    const double v = total(s).item<double>();
    i = 0;
    for (auto& [k, p] : params) p.sub_(dirs[i++], eps);
    return v;
  };
  const ChannelASettings unroll = settings(3, "soft", "unroll");
  const double eps = 1e-6;
  const double fd = (shifted_loss(unroll, eps) - shifted_loss(unroll, -eps)) / (2 * eps);
  const double g_unroll = directional(unroll);
  const double g_detach = directional(settings(3, "soft", "em_detach"));
  EXPECT_NEAR(g_unroll, fd, 1e-6 * std::abs(fd) + 1e-9) << "unroll " << g_unroll << " fd " << fd;
  EXPECT_GT(std::abs(g_detach - fd), 100.0 * std::abs(g_unroll - fd) + 1e-9)
      << "em_detach " << g_detach << " unroll " << g_unroll << " fd " << fd;
  // Same forward value whatever the gradient mode.
  torch::NoGradGuard no_grad;
  EXPECT_EQ(total(unroll).item<double>(), total(settings(3, "soft", "em_detach")).item<double>());
}

// Per row of the batch: the sequence index of its first coord-predicting row (-1 without objects).
std::vector<int64_t> first_coord_rows(const PreparedBatch& pb) {
  const data::Batch& b = pb.batch;
  const int64_t T = b.input_ids.size(1);
  std::vector<int64_t> first(b.input_ids.size(0), -1);
  for (const auto& o : b.response_layout.objects)
    for (int64_t pos : o.coord_positions) {
      const int64_t flat = b.response_logit_rows[pos].item<int64_t>(), row = flat / T, t = flat % T;
      if (first[row] < 0 || t < first[row]) first[row] = t;
    }
  return first;
}

// Two samples whose first coord slots sit at different sequence indices, so the common prefix is
// shorter than row 1's own: the synthetic set's descs ("red circle", "blue rectangle", ...) all
// tokenize to the same length, so this writes two records over its images with first descs of
// different token lengths (and two objects each, so later slots sit after overridden ones).
PreparedBatch batch_with_different_first_coords(const config::LossOptions& loss) {
  const std::filesystem::path dir = std::filesystem::path(testing::Assets::get().train_jsonl).parent_path();
  const std::string jsonl = (dir / "prefix_reuse.jsonl").string();
  std::ofstream(jsonl)
      << R"({"images": ["images/train_0.png"], "width": 64, "height": 64, "objects": [)"
      << R"({"desc": "red circle", "bbox_2d": [4, 6, 30, 28]}, {"desc": "blue rectangle", "bbox_2d": [34, 30, 60, 58]}]})"
      << "\n"
      << R"({"images": ["images/train_1.png"], "width": 64, "height": 64, "objects": [)"
      << R"({"desc": "large dark purple rectangle with rounded corners", "bbox_2d": [2, 3, 40, 35]}, )"
      << R"({"desc": "small yellow circle near the edge", "bbox_2d": [44, 40, 62, 61]}]})"
      << "\n";
  config::PreprocessOptions pre;
  pre.min_pixels = pre.max_pixels = 4096;
  auto preprocessor = std::make_shared<const model::ImagePreprocessor>(
      model::ImagePreprocessor::from_model_dir(testing::Assets::get().model_dir, pre));
  config::DataOptions d;
  d.num_workers = 0;
  const data::DetectionDataset ds(std::vector<std::string>{jsonl}, data::DatasetOptions::from_config(d, {}),
                                  setup().tok, preprocessor);
  std::vector<data::Sample> samples{ds.get(0, 0), ds.get(1, 0)};
  PreparedBatch pb = prepare_batch(data::collate(std::move(samples), ds.pad_id()), loss);
  const auto f = first_coord_rows(pb);
  if (f[0] < 0 || f[1] < 0 || f[0] == f[1])
    throw std::runtime_error("the two records' first coord rows do not differ: " + std::to_string(f[0]) + ", " +
                             std::to_string(f[1]));
  return pb;
}

// Prefix reuse is exact: the self-context forwards over forward 0's prefix keys/values give the
// full recompute's loss terms and the gradients of every parameter (float64, <= 1e-10 relative per
// parameter) for unroll and em_detach, N = 2 and 3, ST and soft context embeddings, on a batch whose
// rows' first coord slots differ, with eager attention and the chunked head, then with the fused sdpa
// kernel and full answer-row logits; with text-layer gradient checkpointing the step falls back to full
// forwards (nothing reused) with the same gradients. (Checked by hand: detaching the prefix keys in the
// tail forwards gives a 1.3% relative gradient error in every case, at the DeepStack merger's norm.)
TEST(ChannelA, PrefixReuseGivesTheFullRecomputeLossesAndGradients) {
  auto loss = geo_loss();  // CE from forward 0 (chunked head, loss.head_chunk_rows 256), L_geo + DFL from the last
  const PreparedBatch pb = batch_with_different_first_coords(loss);
  const int64_t T = pb.batch.input_ids.size(1);
  const auto first = first_coord_rows(pb);
  const int64_t P = std::min(first[0], first[1]);
  const config::CoordOptions coord;
  auto model = setup().model(torch::kDouble);
  auto params = model.named_parameters();

  struct Result {
    coord::LossTerms terms;
    double total = 0.0;
    std::map<std::string, torch::Tensor> grads;
    ChannelADiagnostics d;
  };
  auto run = [&](ChannelASettings s, bool reuse, bool checkpoint) {
    s.prefix_reuse = reuse;
    model.set_gradient_checkpointing(checkpoint, false);
    for (auto& [k, p] : params) p.mutable_grad() = torch::Tensor();
    Result r;
    r.terms = channel_a_loss_terms(model, pb, setup().ids, coord, loss, s, &r.d);
    const torch::Tensor total = coord::total_loss(r.terms, r.terms.counts(), loss);
    total.backward();
    r.total = total.item<double>();
    for (auto& [k, p] : params)
      if (p.grad().defined()) r.grads[k] = p.grad().clone();
    model.set_gradient_checkpointing(false, false);
    return r;
  };
  auto expect_same = [&](const Result& got, const Result& want, const std::string& what) {
    expect_same_sums(got.terms, want.terms, 1e-12, what);
    EXPECT_NEAR(got.total, want.total, 1e-12 * std::abs(want.total)) << what;
    ASSERT_EQ(got.grads.size(), want.grads.size()) << what;
    ASSERT_EQ(got.grads.size(), params.size()) << what << ": every parameter gets a gradient";
    double worst = 0.0;
    std::string worst_key;
    for (const auto& [k, g] : want.grads) {
      const double scale = g.abs().max().item<double>();
      const double diff = (got.grads.at(k) - g).abs().max().item<double>();
      if (diff > 1e-10 * scale && diff / scale > worst) worst = diff / scale, worst_key = k;
    }
    EXPECT_EQ(worst_key, "") << what << ": relative gradient error " << worst << " at " << worst_key;
  };

  for (const std::string grad : {"unroll", "em_detach"})
    for (int n : {2, 3})
      for (const std::string mode : {"st", "soft"}) {
        const std::string what = grad + " N=" + std::to_string(n) + " " + mode;
        const ChannelASettings s = settings(n, mode, grad);
        const Result full = run(s, false, false), reused = run(s, true, false);
        EXPECT_EQ(full.d.reused_positions, 0) << what;
        EXPECT_EQ(reused.d.reused_positions, (n - 1) * 2 * P) << what;
        EXPECT_EQ(reused.d.computed_positions, (n - 1) * 2 * (T - P)) << what;
        expect_same(reused, full, what);
      }
  // Checkpointed text layers keep no graph for the prefix: the full forwards run, same gradients.
  const ChannelASettings s = settings(3, "soft", "unroll");
  const Result full = run(s, false, false), checkpointed = run(s, true, true);
  EXPECT_EQ(checkpointed.d.reused_positions, 0);
  EXPECT_EQ(checkpointed.d.computed_positions, 2 * 2 * T);
  expect_same(checkpointed, full, "gradient checkpointing");
  // The fused attention kernel (model.attn_implementation: sdpa) and forward 0 with full logits at
  // the answer rows (loss.head_chunk_rows 0) instead of the chunked head.
  model::ModelRuntime rt;
  rt.param_dtype = torch::kDouble;
  rt.attention = model::AttentionKind::kSdpa;
  model = model::Qwen3VL::load(testing::Assets::get().model_dir, rt);
  params = model.named_parameters();
  loss.head_chunk_rows = 0;
  for (const std::string grad : {"unroll", "em_detach"}) {
    const ChannelASettings s2 = settings(3, "st", grad);
    const Result full2 = run(s2, false, false), reused2 = run(s2, true, false);
    EXPECT_EQ(reused2.d.reused_positions, 2 * 2 * P);
    expect_same(reused2, full2, "sdpa, unchunked head, " + grad + " N=3 st");
  }
}

TEST(ChannelA, TrainerRunsStage2WithChannelASteps) {
  const std::string out = testing::fresh_dir("channel_a_stage2");
  config::RunConfig c = testing::base_config(out);
  c.train.stage = "stage2";
  c.train.max_steps = 12;
  c.train.micro_batch_size = 2;
  c.data.shuffle = false;
  c.loss = geo_loss();
  c.optim.lr = 3e-3;
  const TrainResult r = Trainer(c).run();
  EXPECT_EQ(r.start_step + r.steps_done, 12);
  const auto recs = testing::metrics_with(out, "step_kind");
  ASSERT_EQ(recs.size(), 12u);
  for (const auto& j : recs) {
    EXPECT_EQ(j["step_kind"], "A");
    EXPECT_EQ(j["a_decoder_forwards"], 2);  // one micro-batch, n_softctx_iter = 2
    EXPECT_TRUE(j.contains("loss_geo_huber") && j.contains("loss_geo_ciou") && j.contains("loss_coord_dist_dfl")) << j;
    EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
    // The total is the registry's weighted sum of the logged terms (lambda_geo 1, DFL weight 0.5).
    const double sum = j["loss_struct_ce"].get<double>() + j["loss_desc_ce"].get<double>() +
                       j["loss_coord_token_ce"].get<double>() + j["loss_geo_huber"].get<double>() +
                       j["loss_geo_ciou"].get<double>() + 0.5 * j["loss_coord_dist_dfl"].get<double>();
    EXPECT_NEAR(j["loss"].get<double>(), sum, 1e-9 * sum) << j;
    EXPECT_GT(j["num_loss_struct_ce"].get<int64_t>(), 0);
    EXPECT_LT(j["num_loss_struct_ce"].get<int64_t>(), j["num_tokens"].get<int64_t>()) << j;
    EXPECT_GE(j["a_ctx_argmax_changed"].get<double>(), 0.0);
    // channel_a.prefix_reuse is on by default: forward 1 takes the prompt/image/first-desc positions
    // from forward 0 and computes the rest.
    EXPECT_GT(j["a_reused_positions"].get<int64_t>(), 0) << j;
    EXPECT_GT(j["a_computed_positions"].get<int64_t>(), 0) << j;
  }
  // Off: the same batches with full forwards (every position computed, none reused) and the same
  // losses up to float32 rounding.
  const std::string out_full = testing::fresh_dir("channel_a_stage2_full");
  c.train.output_dir = out_full;
  c.channel_a.prefix_reuse = false;
  Trainer(c).run();
  const auto full = testing::metrics_with(out_full, "step_kind");
  ASSERT_EQ(full.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(full[i]["a_reused_positions"], 0);
    EXPECT_EQ(full[i]["a_computed_positions"].get<int64_t>(),
              recs[i]["a_reused_positions"].get<int64_t>() + recs[i]["a_computed_positions"].get<int64_t>());
    EXPECT_NEAR(full[i]["loss"].get<double>(), recs[i]["loss"].get<double>(), 1e-4 * recs[i]["loss"].get<double>())
        << "step " << i + 1;
  }
}

}  // namespace
}  // namespace coordexp::train
