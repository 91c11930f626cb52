// Forward-API behaviour of Qwen3VL on the tiny fixture model: batching with left/right padding
// equals per-sample forwards (several images per sample), KV-cached incremental decoding (single
// tokens, multi-token chunks, truncation) equals full forwards, embedding overrides, logits
// selection, sdpa == eager, chunked attention == eager (gradients, KV-cache prefill and decode),
// and gradient checkpointing gives the same gradients (also under CPU bf16 autocast over several
// optimizer steps, with the autocast cast cache empty after each); a tail forward over captured
// prefix keys/values equals the full forward, gradients included.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include "coordexp/model/autocast.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/util/error.h"

namespace cm = coordexp::model;
using torch::indexing::None;
using torch::indexing::Slice;

namespace {

const std::string kFixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";
constexpr int64_t kPad = 1024, kImStart = 1025, kImEnd = 1026, kVStart = 1033, kVEnd = 1034, kImage = 1036;

cm::Qwen3VL& model() {
  static cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
  return m;
}

struct Image {
  torch::Tensor pixels;  // [Np, 1536]
  std::vector<int64_t> grid;
  int64_t tokens() const { return grid[0] * grid[1] * grid[2] / 4; }
};

Image random_image(int64_t gh, int64_t gw, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return {torch::rand({gh * gw, 1536}, gen, torch::kFloat) * 2 - 1, {1, gh, gw}};
}

// A chat-like sample: text, images, text (ids follow the fixture's miniature vocabulary).
struct Sample {
  std::vector<int64_t> ids;
  std::vector<Image> images;
  int64_t prompt_len;  // where the "answer" starts (decode tests)
};

void push_image(Sample& s, const Image& im) {
  s.ids.push_back(kVStart);
  for (int64_t i = 0; i < im.tokens(); ++i) s.ids.push_back(kImage);
  s.ids.push_back(kVEnd);
  s.images.push_back(im);
}

std::vector<Sample> samples() {
  Sample a;
  a.ids = {kImStart, 872, 198};
  push_image(a, random_image(14, 20, 1));
  for (int64_t t : std::initializer_list<int64_t>{620, 279, 731, 905, 13, kImEnd, 198, kImStart, 517, 198}) a.ids.push_back(t);
  a.prompt_len = static_cast<int64_t>(a.ids.size());
  for (int64_t t : std::initializer_list<int64_t>{84, 487, 788, 330, 751, 905, 497, 1201, 11, 1184, 11, 1501, 92, kImEnd}) a.ids.push_back(t);
  Sample b;
  b.ids = {kImStart, 872, 198};
  push_image(b, random_image(8, 12, 2));
  for (int64_t t : std::initializer_list<int64_t>{100, 200, 300}) b.ids.push_back(t);
  push_image(b, random_image(4, 8, 3));
  for (int64_t t : std::initializer_list<int64_t>{400, 500, kImEnd, 198, kImStart, 517, 198}) b.ids.push_back(t);
  b.prompt_len = static_cast<int64_t>(b.ids.size());
  for (int64_t t : std::initializer_list<int64_t>{84, 611, 788, 1300, 11, 1400, kImEnd}) b.ids.push_back(t);
  return {a, b};
}

torch::Tensor ids_tensor(const std::vector<int64_t>& ids) { return torch::tensor(ids, torch::kLong).unsqueeze(0); }

// The batch's images, in order, through m's vision tower (default: the shared float64 fixture model).
cm::VisionFeatures encode(const std::vector<const Sample*>& batch, cm::Qwen3VL& m = model()) {
  std::vector<torch::Tensor> px, grid;
  for (const auto* s : batch)
    for (const auto& im : s->images) {
      px.push_back(im.pixels);
      grid.push_back(torch::tensor(im.grid, torch::kLong).unsqueeze(0));
    }
  return m.encode_images(torch::cat(px), torch::cat(grid));
}

// Full forward of one unpadded sample: logits [T, V].
torch::Tensor full_logits(const Sample& s) {
  auto vision = encode({&s});
  cm::ForwardInputs in;
  in.input_ids = ids_tensor(s.ids);
  in.vision = &vision;
  in.logits = cm::LogitsRequest::all();
  return model().forward(in).logits[0];
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Pads `rows` to a common length on the left or right: ids and mask [B, T], offsets of row starts.
struct Padded {
  torch::Tensor ids, mask;
  std::vector<int64_t> start;
};
Padded pad(const std::vector<std::vector<int64_t>>& rows, bool left) {
  size_t T = 0;
  for (const auto& r : rows) T = std::max(T, r.size());
  Padded p{torch::full({(int64_t)rows.size(), (int64_t)T}, kPad, torch::kLong),
           torch::zeros({(int64_t)rows.size(), (int64_t)T}, torch::kLong), {}};
  for (size_t b = 0; b < rows.size(); ++b) {
    const int64_t s = left ? static_cast<int64_t>(T - rows[b].size()) : 0, n = rows[b].size();
    p.ids[b].index_put_({Slice(s, s + n)}, torch::tensor(rows[b], torch::kLong));
    p.mask[b].index_put_({Slice(s, s + n)}, 1);
    p.start.push_back(s);
  }
  return p;
}

}  // namespace

TEST(Qwen3VLForward, PaddedBatchEqualsPerSample) {
  torch::NoGradGuard no_grad;
  const auto ss = samples();
  std::vector<torch::Tensor> ref;
  for (const auto& s : ss) ref.push_back(full_logits(s));
  auto vision = encode({&ss[0], &ss[1]});
  for (bool left : {false, true}) {
    auto p = pad({ss[0].ids, ss[1].ids}, left);
    cm::ForwardInputs in;
    in.input_ids = p.ids;
    in.attention_mask = p.mask;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::all();
    auto out = model().forward(in);
    for (size_t b = 0; b < ss.size(); ++b) {
      const int64_t n = ss[b].ids.size();
      auto got = out.logits[b].index({Slice(p.start[b], p.start[b] + n)});
      EXPECT_LE(max_abs(got, ref[b]), 1e-5) << "row " << b << (left ? " left" : " right") << " padding";
    }
    // kLast = last real token; kMask = the masked rows in row-major order.
    in.logits = cm::LogitsRequest::last();
    auto last = model().forward(in).logits;
    for (size_t b = 0; b < ss.size(); ++b) EXPECT_LE(max_abs(last[b], ref[b][-1]), 1e-5);
    in.logits = cm::LogitsRequest::at(p.mask.ne(0));
    auto sel = model().forward(in).logits;
    EXPECT_LE(max_abs(sel, torch::cat({ref[0], ref[1]})), 1e-5);
  }
}

TEST(Qwen3VLForward, KvCacheDecodingEqualsFullForward) {
  torch::NoGradGuard no_grad;
  const auto ss = samples();
  std::vector<torch::Tensor> ref{full_logits(ss[0]), full_logits(ss[1])};
  auto vision = encode({&ss[0], &ss[1]});
  const int64_t B = 2;
  for (bool left : {false, true}) {
    SCOPED_TRACE(left ? "left-padded prompts" : "right-padded prompts");
    auto cache = model().make_kv_cache(B, 160);
    std::vector<std::vector<int64_t>> prompts{
        {ss[0].ids.begin(), ss[0].ids.begin() + ss[0].prompt_len},
        {ss[1].ids.begin(), ss[1].ids.begin() + ss[1].prompt_len}};
    auto p = pad(prompts, left);
    cm::ForwardInputs in;
    in.input_ids = p.ids;
    in.attention_mask = p.mask;
    in.vision = &vision;
    in.cache = &cache;
    in.logits = cm::LogitsRequest::all();
    auto out = model().forward(in);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = ss[b].prompt_len;
      EXPECT_LE(max_abs(out.logits[b].index({Slice(p.start[b], p.start[b] + n)}), ref[b].index({Slice(0, n)})), 1e-5);
    }
    // One multi-token chunk (3 tokens per row), then single tokens until both rows are done.
    std::vector<int64_t> done{ss[0].prompt_len, ss[1].prompt_len};
    auto step = [&](int64_t chunk) {
      auto ids = torch::full({B, chunk}, kPad, torch::kLong);
      auto mask = torch::zeros({B, chunk}, torch::kLong);
      std::vector<int64_t> n(B, 0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < chunk && done[b] + j < (int64_t)ss[b].ids.size(); ++j, ++n[b]) {
          ids[b][j] = ss[b].ids[done[b] + j];
          mask[b][j] = 1;
        }
      cm::ForwardInputs d;
      d.input_ids = ids;
      d.attention_mask = mask;
      d.cache = &cache;
      d.logits = cm::LogitsRequest::all();
      auto o = model().forward(d);
      for (int64_t b = 0; b < B; ++b)
        if (n[b] > 0) {
          EXPECT_LE(max_abs(o.logits[b].index({Slice(0, n[b])}), ref[b].index({Slice(done[b], done[b] + n[b])})), 1e-5)
              << "row " << b << " at token " << done[b];
          done[b] += n[b];
        }
    };
    step(3);
    while (done[0] < (int64_t)ss[0].ids.size() || done[1] < (int64_t)ss[1].ids.size()) step(1);
    // 70 image tokens occupy max(7, 10) = 10 positions (spec 5.1).
    EXPECT_EQ(cache.next_position(0), ref[0].size(0) - 70 + 10);

    // Truncate row 0 back into its answer and decode again: same logits as the full forward.
    const int64_t keep_tokens = ss[0].prompt_len + 2;
    cache.truncate(0, p.start[0] + keep_tokens);
    cache.truncate(1, cache.length(1));
    auto ids = torch::tensor({ss[0].ids[keep_tokens], kPad}, torch::kLong).view({B, 1});
    cm::ForwardInputs d;
    d.input_ids = ids;
    d.attention_mask = torch::tensor({1, 0}, torch::kLong).view({B, 1});
    d.cache = &cache;
    d.logits = cm::LogitsRequest::all();
    EXPECT_LE(max_abs(model().forward(d).logits[0][0], ref[0][keep_tokens]), 1e-5);
  }
}

TEST(Qwen3VLForward, EmbeddingOverride) {
  const auto ss = samples();
  auto vision = encode({&ss[0]});
  cm::ForwardInputs in;
  in.input_ids = ids_tensor(ss[0].ids);
  in.vision = &vision;
  in.logits = cm::LogitsRequest::all();
  torch::Tensor base;
  {
    torch::NoGradGuard no_grad;
    base = model().forward(in).logits;
  }
  // Override the answer's coord tokens with their own embedding rows: identical logits.
  std::vector<int64_t> pos;
  for (size_t t = 0; t < ss[0].ids.size(); ++t)
    if (ss[0].ids[t] >= 1051) pos.push_back(t);
  ASSERT_EQ(pos.size(), 3u);
  auto positions = torch::stack({torch::zeros({3}, torch::kLong), torch::tensor(pos, torch::kLong)}, 1);
  auto& E = model().module()->language_model->embed_tokens->weight;
  auto rows = E.index({in.input_ids[0].index({torch::tensor(pos, torch::kLong)})}).detach().clone().requires_grad_(true);
  cm::EmbeddingOverride ov{positions, rows};
  in.embedding_override = &ov;
  auto out = model().forward(in);
  EXPECT_TRUE(out.logits.detach().equal(base));
  // Gradients reach the override rows; other rows change the logits after (not before) them.
  out.logits.index({0, Slice(pos[0], None)}).sum().backward();
  ASSERT_TRUE(rows.grad().defined());
  EXPECT_GT(rows.grad().abs().sum().item<double>(), 0.0);
  model().module()->zero_grad();
  torch::NoGradGuard no_grad;
  cm::EmbeddingOverride other{positions, torch::zeros({3, E.size(1)})};
  in.embedding_override = &other;
  auto changed = model().forward(in).logits;
  EXPECT_TRUE(changed.index({0, Slice(0, pos[0])}).equal(base.index({0, Slice(0, pos[0])})));
  EXPECT_GT(max_abs(changed.index({0, Slice(pos[0], None)}), base.index({0, Slice(pos[0], None)})), 1e-2);
  // Image positions cannot be overridden.
  cm::EmbeddingOverride bad{torch::tensor({0, 5}, torch::kLong).view({1, 2}), torch::zeros({1, E.size(1)})};
  in.embedding_override = &bad;
  EXPECT_THROW(model().forward(in), coordexp::DataError);
}

TEST(Qwen3VLForward, InputErrorsAreClear) {
  torch::NoGradGuard no_grad;
  const auto ss = samples();
  cm::ForwardInputs in;
  in.input_ids = ids_tensor(ss[0].ids);
  try {
    model().forward(in);
    FAIL() << "image pads without features must throw";
  } catch (const coordexp::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("70 <|image_pad|> tokens but no vision features"), std::string::npos) << e.what();
  }
  auto vision = encode({&ss[1]});  // 32 image tokens for a 70-pad prompt
  in.vision = &vision;
  try {
    model().forward(in);
    FAIL() << "feature/pad count mismatch must throw";
  } catch (const coordexp::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("70 <|image_pad|> tokens but the vision features have 32 rows"), std::string::npos)
        << e.what();
  }
}

TEST(Qwen3VLForward, SdpaMatchesEager) {
  torch::NoGradGuard no_grad;
  const auto ss = samples();
  auto vision = encode({&ss[0], &ss[1]});
  auto p = pad({ss[0].ids, ss[1].ids}, true);
  cm::ForwardInputs in;
  in.input_ids = p.ids;
  in.attention_mask = p.mask;
  in.vision = &vision;
  in.logits = cm::LogitsRequest::at(p.mask.ne(0));
  auto eager = model().forward(in).logits;
  cm::ModelRuntime rt;
  rt.attention = cm::AttentionKind::kSdpa;
  auto sdpa_model = cm::Qwen3VL::load(kFixture, rt);
  auto sdpa = sdpa_model.forward(in).logits;
  EXPECT_LE(max_abs(sdpa, eager), 1e-5);
}

// model.attn_implementation: chunked against eager, float64: logits and every parameter's gradient
// of a padded two-image batch (left and right padding; the vision tower attends chunked too), also
// with both kinds of gradient checkpointing (the chunked function's forward reruns in backward).
TEST(Qwen3VLForward, ChunkedAttentionMatchesEagerWithGradients) {
  const auto ss = samples();
  struct Run {
    torch::Tensor logits;
    std::map<std::string, torch::Tensor> grads;
  };
  auto run = [&](cm::AttentionKind kind, bool left, bool ckpt) {
    cm::ModelRuntime rt;
    rt.param_dtype = torch::kDouble;
    rt.attention = kind;
    auto m = cm::Qwen3VL::load(kFixture, rt);
    m.set_gradient_checkpointing(ckpt, ckpt);
    const auto p = pad({ss[0].ids, ss[1].ids}, left);
    auto vision = encode({&ss[0], &ss[1]}, m);
    cm::ForwardInputs in;
    in.input_ids = p.ids;
    in.attention_mask = p.mask;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::at(p.mask.ne(0));
    auto logits = m.forward(in).logits;
    const auto w = torch::randn(logits.sizes(), at::detail::createCPUGenerator(3), torch::kDouble);
    (logits * w).sum().backward();
    Run r{logits.detach(), {}};
    for (const auto& [k, t] : m.named_parameters()) r.grads[k] = t.grad().clone();
    return r;
  };
  for (bool left : {false, true}) {
    const Run eager = run(cm::AttentionKind::kEager, left, false);
    for (bool ckpt : {false, true}) {
      const Run chunked = run(cm::AttentionKind::kChunked, left, ckpt);
      const std::string what = std::string(left ? "left" : "right") + " padding" + (ckpt ? ", checkpointed" : "");
      EXPECT_LE(max_abs(chunked.logits, eager.logits), 1e-10 * eager.logits.abs().max().item<double>()) << what;
      ASSERT_EQ(chunked.grads.size(), eager.grads.size());
      for (const auto& [k, g] : eager.grads) {
        const double scale = g.abs().max().item<double>();
        EXPECT_GT(scale, 0.0) << k;
        EXPECT_LE(max_abs(chunked.grads.at(k), g), 1e-10 * scale) << what << " " << k;
      }
    }
  }
}

// A chunked model's KV-cache prefill (no dense bias) and its decode steps (dense, eager) give the
// eager full forward's logits, left and right padding (float64).
TEST(Qwen3VLForward, ChunkedKvCachePrefillAndDecodeEqualFullForward) {
  torch::NoGradGuard no_grad;
  cm::ModelRuntime rt;
  rt.param_dtype = torch::kDouble;
  auto eager = cm::Qwen3VL::load(kFixture, rt);
  rt.attention = cm::AttentionKind::kChunked;
  auto chunked = cm::Qwen3VL::load(kFixture, rt);
  const auto ss = samples();
  auto vision_eager = encode({&ss[0], &ss[1]}, eager);
  auto vision_chunked = encode({&ss[0], &ss[1]}, chunked);
  EXPECT_LE(max_abs(vision_chunked.image_embeds, vision_eager.image_embeds),
            1e-10 * vision_eager.image_embeds.abs().max().item<double>());
  const int64_t B = 2;
  for (bool left : {false, true}) {
    const auto full = pad({ss[0].ids, ss[1].ids}, left);
    cm::ForwardInputs fin;
    fin.input_ids = full.ids;
    fin.attention_mask = full.mask;
    fin.vision = &vision_eager;
    fin.logits = cm::LogitsRequest::all();
    const auto ref = eager.forward(fin).logits;
    std::vector<std::vector<int64_t>> prompts{{ss[0].ids.begin(), ss[0].ids.begin() + ss[0].prompt_len},
                                              {ss[1].ids.begin(), ss[1].ids.begin() + ss[1].prompt_len}};
    const auto p = pad(prompts, left);
    auto cache = chunked.make_kv_cache(B, 160);
    cm::ForwardInputs in;
    in.input_ids = p.ids;
    in.attention_mask = p.mask;
    in.vision = &vision_chunked;
    in.cache = &cache;
    in.logits = cm::LogitsRequest::all();
    const auto pre = chunked.forward(in).logits;
    const double scale = ref.abs().max().item<double>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = ss[b].prompt_len;
      EXPECT_LE(max_abs(pre[b].narrow(0, p.start[b], n), ref[b].narrow(0, full.start[b], n)), 1e-10 * scale);
    }
    std::vector<int64_t> done{ss[0].prompt_len, ss[1].prompt_len};
    while (done[0] < (int64_t)ss[0].ids.size() || done[1] < (int64_t)ss[1].ids.size()) {
      auto ids = torch::full({B, 1}, kPad, torch::kLong);
      auto mask = torch::zeros({B, 1}, torch::kLong);
      for (int64_t b = 0; b < B; ++b)
        if (done[b] < (int64_t)ss[b].ids.size()) {
          ids[b][0] = ss[b].ids[done[b]];
          mask[b][0] = 1;
        }
      cm::ForwardInputs d;
      d.input_ids = ids;
      d.attention_mask = mask;
      d.cache = &cache;
      d.logits = cm::LogitsRequest::all();
      const auto o = chunked.forward(d).logits;
      for (int64_t b = 0; b < B; ++b)
        if (done[b] < (int64_t)ss[b].ids.size()) {
          EXPECT_LE(max_abs(o[b][0], ref[b][full.start[b] + done[b]]), 1e-10 * scale) << "row " << b << " at " << done[b];
          ++done[b];
        }
    }
  }
}

TEST(Qwen3VLForward, GradientCheckpointingGivesSameGradients) {
  const auto ss = samples();
  auto p = pad({ss[0].ids, ss[1].ids}, false);
  auto weights = torch::randn({2, p.ids.size(1), 2051}, at::detail::createCPUGenerator(7), torch::kFloat);
  auto grads = [&](bool ckpt) {
    auto m = cm::Qwen3VL::load(kFixture);
    m.set_gradient_checkpointing(ckpt, ckpt);
    auto vision = [&] {
      std::vector<torch::Tensor> px, grid;
      for (const auto& s : ss)
        for (const auto& im : s.images) {
          px.push_back(im.pixels);
          grid.push_back(torch::tensor(im.grid, torch::kLong).unsqueeze(0));
        }
      return m.encode_images(torch::cat(px), torch::cat(grid));
    }();
    cm::ForwardInputs in;
    in.input_ids = p.ids;
    in.attention_mask = p.mask;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::all();
    (m.forward(in).logits * weights * p.mask.unsqueeze(-1)).sum().backward();
    std::map<std::string, torch::Tensor> g;
    for (auto& [k, t] : m.named_parameters()) g[k] = t.grad().clone();
    return g;
  };
  auto plain = grads(false), ckpt = grads(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  for (auto& [k, g] : plain) {
    ASSERT_TRUE(g.defined()) << k;
    const double scale = std::max(g.abs().max().item<double>(), 1e-12);
    EXPECT_LE(max_abs(ckpt[k], g) / scale, 1e-6) << k;
  }
  EXPECT_GT(plain["model.visual.blocks.0.attn.qkv.weight"].abs().sum().item<double>(), 0.0);
}

// ---------------------------------------------------------------- checkpointing under autocast

namespace {

// Parameters with an entry in this thread's autocast cast cache (ATen keeps the bf16 copy of each
// fp32 leaf weight there until the outermost autocast scope exits). Probe: shift the weight by +1,
// ask the cache for its bf16 cast; a pre-existing entry still holds the unshifted values. The
// weight is restored exactly and the probe's own entries are cleared after.
int64_t autocast_cache_entries(const std::map<std::string, torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  EXPECT_EQ(at::autocast::get_autocast_cpu_dtype(), torch::kBFloat16);
  int64_t n = 0;
  for (const auto& [key, w] : params) {
    if (w.scalar_type() != torch::kFloat || !w.requires_grad()) continue;
    auto saved = w.clone();
    auto shifted = w.add_(1.0);
    auto fresh = shifted.to(torch::kBFloat16);
    if (!at::autocast::cached_cast(torch::kBFloat16, shifted, c10::DeviceType::CPU).equal(fresh)) ++n;
    w.copy_(saved);
  }
  at::autocast::clear_cache();
  return n;
}

// Three SGD steps of the fixture model under CPU bf16 autocast (ModelRuntime::cpu_autocast, the same
// AutocastScope as CUDA autocast), with or without checkpointing: the gradients of every step, and
// (probe) the number of cached casts left after each step's backward.
struct AutocastRun {
  std::vector<std::map<std::string, torch::Tensor>> grads;
  std::vector<int64_t> cache_entries;
};
AutocastRun autocast_steps(bool ckpt, bool probe) {
  const auto ss = samples();
  auto p = pad({ss[0].ids, ss[1].ids}, false);
  auto weights = torch::randn({2, p.ids.size(1), 2051}, at::detail::createCPUGenerator(7), torch::kFloat);
  cm::ModelRuntime rt;
  rt.cpu_autocast = true;
  auto m = cm::Qwen3VL::load(kFixture, rt);
  m.set_gradient_checkpointing(ckpt, ckpt);
  const auto params = m.named_parameters();
  std::vector<torch::Tensor> list;
  for (const auto& [k, t] : params) list.push_back(t);
  torch::optim::SGD sgd(list, torch::optim::SGDOptions(0.05));
  AutocastRun run;
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    std::vector<torch::Tensor> px, grid;
    for (const auto& s : ss)
      for (const auto& im : s.images) {
        px.push_back(im.pixels);
        grid.push_back(torch::tensor(im.grid, torch::kLong).unsqueeze(0));
      }
    auto vision = m.encode_images(torch::cat(px), torch::cat(grid));
    cm::ForwardInputs in;
    in.input_ids = p.ids;
    in.attention_mask = p.mask;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::all();
    auto logits = m.forward(in).logits;
    EXPECT_EQ(logits.scalar_type(), torch::kBFloat16);  // autocast really ran
    (logits.to(torch::kFloat) * weights * p.mask.unsqueeze(-1)).sum().backward();  // outside the scope, like the trainer
    std::map<std::string, torch::Tensor> g;
    for (const auto& [k, t] : params) g[k] = t.grad().clone();
    run.grads.push_back(std::move(g));
    if (probe) run.cache_entries.push_back(autocast_cache_entries(params));
    sgd.step();
  }
  return run;
}

}  // namespace

// The recompute runs in a full AutocastScope (nesting + cache clearing): without it the rerun's bf16
// casts of the weights stay cached and the next step's forward computes with last step's weights.
TEST(Qwen3VLForward, CheckpointingUnderCpuAutocastGivesSameGradientsOverSteps) {
  auto plain = autocast_steps(false, false), ckpt = autocast_steps(true, false);
  ASSERT_EQ(plain.grads.size(), 3u);
  for (size_t step = 0; step < 3; ++step) {
    double worst = 0;
    std::string worst_key;
    for (const auto& [k, g] : plain.grads[step]) {
      const double scale = std::max(g.abs().max().item<double>(), 1e-12);
      const double rel = max_abs(ckpt.grads[step].at(k), g) / scale;
      if (rel > worst) worst = rel, worst_key = k;
    }
    // Identical op sequences on identical inputs (measured: bit-identical here); allow one bf16 ulp
    // of the tensor's largest gradient. The bug gives relative errors > 1e6 from step 1 on.
    EXPECT_LE(worst, 4e-3) << "step " << step << " " << worst_key;
  }
  EXPECT_GT(plain.grads[2].at("model.visual.blocks.0.attn.qkv.weight").abs().sum().item<double>(), 0.0);
}

TEST(Qwen3VLForward, AutocastCastCacheIsEmptyAfterEveryStep) {
  for (bool ckpt : {false, true}) {
    auto run = autocast_steps(ckpt, true);
    EXPECT_EQ(run.cache_entries, (std::vector<int64_t>{0, 0, 0})) << "checkpointing " << ckpt;
  }
  // The probe sees entries that exist: inside a scope, after an autocast matmul of a weight.
  auto w = torch::randn({4, 4}).requires_grad_(true);
  {
    cm::AutocastState s;
    s.cpu_enabled = true;
    cm::AutocastScope scope(s);
    auto y = torch::mm(torch::randn({2, 4}), w);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(autocast_cache_entries({{"w", w}}), 1);
  }
}

// Prefix reuse (PrefixKv): a forward that captures its keys/values of positions [0, P) and a later
// forward that computes only [P, T) over them give the full forward's tail (float64, with right and
// left padding, embedding overrides in the tail, image pads and DeepStack rows on both sides of P,
// eager, sdpa and chunked attention) and the full forwards' gradients, the tail's gradient flowing
// into the capturing forward's graph.
TEST(Qwen3VLForward, PrefixReuseEqualsFullForwardAndGradients) {
  const auto ss = samples();
  // P = 30: row 1's first image (pads 4..27) lies in the prefix, its second (pads 33..40) in the
  // tail; row 0's only image (pads 4..73) is split by P (with right padding).
  const int64_t P = 30;
  for (auto kind : {cm::AttentionKind::kEager, cm::AttentionKind::kSdpa, cm::AttentionKind::kChunked})
    for (bool left : {false, true}) {
      cm::ModelRuntime rt;
      rt.param_dtype = torch::kDouble;
      rt.attention = kind;
      auto m = cm::Qwen3VL::load(kFixture, rt);
      const auto p = pad({ss[0].ids, ss[1].ids}, left);
      const int64_t T = p.ids.size(1);
      std::vector<torch::Tensor> px, grid;
      for (const auto* s : {&ss[0], &ss[1]})
        for (const auto& im : s->images) {
          px.push_back(im.pixels);
          grid.push_back(torch::tensor(im.grid, torch::kLong).unsqueeze(0));
        }
      const auto gen = at::detail::createCPUGenerator(5);
      const auto w0 = torch::randn({2, T, 2051}, gen, torch::kDouble);
      const auto w1 = torch::randn({2, T - P, 2051}, gen, torch::kDouble);
      // Override rows at text positions of the tail (one per row).
      const int64_t t0 = p.start[0] + static_cast<int64_t>(ss[0].ids.size()) - 3;
      const int64_t t1 = p.start[1] + static_cast<int64_t>(ss[1].ids.size()) - 3;
      ASSERT_GE(std::min(t0, t1), P);
      const auto rows0 = torch::randn({2, 64}, gen, torch::kDouble);
      struct Run {
        torch::Tensor tail_logits, loss;
        std::map<std::string, torch::Tensor> grads;
        torch::Tensor row_grad;
      };
      auto run = [&](bool reuse) {
        m.module()->zero_grad();
        auto vision = m.encode_images(torch::cat(px), torch::cat(grid));
        auto rows = rows0.clone().requires_grad_(true);
        cm::EmbeddingOverride ov{torch::tensor(std::vector<int64_t>{0, t0, 1, t1}, torch::kLong).view({2, 2}), rows};
        cm::ForwardInputs in;
        in.input_ids = p.ids;
        in.attention_mask = p.mask;
        in.vision = &vision;
        in.logits = cm::LogitsRequest::all();
        cm::PrefixKv prefix;
        prefix.length = P;
        if (reuse) in.capture_prefix = &prefix;
        auto first = m.forward(in).logits;  // forward 0: no override
        in.capture_prefix = nullptr;
        in.embedding_override = &ov;
        if (reuse) in.prefix = &prefix;
        auto second = m.forward(in).logits;
        if (!reuse) second = second.narrow(1, P, T - P);
        Run r;
        r.tail_logits = second.detach();
        r.loss = (w0 * first * p.mask.unsqueeze(-1)).sum() + (w1 * second * p.mask.narrow(1, P, T - P).unsqueeze(-1)).sum();
        r.loss.backward();
        for (const auto& [k, v] : m.named_parameters())
          if (v.grad().defined()) r.grads[k] = v.grad().clone();
        r.row_grad = rows.grad().clone();
        return r;
      };
      const Run full = run(false), reused = run(true);
      const std::string what = std::string(cm::attention_kind_name(kind)) + (left ? " left" : " right") + " padding";
      ASSERT_EQ(reused.tail_logits.sizes(), full.tail_logits.sizes()) << what;
      const auto real = p.mask.narrow(1, P, T - P).ne(0);
      EXPECT_LE(max_abs(reused.tail_logits.index({real}), full.tail_logits.index({real})), 1e-12) << what;
      EXPECT_NEAR(reused.loss.item<double>(), full.loss.item<double>(), 1e-10 * std::abs(full.loss.item<double>())) << what;
      ASSERT_EQ(reused.grads.size(), full.grads.size()) << what;
      for (const auto& [k, g] : full.grads) {
        const double scale = g.abs().max().item<double>();
        EXPECT_GT(scale, 0.0) << what << " " << k;
        EXPECT_LE(max_abs(reused.grads.at(k), g), 1e-10 * scale) << what << " " << k;
      }
      EXPECT_LE(max_abs(reused.row_grad, full.row_grad), 1e-10 * full.row_grad.abs().max().item<double>()) << what;
    }
}

// Logits selection over a tail (mask and last real token) and the errors that keep reuse honest.
TEST(Qwen3VLForward, PrefixReuseLogitsAndErrors) {
  torch::NoGradGuard no_grad;
  const auto ss = samples();
  auto vision = encode({&ss[0], &ss[1]});
  const auto p = pad({ss[0].ids, ss[1].ids}, false);
  const int64_t T = p.ids.size(1), P = 50;
  cm::ForwardInputs in;
  in.input_ids = p.ids;
  in.attention_mask = p.mask;
  in.vision = &vision;
  auto mask = torch::zeros({2, T}, torch::kBool);
  mask.index_put_({0, Slice(P, P + 5)}, true);
  mask.index_put_({1, P + 2}, true);
  in.logits = cm::LogitsRequest::at(mask);
  const auto full_mask = model().forward(in).logits;
  in.logits = cm::LogitsRequest::last();
  const auto full_last = model().forward(in).logits;
  cm::PrefixKv prefix;
  prefix.length = P;
  in.capture_prefix = &prefix;
  model().forward(in);
  ASSERT_EQ(prefix.keys.size(), 2u);
  EXPECT_EQ(prefix.keys[0].sizes(), (std::vector<int64_t>{2, 2, P, 16}));
  in.capture_prefix = nullptr;
  in.prefix = &prefix;
  EXPECT_LE(max_abs(model().forward(in).logits, full_last), 1e-5);
  in.logits = cm::LogitsRequest::at(mask);
  EXPECT_LE(max_abs(model().forward(in).logits, full_mask), 1e-5);

  auto expect_error = [&](const cm::ForwardInputs& bad, const std::string& text) {
    try {
      model().forward(bad);
      ADD_FAILURE() << "expected an error containing '" << text << "'";
    } catch (const coordexp::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  auto early = mask.clone();
  early.index_put_({1, P - 1}, true);
  cm::ForwardInputs bad = in;
  bad.logits = cm::LogitsRequest::at(early);
  expect_error(bad, "logits requested in the reused prefix [0, 50)");
  bad = in;
  cm::EmbeddingOverride ov{torch::tensor(std::vector<int64_t>{1, P - 1}, torch::kLong).view({1, 2}), torch::zeros({1, 64})};
  bad.embedding_override = &ov;
  expect_error(bad, "lies in the reused prefix [0, 50)");
  bad = in;
  cm::PrefixKv short_prefix = prefix;
  short_prefix.keys.pop_back();
  bad.prefix = &short_prefix;
  expect_error(bad, "prefix holds keys/values of 1 layers, the model has 2");
  cm::PrefixKv wrong_length = prefix;
  wrong_length.length = P + 1;
  bad.prefix = &wrong_length;
  expect_error(bad, "prefix keys/values of layer 0 are not [2, 2, 51, 16]");
  bad = in;
  auto cache = model().make_kv_cache(2, T);
  bad.cache = &cache;
  expect_error(bad, "a forward with a KV cache cannot reuse prefix keys/values");
  // Capturing under text-layer checkpointing while grads are recorded would keep no graph.
  torch::AutoGradMode grad(true);
  auto ckpt = cm::Qwen3VL::load(kFixture);
  ckpt.set_gradient_checkpointing(true, false);
  cm::ForwardInputs cap = in;
  cap.prefix = nullptr;
  cap.capture_prefix = &prefix;
  try {
    ckpt.forward(cap);
    ADD_FAILURE() << "capture under checkpointing must throw";
  } catch (const coordexp::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("gradient checkpointing"), std::string::npos) << e.what();
  }
}
