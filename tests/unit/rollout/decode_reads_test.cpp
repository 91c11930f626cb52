// Decode steps read nothing back from the device. Every op LibTorch dispatches is observed through
// its RecordFunction hooks; the ops that bring a device value to the host or need one to size their
// output (.item(), nonzero, masked_select, a tensor's truth value: each a device sync on CUDA) must
// not run in a KV-cache decode forward (rows of different lengths, with an image in the prefill),
// and the greedy generator's decode loop must add none of them per token. The prefill keeps its
// checks: out-of-range ids and <|image_pad|> ids without vision features still fail by name, and
// so do they in a decode step (its host ids are scanned on the host).
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "coordexp/util/error.h"

#include "tiny_rows.h"

namespace cm = coordexp::model;
namespace cr = coordexp::rollout;
using namespace coordexp::rollout::testing;

namespace {

// Op names whose kernels read a device value on the host.
const std::set<std::string>& read_ops() {
  static const std::set<std::string> ops = {"aten::item",        "aten::_local_scalar_dense", "aten::nonzero",
                                            "aten::masked_select", "aten::is_nonzero",         "aten::equal",
                                            "aten::allclose",    "aten::_unique2",            "aten::unique_consecutive"};
  return ops;
}

thread_local std::vector<std::string>* g_reads = nullptr;

// Records, on this thread, the read ops dispatched while it lives.
class ReadLog {
 public:
  ReadLog() {
    g_reads = &reads_;
    handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(
        [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
          if (g_reads && read_ops().count(fn.name())) g_reads->push_back(fn.name());
          return nullptr;
        }));
  }
  ~ReadLog() {
    at::removeCallback(handle_);
    g_reads = nullptr;
  }
  const std::vector<std::string>& reads() const { return reads_; }

 private:
  std::vector<std::string> reads_;
  at::CallbackHandle handle_;
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + " ";
  return s;
}

}  // namespace

TEST(DecodeReads, TheObserverSeesReads) {
  // The hook itself: .item() and nonzero are seen (else the tests below would pass vacuously).
  ReadLog log;
  const auto t = torch::arange(5);
  (void)t.max().item<int64_t>();
  (void)t.gt(2).nonzero();
  EXPECT_EQ(log.reads().size(), 3u) << joined(log.reads());  // item + _local_scalar_dense + nonzero
}

TEST(DecodeReads, KvCacheDecodeStepReadsNothingBack) {
  torch::NoGradGuard no_grad;
  auto& m = model();
  // Three right-padded rows of different lengths, one with an image: the decode offsets differ.
  const auto rs = rows();
  const std::vector<Row> batch{rs[0], rs[1], rs[2]};
  const auto req = request(batch);
  const int64_t B = 3;
  int64_t T = 0;
  for (const auto& r : batch) T = std::max<int64_t>(T, r.prompt.size());
  auto ids = torch::zeros({B, T}, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = batch[b].prompt;
    ids[b].slice(0, 0, p.size()).copy_(torch::tensor(p, torch::kLong));
    mask[b].slice(0, 0, p.size()).fill_(1);
  }
  auto vision = m.encode_images(req.pixel_values, req.image_grid_thw);
  auto cache = m.make_kv_cache(B, T + 8);
  cm::ForwardInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.vision = &vision;
  in.cache = &cache;
  in.logits = cm::LogitsRequest::last();
  auto next = m.forward(in).logits.argmax(1).contiguous();
  for (int step = 0; step < 4; ++step) {
    std::vector<int64_t> host(next.data_ptr<int64_t>(), next.data_ptr<int64_t>() + B);
    cm::ForwardInputs d;
    d.input_ids = torch::tensor(host, torch::kLong).view({B, 1});
    d.cache = &cache;
    d.logits = cm::LogitsRequest::last();
    torch::Tensor logits;
    {
      ReadLog log;
      logits = m.forward(d).logits;
      EXPECT_TRUE(log.reads().empty()) << "decode step " << step << " read back: " << joined(log.reads());
    }
    next = logits.argmax(1).contiguous();
  }
}

TEST(DecodeReads, GreedyGenerateAddsNoReadsPerToken) {
  // rows 1 and 3: one without an image, one with; different lengths. The reads of a whole generate
  // with 1 new token (prefill only) and with 6 (5 decode steps) must be the same.
  const auto rs = rows();
  const auto req = request({rs[1], rs[3]});
  auto count = [&](int64_t new_tokens) {
    ReadLog log;
    const auto res = cr::generate(model(), req, greedy(new_tokens));
    EXPECT_EQ(res.rows[0].ids.size(), static_cast<size_t>(new_tokens));
    return log.reads();
  };
  const auto one = count(1), six = count(6);
  EXPECT_EQ(six.size(), one.size()) << "prefill: " << joined(one) << "\nwith 5 decode steps: " << joined(six);
}

TEST(DecodeReads, PrefillAndDecodeStillCheckIds) {
  torch::NoGradGuard no_grad;
  auto& m = model();
  auto expect_error = [&](cm::ForwardInputs& in, const std::string& what) {
    try {
      m.forward(in);
      ADD_FAILURE() << "no error for " << what;
    } catch (const coordexp::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  for (int64_t bad : {int64_t{-1}, kVocab, kVocab + 100}) {
    cm::ForwardInputs in;
    in.input_ids = torch::tensor({kImStart, int64_t{872}, bad}, torch::kLong).unsqueeze(0);
    in.logits = cm::LogitsRequest::last();
    expect_error(in, "outside [0, 2051)");
  }
  // A decode step after a good prefill: a bad id, then an image pad without vision features.
  auto cache = m.make_kv_cache(1, 16);
  cm::ForwardInputs p;
  p.input_ids = torch::tensor({kImStart, int64_t{872}, int64_t{198}}, torch::kLong).unsqueeze(0);
  p.cache = &cache;
  p.logits = cm::LogitsRequest::last();
  m.forward(p);
  cm::ForwardInputs d;
  d.input_ids = torch::full({1, 1}, kVocab, torch::kLong);
  d.cache = &cache;
  d.logits = cm::LogitsRequest::last();
  expect_error(d, "outside [0, 2051)");
  cache.reset();
  m.forward(p);
  d.input_ids = torch::full({1, 1}, kImage, torch::kLong);
  expect_error(d, "<|image_pad|> tokens but no vision features");
}
