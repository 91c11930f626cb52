// Collation (padding, masks, image concatenation, the response view's offsets), the epoch plan
// (shuffle determinism, rank sharding disjointness and coverage, token budgets), and the loader
// (same batches for 0, 1 and 3 workers; resume from a saved state gives the same next batches).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "coordexp/coord/masks.h"
#include "coordexp/data/collate.h"
#include "coordexp/data/loader.h"
#include "fixture.h"

namespace coordexp::data {
namespace {

using testing::make_dataset;
using testing::qwen_tokenizer;
using testing::TempDir;

std::vector<int64_t> sorted_copy(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}
std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}
std::vector<int64_t> indices_of(const Batch& b) {
  std::vector<int64_t> out;
  for (const auto& s : b.samples) out.push_back(s.index);
  return out;
}
void expect_same_batch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(indices_of(a), indices_of(b));
  EXPECT_TRUE(torch::equal(a.input_ids, b.input_ids));
  EXPECT_TRUE(torch::equal(a.attention_mask, b.attention_mask));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_TRUE(torch::equal(a.pixel_values, b.pixel_values));
  EXPECT_TRUE(torch::equal(a.image_grid_thw, b.image_grid_thw));
  EXPECT_TRUE(torch::equal(a.response_logit_rows, b.response_logit_rows));
  EXPECT_EQ(a.skipped, b.skipped);
}

TEST(DataCollate, PaddingMasksImagesAndResponseOffsets) {
  TempDir dir;
  config::DataOptions d = testing::test_data_options();
  const auto ds = make_dataset({testing::write_varied_dataset(dir, 6)}, d);
  const auto tok = qwen_tokenizer();
  const int coord0 = tok->coord_vocab().first_id;
  const std::vector<int64_t> rows = {1, 2, 5};  // 1, 2 and 5 objects, different images and lengths
  std::vector<Sample> samples, copies;
  for (const int64_t i : rows) {
    samples.push_back(ds->get(i, 0));
    copies.push_back(ds->get(i, 0));
  }
  const Batch b = collate(std::move(samples), ds->pad_id());
  ASSERT_EQ(b.size(), 3);
  int64_t t_max = 0, total = 0, answers = 0;
  for (const auto& s : copies) {
    t_max = std::max(t_max, s.length());
    total += s.length();
    answers += s.answer_length();
  }
  ASSERT_EQ(b.input_ids.sizes(), (std::vector<int64_t>{3, t_max}));
  EXPECT_EQ(b.num_tokens, total);
  EXPECT_EQ(b.num_padded_tokens, 3 * t_max);
  EXPECT_NE(copies[0].length(), copies[1].length());
  for (int64_t r = 0; r < 3; ++r) {
    const Sample& s = copies[static_cast<size_t>(r)];
    for (int64_t t = 0; t < t_max; ++t) {
      const bool real = t < s.length();
      ASSERT_EQ(b.attention_mask[r][t].item<int64_t>(), real ? 1 : 0);
      ASSERT_EQ(b.input_ids[r][t].item<int64_t>(), real ? s.input_ids[static_cast<size_t>(t)] : ds->pad_id());
      ASSERT_EQ(b.labels[r][t].item<int64_t>(), real ? s.labels[static_cast<size_t>(t)] : kIgnoreLabel);
    }
  }
  std::vector<torch::Tensor> pixels, grids;
  for (const auto& s : copies) {
    pixels.push_back(s.pixel_values);
    grids.push_back(s.image_grid_thw);
  }
  EXPECT_TRUE(torch::equal(b.pixel_values, torch::cat(pixels)));
  EXPECT_TRUE(torch::equal(b.image_grid_thw, torch::cat(grids)));
  EXPECT_EQ(b.images_per_sample, (std::vector<int64_t>{1, 1, 1}));

  // Response view: row r of logits predicts the token at flat position r + 1, which is the label.
  ASSERT_EQ(b.response_offsets, (std::vector<int64_t>{0, copies[0].answer_length(),
                                                      copies[0].answer_length() + copies[1].answer_length(), answers}));
  ASSERT_EQ(b.response_logit_rows.numel(), answers);
  const auto flat_ids = b.input_ids.flatten();
  const auto flat_labels = b.labels.flatten();
  for (int64_t n = 0; n < answers; ++n) {
    const int64_t row = b.response_logit_rows[n].item<int64_t>();
    if (n > 0) {
      ASSERT_GT(row, b.response_logit_rows[n - 1].item<int64_t>());
    }
    ASSERT_EQ(flat_ids[row + 1].item<int64_t>(), b.response_targets[n].item<int64_t>()) << n;
    ASSERT_EQ(flat_labels[row + 1].item<int64_t>(), b.response_targets[n].item<int64_t>()) << n;
  }
  EXPECT_EQ((flat_labels != kIgnoreLabel).sum().item<int64_t>(), answers);
  // Batch layout: object coord positions index the concatenated targets at the right bins.
  const coord::ResponseLayout& layout = b.response_layout;
  ASSERT_EQ(static_cast<int64_t>(layout.types.size()), answers);
  EXPECT_NO_THROW(coord::check_layout(layout));
  size_t j = 0;
  int64_t num_coords = 0;
  for (size_t r = 0; r < copies.size(); ++r)
    for (const SampleObject& o : copies[r].objects) {
      ASSERT_LT(j, layout.objects.size());
      const auto& span = layout.objects[j++];
      ASSERT_EQ(span.coord_positions.size(), o.bins.size());
      for (size_t k = 0; k < o.bins.size(); ++k) {
        EXPECT_EQ(b.response_targets[span.coord_positions[k]].item<int64_t>(), coord0 + o.bins[k]);
        EXPECT_EQ(span.coord_positions[k], b.response_offsets[r] + o.coord_positions[k] - copies[r].answer_begin);
        ++num_coords;
      }
    }
  EXPECT_EQ(j, layout.objects.size());
  const auto w = coord::build_token_weights(layout, coord::Context::kGt, config::LossOptions{});
  EXPECT_EQ((w.coord_w > 0).sum().item<int64_t>(), num_coords);
  EXPECT_EQ((w.eos_w > 0).sum().item<int64_t>(), 3);

  const Batch empty = collate({}, ds->pad_id());
  EXPECT_EQ(empty.size(), 0);
  EXPECT_EQ(empty.input_ids.numel(), 0);
  EXPECT_EQ(empty.image_grid_thw.size(0), 0);
  EXPECT_EQ(empty.response_offsets, (std::vector<int64_t>{0}));
}

TEST(DataPlan, ShuffleShardingAndTokenBudget) {
  const auto p = deterministic_permutation(50, 7, 0);
  EXPECT_EQ(p, deterministic_permutation(50, 7, 0));
  EXPECT_NE(p, deterministic_permutation(50, 7, 2));
  EXPECT_NE(p, deterministic_permutation(50, 8, 0));
  EXPECT_EQ(sorted_copy(p), iota(50));
  EXPECT_NE(p, iota(50));

  const std::vector<int64_t> lengths(23, 100);
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 3;
  // One rank, no shuffle: consecutive chunks, the last one partial (pad mode pads nothing at world 1).
  o.shuffle = false;
  EpochPlan plan = plan_epoch(lengths, o, 0);
  ASSERT_EQ(plan.batches.size(), 6u);
  EXPECT_EQ(plan.batches[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(plan.batches[5], (std::vector<int64_t>{20, 21, 22}));
  o.drop_last = true;
  plan = plan_epoch(lengths, o, 0);
  EXPECT_EQ(plan.batches.size(), 5u);
  EXPECT_EQ(plan.num_dropped, 3);

  // Shuffled: a function of (seed, epoch).
  o.shuffle = true;
  o.drop_last = false;
  EXPECT_EQ(plan_epoch(lengths, o, 1).batches, plan_epoch(lengths, o, 1).batches);
  EXPECT_NE(plan_epoch(lengths, o, 1).batches, plan_epoch(lengths, o, 2).batches);

  // Three ranks. drop_last: 12 of 23 samples, one full batch per rank, pairwise disjoint.
  auto shard_samples = [&](const LoaderOptions& base, int world, std::vector<size_t>* batch_counts) {
    std::vector<int64_t> all;
    for (int r = 0; r < world; ++r) {
      LoaderOptions ro = base;
      ro.world_size = world;
      ro.rank = r;
      const EpochPlan pr = plan_epoch(lengths, ro, 4);
      batch_counts->push_back(pr.batches.size());
      for (const auto& batch : pr.batches) all.insert(all.end(), batch.begin(), batch.end());
    }
    return sorted_copy(all);
  };
  o.drop_last = true;
  std::vector<size_t> counts;
  std::vector<int64_t> seen = shard_samples(o, 3, &counts);
  EXPECT_EQ(counts, (std::vector<size_t>{1, 1, 1}));
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 12u);  // disjoint
  // Padding: 24 slots (one repeat), two batches per rank, every sample seen.
  o.drop_last = false;
  counts.clear();
  seen = shard_samples(o, 3, &counts);
  EXPECT_EQ(counts, (std::vector<size_t>{2, 2, 2}));
  EXPECT_EQ(seen.size(), 24u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 23u);
  EXPECT_EQ(plan_epoch(lengths, o, 4).num_padded, 0);  // world 1
  o.world_size = 3;
  EXPECT_EQ(plan_epoch(lengths, o, 4).num_padded, 1);
  o.world_size = 1;

  // Token budget: samples x longest <= budget; each sample exactly once; length grouping packs
  // similar lengths (less padding than the shuffled order cut at the same budget without grouping).
  std::vector<int64_t> varied;
  for (int i = 0; i < 200; ++i) varied.push_back(50 + (i * 37) % 350);
  LoaderOptions t;
  t.batch_size = 0;
  t.max_batch_tokens = 1000;
  t.seed = 11;
  t.length_group_window = 64;
  auto padding_of = [&](const EpochPlan& pl) {
    int64_t pad = 0;
    for (const auto& batch : pl.batches) {
      int64_t longest = 0, sum = 0;
      for (const int64_t i : batch) {
        longest = std::max(longest, varied[static_cast<size_t>(i)]);
        sum += varied[static_cast<size_t>(i)];
      }
      EXPECT_LE(static_cast<int64_t>(batch.size()) * longest, 1000);
      pad += static_cast<int64_t>(batch.size()) * longest - sum;
    }
    return pad;
  };
  const EpochPlan grouped = plan_epoch(varied, t, 0);
  std::vector<int64_t> all;
  for (const auto& batch : grouped.batches) all.insert(all.end(), batch.begin(), batch.end());
  EXPECT_EQ(sorted_copy(all), iota(200));
  t.length_group_window = 1;
  EXPECT_LT(padding_of(grouped), padding_of(plan_epoch(varied, t, 0)));
  t.batch_size = 2;  // the cap
  for (const auto& batch : plan_epoch(varied, t, 0).batches) EXPECT_LE(batch.size(), 2u);
  // Two ranks, drop_last: same batch count, disjoint samples.
  t.batch_size = 0;
  t.world_size = 2;
  t.drop_last = true;
  std::set<int64_t> rank_samples[2];
  size_t rank_batches[2];
  for (int r = 0; r < 2; ++r) {
    t.rank = r;
    const EpochPlan pr = plan_epoch(varied, t, 5);
    rank_batches[r] = pr.batches.size();
    for (const auto& batch : pr.batches) rank_samples[r].insert(batch.begin(), batch.end());
  }
  EXPECT_EQ(rank_batches[0], rank_batches[1]);
  for (const int64_t i : rank_samples[0]) EXPECT_EQ(rank_samples[1].count(i), 0u);

  // Too little data for the world with drop_last: a clear error.
  LoaderOptions tiny;
  tiny.batch_size = 2;
  tiny.world_size = 3;
  tiny.drop_last = true;
  try {
    plan_epoch(std::vector<int64_t>(4, 10), tiny, 0);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no batch"), std::string::npos) << e.what();
  }
}

TEST(DataLoader, ThreadCountIndependenceResumeAndSharding) {
  TempDir dir;
  config::DataOptions d = testing::test_data_options();
  const auto ds = make_dataset({testing::write_varied_dataset(dir, 11)}, d);
  ASSERT_EQ(ds->size(), 11);
  LoaderOptions o = LoaderOptions::from_config(d, /*batch_size=*/3, /*seed=*/7);
  constexpr int kBatches = 10;  // 4 per epoch (3, 3, 3, 2): crosses two epoch boundaries

  std::vector<Batch> reference;
  std::vector<LoaderState> states;
  {
    LoaderOptions o0 = o;
    o0.num_workers = 0;
    DataLoader loader(ds, o0);
    EXPECT_EQ(loader.batches_in_epoch(0), 4);
    for (int i = 0; i < kBatches; ++i) {
      reference.push_back(loader.next());
      states.push_back(loader.state());
      const Batch& b = reference.back();
      EXPECT_EQ(indices_of(b), loader.plan(b.epoch).batches[static_cast<size_t>(b.index)]);
    }
  }
  EXPECT_EQ(reference[3].epoch, 0);
  EXPECT_EQ(reference[4].epoch, 1);
  EXPECT_EQ(reference[4].index, 0);
  EXPECT_EQ(states[3].epoch, 1);  // the end of an epoch is the start of the next
  EXPECT_EQ(states[3].batch, 0);
  EXPECT_NE(indices_of(reference[0]), indices_of(reference[4]));  // reshuffled
  // Each epoch visits every sample once.
  std::vector<int64_t> epoch0;
  for (int i = 0; i < 4; ++i)
    for (const int64_t x : indices_of(reference[static_cast<size_t>(i)])) epoch0.push_back(x);
  EXPECT_EQ(sorted_copy(epoch0), iota(11));

  for (const int workers : {1, 3}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    LoaderOptions ow = o;
    ow.num_workers = workers;
    ow.prefetch_batches = 3;
    DataLoader loader(ds, ow);
    for (int i = 0; i < kBatches; ++i) expect_same_batch(loader.next(), reference[static_cast<size_t>(i)]);
  }

  // Resume after k batches (through the JSON form) gives exactly the following batches.
  for (const int k : {2, 4, 5}) {
    SCOPED_TRACE("resume after " + std::to_string(k));
    const LoaderState saved = LoaderState::from_json(states[static_cast<size_t>(k - 1)].to_json());
    EXPECT_EQ(saved, states[static_cast<size_t>(k - 1)]);
    DataLoader loader(ds, o, saved);
    for (int i = k; i < kBatches; ++i) expect_same_batch(loader.next(), reference[static_cast<size_t>(i)]);
  }
  EXPECT_THROW(LoaderState::from_json("{\"epoch\": 1}"), DataError);

  // Two ranks through real loaders: equal batch counts, disjoint samples (drop_last) that together
  // with the dropped tail make up the dataset.
  LoaderOptions sharded = o;
  sharded.world_size = 2;
  sharded.drop_last = true;
  sharded.batch_size = 2;
  std::vector<int64_t> seen;
  for (int r = 0; r < 2; ++r) {
    sharded.rank = r;
    DataLoader loader(ds, sharded);
    EXPECT_EQ(loader.batches_in_epoch(0), 2);
    for (int i = 0; i < 2; ++i)
      for (const int64_t x : indices_of(loader.next())) seen.push_back(x);
    EXPECT_EQ(loader.state().epoch, 1);
    EXPECT_EQ(loader.counters().at("data_dropped_samples"), 3);
  }
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 8u);
}

// drop_last false pads uneven ends with repeats; the plan marks them and exclude_repeats (validation)
// leaves them out of the batches while every rank keeps the same batch count (an all-repeat batch
// comes out empty).
TEST(DataLoader, PaddingRepeatsAreMarkedAndCanBeLeftOut) {
  // Fixed size: 5 samples over 2 ranks -> 1 repeat slot (order[0]), at the end of rank 1's shard.
  LoaderOptions o;
  o.shuffle = false;
  o.world_size = 2;
  o.batch_size = 2;
  o.rank = 1;
  const std::vector<int64_t> lengths(5, 10);
  const EpochPlan p = plan_epoch(lengths, o, 0);
  ASSERT_EQ(p.batches, (std::vector<std::vector<int64_t>>{{1, 3}, {0}}));
  EXPECT_EQ(p.trailing_repeats, (std::map<int64_t, int64_t>{{1, 1}}));  // batch 1's last slot
  EXPECT_EQ(p.num_padded, 1);
  o.rank = 0;
  EXPECT_TRUE(plan_epoch(lengths, o, 0).trailing_repeats.empty());
  o.rank = 1;
  o.batch_size = 1;  // rank 1: {1}, {3}, {0 repeated}
  EXPECT_EQ(plan_epoch(lengths, o, 0).trailing_repeats, (std::map<int64_t, int64_t>{{2, 1}}));
  o.batch_size = 2;
  o.rank = 0;
  // Token budget: 3 whole batches over 2 ranks -> rank 1's second batch repeats batch 0.
  LoaderOptions t = o;
  t.rank = 1;
  t.batch_size = 0;
  t.max_batch_tokens = 20;
  const EpochPlan pt = plan_epoch({10, 10, 10, 10, 10, 10}, t, 0);
  ASSERT_EQ(pt.batches.size(), 2u);
  EXPECT_EQ(pt.trailing_repeats, (std::map<int64_t, int64_t>{{1, 2}}));

  TempDir dir;
  config::DataOptions d = testing::test_data_options();
  const auto ds = make_dataset({testing::write_varied_dataset(dir, 5)}, d);
  for (const int workers : {0, 2}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    LoaderOptions lo = o;
    lo.rank = 1;
    lo.num_workers = workers;
    {
      DataLoader with(ds, lo);
      with.next();
      EXPECT_EQ(indices_of(with.next()), (std::vector<int64_t>{0}));
    }
    lo.exclude_repeats = true;
    DataLoader without(ds, lo);
    EXPECT_EQ(indices_of(without.next()), (std::vector<int64_t>{1, 3}));
    const Batch empty = without.next();
    EXPECT_EQ(empty.size(), 0);
    EXPECT_EQ(empty.index, 1);
    EXPECT_EQ(without.state().epoch, 1);  // the empty batch still counts as the epoch's second
    EXPECT_EQ(without.counters().at("data_padded_samples"), 1);
  }
}

// peek_tokens: the next batches' token metadata without pixels and without moving the position;
// equal to what next() then returns (ids, labels, layouts: the counts the trainer takes from them).
TEST(DataLoader, PeekTokensMatchesTheNextBatchesWithoutPixels) {
  TempDir dir;
  config::DataOptions d = testing::test_data_options();
  d.object_order = "random";  // per-epoch order: the peek must use each batch's own epoch
  const auto ds = make_dataset({testing::write_varied_dataset(dir, 7)}, d);
  LoaderOptions o = LoaderOptions::from_config(d, /*batch_size=*/2, /*seed=*/5);
  DataLoader loader(ds, o);
  loader.next();
  const LoaderState before = loader.state();
  const std::vector<Batch> peeked = loader.peek_tokens(6);  // 4 batches per epoch: crosses into epoch 1
  EXPECT_EQ(loader.state(), before);
  ASSERT_EQ(peeked.size(), 6u);
  for (const Batch& p : peeked) {
    const Batch b = loader.next();
    SCOPED_TRACE("epoch " + std::to_string(b.epoch) + " batch " + std::to_string(b.index));
    EXPECT_EQ(p.epoch, b.epoch);
    EXPECT_EQ(p.index, b.index);
    EXPECT_EQ(indices_of(p), indices_of(b));
    EXPECT_TRUE(torch::equal(p.input_ids, b.input_ids));
    EXPECT_TRUE(torch::equal(p.labels, b.labels));
    EXPECT_TRUE(torch::equal(p.image_grid_thw, b.image_grid_thw));
    EXPECT_TRUE(torch::equal(p.response_targets, b.response_targets));
    EXPECT_EQ(p.response_layout.types, b.response_layout.types);
    ASSERT_EQ(p.response_layout.objects.size(), b.response_layout.objects.size());
    for (size_t k = 0; k < p.response_layout.objects.size(); ++k)
      EXPECT_EQ(p.response_layout.objects[k].coord_positions, b.response_layout.objects[k].coord_positions);
    EXPECT_EQ(p.pixel_values.numel(), 0);
    EXPECT_GT(b.pixel_values.numel(), 0);
  }
  EXPECT_EQ(peeked[5].epoch, 1);
}

}  // namespace
}  // namespace coordexp::data
