// generate()'s per-token statistics and decoding features on the tiny fixture model, each against
// an independent computation over teacher-forced full forwards (no KV cache):
// raw_logprobs equal log_softmax of a forward over prompt + generated ids within 1e-4 (the
// rollout/forward agreement), logprobs equal the chosen-from distribution; the repetition penalty
// (HF rule, prompt ids included) equals a scalar brute force; finished rows leave the batch
// (fewer row-steps, same outputs as alone); KvCache::select_rows keeps/reorders/duplicates rows;
// a token constraint is obeyed in greedy, sampled and beam decoding; coord logits are kept at coord
// steps only; beam search equals a reference beam search over full forwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "coordexp/config/sections/infer.h"
#include "coordexp/util/error.h"
#include "tiny_rows.h"

namespace cm = coordexp::model;
namespace cr = coordexp::rollout;
using namespace coordexp::rollout::testing;

namespace {

cr::GenerationOptions sampled(int64_t max_new, uint64_t seed, double temperature = 1.5, int64_t top_k = 0,
                              double top_p = 1.0) {
  cr::GenerationOptions o;
  o.mode = cr::DecodingMode::kSample;
  o.sampling = {temperature, top_k, top_p};
  o.max_new_tokens = max_new;
  o.seed = seed;
  return o;
}

// log_softmax(logits_V)[id] in float64.
double log_prob(const torch::Tensor& logits_V, int64_t id) {
  return torch::log_softmax(logits_V.to(torch::kDouble), 0)[id].item<double>();
}

// HF's rule written out per id: logit < 0 -> logit * p, else logit / p, for each distinct id seen.
torch::Tensor penalize(torch::Tensor logits_V, const std::vector<int64_t>& seen, double p) {
  logits_V = logits_V.to(torch::kDouble).clone();
  auto* v = logits_V.data_ptr<double>();
  for (int64_t id : std::set<int64_t>(seen.begin(), seen.end())) v[id] = v[id] < 0 ? v[id] * p : v[id] / p;
  return logits_V;
}

// Allows only ids in [lo, lo + width) on even steps and [hi, hi + width) on odd ones, plus `always`.
class AlternatingRanges : public cr::RowConstraint {
 public:
  AlternatingRanges(int64_t lo, int64_t hi, int64_t width, int64_t always)
      : lo_(lo), hi_(hi), width_(width), always_(always) {}
  void allowed(std::vector<uint8_t>& a) const override {
    const int64_t start = steps_ % 2 == 0 ? lo_ : hi_;
    for (size_t i = 0; i < a.size(); ++i) {
      const auto id = static_cast<int64_t>(i);
      a[i] = (id >= start && id < start + width_) || id == always_;
    }
  }
  void advance(int64_t) override { ++steps_; }
  bool allows(int64_t step, int64_t id) const {
    const int64_t start = step % 2 == 0 ? lo_ : hi_;
    return (id >= start && id < start + width_) || id == always_;
  }

 private:
  int64_t lo_, hi_, width_, always_;
  int64_t steps_ = 0;
};

class AlternatingFactory : public cr::ConstraintFactory {
 public:
  std::unique_ptr<cr::RowConstraint> make_row() const override {
    return std::make_unique<AlternatingRanges>(100, 1500, 40, kStop);
  }
  static constexpr int64_t kStop = 2000;
};

// Teacher-forced check of one generated row: raw_logprobs against log_softmax of the full forward.
void expect_raw_logprobs(const Row& r, const cr::GeneratedRow& g, const std::string& what) {
  ASSERT_EQ(g.raw_logprobs.size(), g.ids.size()) << what;
  ASSERT_EQ(g.logprobs.size(), g.ids.size()) << what;
  const auto logits = full_logits(r, g.ids);
  const int64_t P = static_cast<int64_t>(r.prompt.size());
  for (size_t i = 0; i < g.ids.size(); ++i)
    EXPECT_NEAR(g.raw_logprobs[i], log_prob(logits[P - 1 + static_cast<int64_t>(i)], g.ids[i]), 1e-4)
        << what << " token " << i;
}

}  // namespace

TEST(RolloutFeatures, RawLogprobsAgreeWithTeacherForcedForward) {
  const auto rs = rows();
  // Sampled (varied tokens through the cache), batched with padding and images, two chunks.
  auto o = sampled(10, 11);
  o.batch_size = 3;
  const auto res = cr::generate(model(), request(rs), o);
  for (size_t i = 0; i < rs.size(); ++i) {
    const auto& g = res.rows[i];
    expect_raw_logprobs(rs[i], g, "row " + std::to_string(i));
    // logprobs: the distribution the draw came from (temperature 1.5 on the raw logits).
    const auto logits = full_logits(rs[i], g.ids);
    const int64_t P = static_cast<int64_t>(rs[i].prompt.size());
    double sum = 0;
    for (size_t t = 0; t < g.ids.size(); ++t) {
      const auto probs = cr::sampling_distribution(logits[P - 1 + static_cast<int64_t>(t)], o.sampling);
      EXPECT_NEAR(g.logprobs[t], std::log(probs[g.ids[t]].item<double>()), 1e-4) << "row " << i << " token " << t;
      EXPECT_NE(g.logprobs[t], g.raw_logprobs[t]) << "temperature 1.5 changes the distribution";
      sum += g.logprobs[t];
    }
    EXPECT_NEAR(g.score, sum, 1e-3);
  }
  // top-k / top-p renormalise: the chosen-from log-probability is >= the raw one.
  const auto k = cr::generate(model(), request(rs), sampled(6, 3, 1.0, 5, 0.9));
  for (size_t i = 0; i < rs.size(); ++i)
    for (size_t t = 0; t < k.rows[i].ids.size(); ++t) EXPECT_GE(k.rows[i].logprobs[t], k.rows[i].raw_logprobs[t] - 1e-6);
  // Greedy without penalty or constraint: the chosen-from distribution is the raw one.
  const auto g = cr::generate(model(), request(rs), greedy(6));
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(g.rows[i].logprobs, g.rows[i].raw_logprobs);
    expect_raw_logprobs(rs[i], g.rows[i], "greedy row " + std::to_string(i));
  }
}

TEST(RolloutFeatures, RepetitionPenaltyEqualsBruteForce) {
  const auto rs = rows();
  const int64_t kMaxNew = 8;
  for (double p : {1.8, 0.7}) {
    auto o = greedy(kMaxNew, 3);
    o.repetition_penalty = p;
    const auto res = cr::generate(model(), request(rs), o);
    for (size_t i = 0; i < rs.size(); ++i) {
      std::vector<int64_t> seen = rs[i].prompt, out;
      std::vector<double> lp;
      for (int64_t t = 0; t < kMaxNew; ++t) {
        const auto pen = penalize(full_logits(rs[i], out)[-1], seen, p);
        const int64_t next = pen.argmax().item<int64_t>();
        lp.push_back(torch::log_softmax(pen, 0)[next].item<double>());
        out.push_back(next);
        seen.push_back(next);
      }
      EXPECT_EQ(res.rows[i].ids, out) << "penalty " << p << " row " << i;
      for (size_t t = 0; t < out.size() && t < res.rows[i].logprobs.size(); ++t)
        EXPECT_NEAR(res.rows[i].logprobs[t], lp[t], 1e-4) << "penalty " << p << " row " << i << " token " << t;
      expect_raw_logprobs(rs[i], res.rows[i], "penalty row " + std::to_string(i));
    }
  }
  // On this random model greedy repeats one token; a strong penalty breaks the loop.
  const auto plain = cr::generate(model(), request({rs[0]}), greedy(kMaxNew));
  auto o = greedy(kMaxNew);
  o.repetition_penalty = 1.8;
  const auto pen = cr::generate(model(), request({rs[0]}), o);
  auto distinct = [](const std::vector<int64_t>& v) { return std::set<int64_t>(v.begin(), v.end()).size(); };
  EXPECT_GT(distinct(pen.rows[0].ids), distinct(plain.rows[0].ids));
}

TEST(RolloutFeatures, FinishedRowsLeaveTheBatch) {
  const auto rs = rows();
  auto o = sampled(12, 9);
  const auto free_run = cr::generate(model(), request(rs), o);
  // Stop ids that end rows at different steps: each row's 3rd, 6th, 9th, 12th token, where new.
  std::set<int64_t> stops;
  for (size_t i = 0; i < rs.size(); ++i) stops.insert(free_run.rows[i].ids[std::min<size_t>(3 * i + 2, 11)]);
  o.stop_ids.assign(stops.begin(), stops.end());
  const auto res = cr::generate(model(), request(rs), o);
  int64_t needed = 0;
  std::set<size_t> lengths;
  for (size_t i = 0; i < rs.size(); ++i) {
    const auto& g = res.rows[i];
    auto req = request({rs[i]});
    req.row_seeds = {cr::row_seed(9, i)};
    const auto alone = cr::generate(model(), req, o).rows[0];
    EXPECT_EQ(g.ids, alone.ids) << "row " << i;
    ASSERT_EQ(g.raw_logprobs.size(), alone.raw_logprobs.size());
    for (size_t t = 0; t < g.ids.size(); ++t) EXPECT_NEAR(g.raw_logprobs[t], alone.raw_logprobs[t], 1e-5);
    expect_raw_logprobs(rs[i], g, "row " + std::to_string(i));
    needed += static_cast<int64_t>(g.ids.size()) - 1;
    lengths.insert(g.ids.size());
  }
  ASSERT_GT(lengths.size(), 1u) << "rows must finish at different steps";
  // Every decode forward computed only the rows still running.
  EXPECT_EQ(res.stats.decode_row_steps, needed);
  EXPECT_LT(res.stats.decode_row_steps, static_cast<int64_t>(rs.size()) * res.stats.decode_steps);
  EXPECT_EQ(res.stats.decode_steps, static_cast<int64_t>(*lengths.rbegin()) - 1);
}

TEST(RolloutFeatures, KvCacheSelectRowsKeepsReordersAndDuplicates) {
  torch::NoGradGuard no_grad;
  const auto rs = rows();
  const std::vector<Row> text_rows{rs[1], make_row(0, 0, 0, {7, 8, 9, 10}), make_row(0, 0, 0, {40})};
  int64_t max_len = 0;
  for (const auto& r : text_rows) max_len = std::max<int64_t>(max_len, r.prompt.size());
  auto ids = torch::zeros({3, max_len}, torch::kLong), mask = torch::zeros({3, max_len}, torch::kLong);
  for (int64_t b = 0; b < 3; ++b) {
    const auto& p = text_rows[b].prompt;
    ids[b].slice(0, 0, p.size()).copy_(torch::tensor(p, torch::kLong));
    mask[b].slice(0, 0, p.size()).fill_(1);
  }
  auto cache = model().make_kv_cache(3, max_len + 4);
  cm::ForwardInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.cache = &cache;
  model().forward(in);
  const std::vector<int64_t> keep{2, 0, 0};
  cache.select_rows(keep);
  ASSERT_EQ(cache.batch_size(), 3);
  EXPECT_EQ(cache.length(0), static_cast<int64_t>(text_rows[2].prompt.size()));
  EXPECT_EQ(cache.length(1), static_cast<int64_t>(text_rows[0].prompt.size()));
  // One decode token per kept row: the logits of its own full sequence.
  const std::vector<int64_t> next{55, 66, 77};
  cm::ForwardInputs d;
  d.input_ids = torch::tensor(next, torch::kLong).view({3, 1});
  d.cache = &cache;
  const auto logits = model().forward(d).logits;
  for (int64_t b = 0; b < 3; ++b) {
    const auto want = full_logits(text_rows[keep[b]], {next[b]})[-1];
    EXPECT_LT((logits[b].to(torch::kFloat) - want).abs().max().item<float>(), 1e-4) << "kept row " << b;
  }
  cache.select_rows({1});
  EXPECT_EQ(cache.batch_size(), 1);
  EXPECT_THROW(cache.select_rows({}), coordexp::InternalError);
  EXPECT_THROW(cache.select_rows({1}), coordexp::InternalError);
}

TEST(RolloutFeatures, ConstraintIsObeyedInEveryMode) {
  const auto rs = rows();
  const AlternatingFactory factory;
  const AlternatingRanges check(100, 1500, 40, AlternatingFactory::kStop);
  auto expect_obeys = [&](const cr::GenerationResult& res, const std::string& what) {
    for (size_t i = 0; i < rs.size(); ++i) {
      ASSERT_FALSE(res.rows[i].ids.empty());
      for (size_t t = 0; t < res.rows[i].ids.size(); ++t)
        EXPECT_TRUE(check.allows(static_cast<int64_t>(t), res.rows[i].ids[t]))
            << what << " row " << i << " token " << t << " id " << res.rows[i].ids[t];
    }
  };
  // Greedy: the masked argmax of the full forward, with the masked softmax as its distribution.
  auto o = greedy(7, 3);
  o.constraint = &factory;
  const auto g = cr::generate(model(), request(rs), o);
  expect_obeys(g, "greedy");
  for (size_t i = 0; i < rs.size(); ++i) {
    std::vector<int64_t> out;
    for (int64_t t = 0; t < 7; ++t) {
      auto logits = full_logits(rs[i], out)[-1].to(torch::kDouble).contiguous();
      auto* v = logits.data_ptr<double>();
      for (int64_t id = 0; id < kVocab; ++id)
        if (!check.allows(t, id)) v[id] = -INFINITY;
      const int64_t next = logits.argmax().item<int64_t>();
      EXPECT_NEAR(g.rows[i].logprobs[t], torch::log_softmax(logits, 0)[next].item<double>(), 1e-4);
      out.push_back(next);
    }
    EXPECT_EQ(g.rows[i].ids, out) << "row " << i;
    expect_raw_logprobs(rs[i], g.rows[i], "constrained row " + std::to_string(i));
  }
  // Sampled at a temperature that would otherwise wander the whole vocabulary, and beams.
  auto s = sampled(9, 4, 5.0);
  s.constraint = &factory;
  s.stop_ids = {AlternatingFactory::kStop};
  expect_obeys(cr::generate(model(), request(rs), s), "sampled");
  auto b = greedy(6, 2);
  b.constraint = &factory;
  b.num_beams = 3;
  expect_obeys(cr::generate(model(), request(rs), b), "beams");
}

TEST(RolloutFeatures, KeepsCoordLogitsAtCoordSteps) {
  const auto rs = rows();
  auto o = sampled(12, 2, 3.0);
  o.keep_coord_logits = true;
  o.first_coord_id = 1000;  // any 1000-id range of the fixture's vocabulary works for the mechanism
  const auto res = cr::generate(model(), request(rs), o);
  int64_t total = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    const auto& g = res.rows[i];
    std::vector<size_t> coord_steps;
    for (size_t t = 0; t < g.ids.size(); ++t)
      if (g.ids[t] >= 1000 && g.ids[t] < 2000) coord_steps.push_back(t);
    total += static_cast<int64_t>(coord_steps.size());
    if (coord_steps.empty()) {
      EXPECT_FALSE(g.coord_logits_K.defined());
      continue;
    }
    ASSERT_TRUE(g.coord_logits_K.defined());
    ASSERT_EQ(g.coord_logits_K.sizes(), (std::vector<int64_t>{static_cast<int64_t>(coord_steps.size()), 1000}));
    EXPECT_EQ(g.coord_logits_K.scalar_type(), torch::kFloat);
    const auto logits = full_logits(rs[i], g.ids);
    const int64_t P = static_cast<int64_t>(rs[i].prompt.size());
    for (size_t j = 0; j < coord_steps.size(); ++j) {
      const auto want = logits[P - 1 + static_cast<int64_t>(coord_steps[j])].slice(0, 1000, 2000);
      EXPECT_LT((g.coord_logits_K[j] - want).abs().max().item<float>(), 1e-4) << "row " << i << " coord " << j;
    }
  }
  EXPECT_GT(total, 0) << "temperature 3 on a 2051-id vocabulary draws ids in [1000, 2000)";
  o.keep_coord_logits = false;
  for (const auto& g : cr::generate(model(), request(rs), o).rows) EXPECT_FALSE(g.coord_logits_K.defined());
}

namespace {

// Reference beam search over full forwards: every step expands every beam by every id, keeps the
// num_beams best by summed log-probability of the (penalized) softmax (no stop ids, so every beam
// runs max_new tokens).
std::pair<std::vector<int64_t>, double> reference_beams(const Row& r, int64_t num_beams, int64_t max_new,
                                                        double penalty) {
  std::vector<std::pair<std::vector<int64_t>, double>> beams{{{}, 0.0}};
  for (int64_t t = 0; t < max_new; ++t) {
    std::vector<std::pair<std::vector<int64_t>, double>> cand;
    for (const auto& [ids, sum] : beams) {
      std::vector<int64_t> seen = r.prompt;
      seen.insert(seen.end(), ids.begin(), ids.end());
      const auto lp = torch::log_softmax(penalize(full_logits(r, ids)[-1], seen, penalty), 0).contiguous();
      const auto* v = lp.data_ptr<double>();
      for (int64_t id = 0; id < lp.numel(); ++id) {
        auto next = ids;
        next.push_back(id);
        cand.emplace_back(std::move(next), sum + v[id]);
      }
    }
    std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    cand.resize(static_cast<size_t>(num_beams));
    beams = std::move(cand);
  }
  return beams.front();
}

}  // namespace

TEST(RolloutFeatures, BeamSearchEqualsReferenceBeamSearch) {
  const auto rs = rows();
  const int64_t kMaxNew = 4, kBeams = 3;
  // Without a penalty this random model's greedy path is also the best beam; with one the search
  // has real choices.
  for (double penalty : {1.0, 1.6}) {
    auto o = greedy(kMaxNew, 8);
    o.num_beams = kBeams;
    o.length_penalty = 1.0;
    o.repetition_penalty = penalty;
    const auto res = cr::generate(model(), request(rs), o);
    auto alone_opts = o;
    alone_opts.batch_size = 1;
    const auto alone = cr::generate(model(), request(rs), alone_opts);
    auto go = greedy(kMaxNew);
    go.repetition_penalty = penalty;
    const auto g = cr::generate(model(), request(rs), go);
    int differs_from_greedy = 0;
    for (size_t i = 0; i < rs.size(); ++i) {
      differs_from_greedy += res.rows[i].ids != g.rows[i].ids;
      const auto [ids, sum] = reference_beams(rs[i], kBeams, kMaxNew, penalty);
      EXPECT_EQ(res.rows[i].ids, ids) << "penalty " << penalty << " row " << i;
      EXPECT_NEAR(res.rows[i].score, sum / kMaxNew, 1e-4) << "row " << i << ": sum / len^1";
      EXPECT_EQ(alone.rows[i].ids, res.rows[i].ids) << "row " << i << ": batch_size 1";
      expect_raw_logprobs(rs[i], res.rows[i], "beam row " + std::to_string(i));
    }
    if (penalty != 1.0) {
      EXPECT_GT(differs_from_greedy, 0) << "beams must beat greedy somewhere";
    }
    // One beam is greedy.
    o.num_beams = 1;
    const auto one = cr::generate(model(), request(rs), o);
    for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(one.rows[i].ids, g.rows[i].ids);
  }
}

TEST(RolloutFeatures, BeamSearchWithStopIds) {
  const auto rs = rows();
  // Stop ids from greedy's first steps, so beams do finish early.
  const auto g = cr::generate(model(), request(rs), greedy(4));
  auto o = greedy(8, 8);
  o.num_beams = 4;
  for (size_t i = 0; i < rs.size(); ++i) o.stop_ids.push_back(g.rows[i].ids[1]);
  for (double lp : {1.0, 0.0}) {
    o.length_penalty = lp;
    const auto res = cr::generate(model(), request(rs), o);
    auto alone_opts = o;
    alone_opts.batch_size = 1;
    const auto alone = cr::generate(model(), request(rs), alone_opts);
    for (size_t i = 0; i < rs.size(); ++i) {
      const auto& r = res.rows[i];
      EXPECT_EQ(r.ids, alone.rows[i].ids) << "row " << i;
      const bool stopped = std::find(o.stop_ids.begin(), o.stop_ids.end(), r.ids.back()) != o.stop_ids.end();
      EXPECT_EQ(r.finish, stopped ? cr::FinishReason::kEos : cr::FinishReason::kMaxNewTokens);
      for (size_t t = 0; t + 1 < r.ids.size(); ++t)
        EXPECT_EQ(std::find(o.stop_ids.begin(), o.stop_ids.end(), r.ids[t]), o.stop_ids.end()) << "stop id inside";
      double sum = 0;
      for (float x : r.logprobs) sum += x;
      EXPECT_NEAR(r.score, sum / std::pow(static_cast<double>(r.ids.size()), lp), 1e-4);
      expect_raw_logprobs(rs[i], r, "beam row " + std::to_string(i));
    }
  }
}

TEST(RolloutFeatures, ConfigKeysValidateAndMap) {
  coordexp::config::RolloutOptions o;
  o.repetition_penalty = 1.05;
  o.num_beams = 4;
  o.length_penalty = 0.5;
  o.decode_threads = 0;
  o.validate();
  auto bad = o;
  bad.decoding = "sample";  // beams need greedy
  EXPECT_THROW(bad.validate(), coordexp::ConfigError);
  bad = o;
  bad.repetition_penalty = 0.0;
  EXPECT_THROW(bad.validate(), coordexp::ConfigError);
  bad = o;
  bad.num_beams = 0;
  EXPECT_THROW(bad.validate(), coordexp::ConfigError);
  bad = o;
  bad.decode_threads = -1;
  EXPECT_THROW(bad.validate(), coordexp::ConfigError);
  coordexp::config::InferOptions infer;
  infer.validate();
  infer.coord_readout = "argmax";
  EXPECT_THROW(infer.validate(), coordexp::ConfigError);
}
