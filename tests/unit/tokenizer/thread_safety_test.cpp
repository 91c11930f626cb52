// Concurrent encodes (shared BPE cache, pooled regex scratch) give exactly the serial results.
#include <thread>

#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

TEST(TokenizerThreads, ConcurrentEncodesEqualSerial) {
  if (!have_qwen()) FAIL() << missing_qwen_message();
  // A fresh tokenizer so the word cache starts cold and fills concurrently.
  auto tok = Tokenizer::from_dir(qwen_dir());
  tok->ensure_coord_tokens();
  const auto& cases = golden_cases();
  std::vector<std::vector<TokenId>> serial;
  for (const auto& c : cases) serial.push_back(qwen()->encode(c.text));

  constexpr int kThreads = 4;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (size_t k = 0; k < cases.size(); ++k) {
          const size_t i = (k * 7 + static_cast<size_t>(t) * 13 + static_cast<size_t>(round)) % cases.size();
          if (tok->encode(cases[i].text) != serial[i]) ++mismatches[t];
          if (tok->encode_with_offsets(cases[i].text).size() != serial[i].size()) ++mismatches[t];
        }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
