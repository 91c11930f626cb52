// bench_head_ce: LM head + token CE of K answer rows, full [K, V] logits vs the chunked head
// (coord/head_ce.h), forward + backward, one mode per process so peak RSS is the mode's own.
//   bench_head_ce --mode full|chunked [--rows 1024] [--hidden 1024] [--vocab 152670] [--chunk 256] [--iters 3]
// Prints ms per forward + backward (median of iters after one warm-up) and the process's peak RSS
// (the weight, its gradient and the hidden rows are common to both modes). CPU, float32.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "coordexp/coord/decode.h"
#include "coordexp/coord/head_ce.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "chunked";
  int64_t K = 1024, H = 1024, V = 152670, chunk = 256, iters = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode") mode = v;
    else if (k == "--rows") K = std::stoll(v);
    else if (k == "--hidden") H = std::stoll(v);
    else if (k == "--vocab") V = std::stoll(v);
    else if (k == "--chunk") chunk = std::stoll(v);
    else if (k == "--iters") iters = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (mode != "full" && mode != "chunked") {
    std::fprintf(stderr, "--mode full|chunked\n");
    return 2;
  }
  torch::manual_seed(0);
  const int64_t first = V - coordexp::coord::CoordIdRange::kNumBins - 1;
  torch::Tensor hidden = torch::randn({K, H}).requires_grad_(true);
  torch::Tensor weight = (torch::randn({V, H}) * 0.02).requires_grad_(true);
  const torch::Tensor targets = torch::randint(0, V, {K}, torch::kLong);
  const torch::Tensor term = torch::randint(0, 3, {K}, torch::kLong);
  const torch::Tensor row_w = torch::ones({K});
  const torch::Tensor coord_grad = torch::randn({K, coordexp::coord::CoordIdRange::kNumBins}) * 1e-3;
  const std::array<double, 3> scale{1.0 / K, 1.0 / K, 1.0 / K};
  std::vector<double> ms;
  for (int64_t it = 0; it <= iters; ++it) {
    hidden.mutable_grad() = torch::Tensor();
    weight.mutable_grad() = torch::Tensor();
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor loss;
    if (mode == "full") {
      const torch::Tensor logits = torch::matmul(hidden, weight.t());
      const torch::Tensor ce = torch::nn::functional::cross_entropy(
          logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
      loss = (ce * row_w).sum() / K + (logits.narrow(1, first, coordexp::coord::CoordIdRange::kNumBins) * coord_grad).sum();
    } else {
      const auto r = coordexp::coord::chunked_head_ce(hidden, weight, targets, term, row_w, first, scale, chunk);
      loss = r.term_sums.sum() / K + (r.coord_logits * coord_grad).sum();
    }
    loss.backward();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (it > 0) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("mode %-7s rows %lld hidden %lld vocab %lld chunk %lld: %.1f ms per forward+backward (median of %zu), "
              "peak RSS %.0f MiB, second passes %lld\n",
              mode.c_str(), static_cast<long long>(K), static_cast<long long>(H), static_cast<long long>(V),
              static_cast<long long>(chunk), ms[ms.size() / 2], ms.size(), peak_rss_mib(),
              static_cast<long long>(coordexp::coord::chunked_head_backward_passes()));
  return 0;
}
