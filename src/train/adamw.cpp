// AdamW on row slices: the torch::optim::AdamW arithmetic (decoupled decay, mul/add moment updates,
// bias corrections from std::pow, addcdiv) applied to views of the parameters, state kept per slice,
// float32 master copies of lower-precision (bf16) parameters, and the state's round trip through named
// tensors for safetensors checkpoints.
#include "coordexp/train/adamw.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "coordexp/util/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define COORDEXP_ADAMW_AVX2 1
#endif

namespace coordexp::train {
namespace {

const char* const kExpAvg = ".exp_avg";
const char* const kExpAvgSq = ".exp_avg_sq";
const char* const kStep = ".step";
const char* const kMaster = ".master";

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// The scalars of one slice's update, each rounded to float32 exactly where the tensor-op update's
// Scalar arguments are (LibTorch casts a Scalar to the float tensor's dtype before the kernel runs).
struct UpdateCoefficients {
  bool decay = false;        // p.mul_(1 - lr x wd) only when wd != 0, as in the op-by-op update
  float keep = 1.0f;         // 1 - lr x wd
  float beta1 = 0.0f, one_minus_beta1 = 0.0f;
  float beta2 = 0.0f, one_minus_beta2 = 0.0f;
  float sqrt_bias_correction2 = 1.0f;
  float eps = 0.0f;
  float neg_step = 0.0f;     // -lr / bias_correction1
};

#ifdef COORDEXP_ADAMW_AVX2
// One pass over n contiguous float32 elements: reads p, g, m, v once and writes p, m, v once, instead
// of the ~20 element streams of the nine tensor ops below. Each line is one of those ops, with the
// rounding LibTorch's AVX2 kernels give it (1.13 and 2.x: `add_(g, alpha)` is fmadd(g, alpha, m);
// `addcmul_` is m + (value * g) * g; `addcdiv_` is p + (value * m) / d; mul, div, sqrt and add
// round once each); the project compiles in ISO C++ mode, so GCC contracts nothing here by itself.
// The last n % 8 elements go through the same vector code from a padded copy.
__attribute__((target("avx2,fma"))) inline void update8(float* pp, const float* gp, float* mp, float* vp,
                                                        const UpdateCoefficients& c) {
  __m256 pv = _mm256_loadu_ps(pp);
  const __m256 gv = _mm256_loadu_ps(gp);
  __m256 mv = _mm256_loadu_ps(mp), vv = _mm256_loadu_ps(vp);
  if (c.decay) pv = _mm256_mul_ps(pv, _mm256_set1_ps(c.keep));  // p.mul_(1 - lr wd)
  // m.mul_(b1).add_(g, 1 - b1)
  mv = _mm256_fmadd_ps(gv, _mm256_set1_ps(c.one_minus_beta1), _mm256_mul_ps(mv, _mm256_set1_ps(c.beta1)));
  // v.mul_(b2).addcmul_(g, g, 1 - b2)
  vv = _mm256_add_ps(_mm256_mul_ps(vv, _mm256_set1_ps(c.beta2)),
                     _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(c.one_minus_beta2), gv), gv));
  // d = v.sqrt().div_(sqrt(bc2)).add_(eps)
  const __m256 d = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), _mm256_set1_ps(c.sqrt_bias_correction2)),
                                 _mm256_set1_ps(c.eps));
  // p.addcdiv_(m, d, -lr / bc1)
  pv = _mm256_add_ps(pv, _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(c.neg_step), mv), d));
  _mm256_storeu_ps(pp, pv);
  _mm256_storeu_ps(mp, mv);
  _mm256_storeu_ps(vp, vv);
}

__attribute__((target("avx2,fma"))) void adamw_update_avx2(float* p, const float* g, float* m, float* v, int64_t n,
                                                            const UpdateCoefficients& c) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) update8(p + i, g + i, m + i, v + i, c);
  if (i < n) {
    const size_t rest = static_cast<size_t>(n - i) * sizeof(float);
    alignas(32) float bp[8] = {}, bg[8] = {}, bm[8] = {}, bv[8] = {};
    std::memcpy(bp, p + i, rest);
    std::memcpy(bg, g + i, rest);
    std::memcpy(bm, m + i, rest);
    std::memcpy(bv, v + i, rest);
    update8(bp, bg, bm, bv, c);
    std::memcpy(p + i, bp, rest);
    std::memcpy(m + i, bm, rest);
    std::memcpy(v + i, bv, rest);
  }
}
#endif

bool fusable(const torch::Tensor& p32, const torch::Tensor& g32, const torch::Tensor& m, const torch::Tensor& v) {
  for (const torch::Tensor* t : {&p32, &g32, &m, &v})
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat || !t->is_contiguous()) return false;
  return true;
}

}  // namespace

bool AdamW::fused_kernel_available() {
#ifdef COORDEXP_ADAMW_AVX2
  static const bool available = [] {
    // LibTorch runs its AVX2 (or AVX512: the same per-element rounding) kernels unless told otherwise;
    // with its scalar "default" kernels (ATEN_CPU_CAPABILITY=default) `add_(g, alpha)` rounds twice,
    // so the one-pass update would no longer be the same arithmetic.
    const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
    const bool aten_vectorized = !(cap && std::string(cap) == "default");
    return aten_vectorized && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return available;
#else
  return false;
#endif
}

AdamW::AdamW(const std::vector<ParamSlice>& slices, AdamWSettings settings) : settings_(settings) {
  std::set<const void*> trainable_tensors;
  for (const auto& s : slices) {
    if (settings_.of(s.group).frozen) continue;
    slices_.push_back(s);
    trainable_tensors.insert(s.param.unsafeGetTensorImpl());
  }
  for (const auto& s : slices) {
    torch::Tensor p = s.param;  // shallow copy: shares the TensorImpl
    p.requires_grad_(trainable_tensors.count(p.unsafeGetTensorImpl()) > 0);
  }
  state_.resize(slices_.size());
}

void AdamW::set_group_multipliers(ParamGroup g, double lr_mult, double weight_decay_mult) {
  auto& gs = settings_.groups[static_cast<int>(g)];
  gs.lr_mult = lr_mult;
  gs.weight_decay_mult = weight_decay_mult;
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  const double beta1 = settings_.beta1, beta2 = settings_.beta2;
  for (size_t i = 0; i < slices_.size(); ++i) {
    const ParamSlice& slice = slices_[i];
    const torch::Tensor grad = slice.grad();
    if (!grad.defined()) continue;
    const GroupSettings& gs = settings_.of(slice.group);
    const double group_lr = lr * gs.lr_mult;
    const double wd = !slice.decay               ? 0.0
                      : gs.weight_decay_abs >= 0.0 ? gs.weight_decay_abs
                                                   : settings_.weight_decay * gs.weight_decay_mult;

    torch::Tensor p = slice.value();
    const bool is_float = p.scalar_type() == torch::kFloat;
    const torch::Tensor g32 = grad.scalar_type() == torch::kFloat ? grad : grad.to(torch::kFloat);

    SliceState& st = state_[i];
    if (!is_float && !st.master.defined()) st.master = p.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
    torch::Tensor p32 = is_float ? p : st.master;  // updated in place
    if (!st.exp_avg.defined()) {
      st.exp_avg = torch::zeros_like(p32, torch::MemoryFormat::Preserve);
      st.exp_avg_sq = torch::zeros_like(p32, torch::MemoryFormat::Preserve);
    }
    st.step += 1;
    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(st.step));
    const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(st.step));
#ifdef COORDEXP_ADAMW_AVX2
    if (settings_.fused && fused_kernel_available() && fusable(p32, g32, st.exp_avg, st.exp_avg_sq)) {
      UpdateCoefficients c;
      c.decay = wd != 0.0;
      c.keep = static_cast<float>(1 - group_lr * wd);
      c.beta1 = static_cast<float>(beta1);
      c.one_minus_beta1 = static_cast<float>(1 - beta1);
      c.beta2 = static_cast<float>(beta2);
      c.one_minus_beta2 = static_cast<float>(1 - beta2);
      c.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2));
      c.eps = static_cast<float>(settings_.eps);
      c.neg_step = static_cast<float>(-group_lr / bias_correction1);
      float* pp = p32.data_ptr<float>();
      const float* gp = g32.data_ptr<float>();
      float* mp = st.exp_avg.data_ptr<float>();
      float* vp = st.exp_avg_sq.data_ptr<float>();
      // Elementwise: any split gives the same bits. 64k elements per task keeps the pool's overhead
      // small next to the ~0.1 ms each chunk takes.
      at::parallel_for(0, p32.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
        adamw_update_avx2(pp + begin, gp + begin, mp + begin, vp + begin, end - begin, c);
      });
      if (!is_float) p.copy_(p32);
      continue;
    }
#endif
    if (wd != 0.0) p32.mul_(1 - group_lr * wd);
    st.exp_avg.mul_(beta1).add_(g32, 1 - beta1);
    st.exp_avg_sq.mul_(beta2).addcmul_(g32, g32, 1 - beta2);
    // In place after the one temporary (same arithmetic as `sqrt() / c`, one 4-byte buffer less per element).
    const torch::Tensor denom = st.exp_avg_sq.sqrt().div_(std::sqrt(bias_correction2)).add_(settings_.eps);
    p32.addcdiv_(st.exp_avg, denom, -group_lr / bias_correction1);
    if (!is_float) p.copy_(p32);
  }
}

void AdamW::zero_grad() {
  for (const auto& s : slices_) {
    torch::Tensor p = s.param;
    p.mutable_grad().reset();
  }
}

util::NamedTensors AdamW::state_tensors() const {
  util::NamedTensors out;
  for (size_t i = 0; i < slices_.size(); ++i) {
    const SliceState& st = state_[i];
    if (!st.exp_avg.defined()) continue;
    const std::string key = slices_[i].state_key();
    out.emplace_back(key + kExpAvg, st.exp_avg);
    out.emplace_back(key + kExpAvgSq, st.exp_avg_sq);
    out.emplace_back(key + kStep, torch::tensor(st.step, torch::kLong));
    if (st.master.defined()) out.emplace_back(key + kMaster, st.master);
  }
  return out;
}

void AdamW::load_state_tensors(const std::map<std::string, torch::Tensor>& named, const std::string& where) {
  std::set<std::string> used;
  std::vector<SliceState> loaded(slices_.size());
  std::vector<std::pair<size_t, torch::Tensor>> pending_copies;  // (slice, master) -> parameter rows
  for (size_t i = 0; i < slices_.size(); ++i) {
    const std::string key = slices_[i].state_key();
    const auto a = named.find(key + kExpAvg), b = named.find(key + kExpAvgSq), s = named.find(key + kStep);
    const int present = (a != named.end()) + (b != named.end()) + (s != named.end());
    if (present == 0) continue;  // never updated before the checkpoint
    if (present != 3)
      throw FormatError("optimizer state of '" + key + "' is incomplete (needs .exp_avg, .exp_avg_sq and .step)",
                        where, "the checkpoint is damaged; resume from an earlier one");
    const auto m = named.find(key + kMaster);
    const torch::Tensor p = slices_[i].value();
    std::vector<std::map<std::string, torch::Tensor>::const_iterator> rows{a, b};
    if (m != named.end()) rows.push_back(m);
    for (const auto& it : rows) {
      if (it->second.sizes() != p.sizes() || it->second.scalar_type() != torch::kFloat)
        throw FormatError("optimizer state tensor '" + it->first + "' has shape " + shape_text(it->second) +
                              " but the parameter rows have shape " + shape_text(p) + " (float32 expected)",
                          where, "resume with the same model and coord vocabulary as the checkpoint");
    }
    if (s->second.numel() != 1 || s->second.scalar_type() != torch::kLong)
      throw FormatError("optimizer step '" + s->first + "' must be one int64", where,
                        "the checkpoint is damaged; resume from an earlier one");
    loaded[i].exp_avg = a->second.to(p.device(), torch::kFloat).clone();
    loaded[i].exp_avg_sq = b->second.to(p.device(), torch::kFloat).clone();
    loaded[i].step = s->second.item<int64_t>();
    used.insert({a->first, b->first, s->first});
    const bool is_float = p.scalar_type() == torch::kFloat;
    if (m != named.end()) {
      used.insert(m->first);
      const torch::Tensor master = m->second.to(p.device(), torch::kFloat);
      if (!is_float) loaded[i].master = master.clone();
      pending_copies.emplace_back(i, master);
    } else if (!is_float) {
      loaded[i].master = p.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
    }
  }
  for (const auto& [name, tensor] : named) {
    (void)tensor;
    if (!used.count(name))
      throw FormatError("optimizer state tensor '" + name + "' belongs to no trainable parameter slice", where,
                        "a group frozen now was trained in the checkpoint (or the model differs); keep "
                        "optim.<group>.freeze as it was when the checkpoint was written");
  }
  state_ = std::move(loaded);
  torch::NoGradGuard no_grad;  // only after every check passed: a failed load changes nothing
  for (const auto& [i, master] : pending_copies) {
    torch::Tensor p = slices_[i].value();
    p.copy_(master);
  }
}

// One host read per device, not one per parameter (on CUDA each .item() is a device sync): each
// gradient's float32 norm stays on its device, their squares are summed there in float64, and only
// the per-device sums come back.
double grad_norm(const std::vector<ParamSlice>& slices) {
  torch::NoGradGuard no_grad;
  std::vector<std::pair<torch::Device, std::vector<torch::Tensor>>> by_device;
  for (const auto& s : slices) {
    const torch::Tensor g = s.grad();
    if (!g.defined()) continue;
    auto it = std::find_if(by_device.begin(), by_device.end(), [&](const auto& d) { return d.first == g.device(); });
    if (it == by_device.end()) it = by_device.insert(by_device.end(), {g.device(), {}});
    it->second.push_back(g.to(torch::kFloat).norm().reshape({1}));
  }
  double sum_sq = 0.0;
  for (const auto& [device, norms] : by_device)
    sum_sq += torch::cat(norms).to(torch::kDouble).pow(2).sum().item<double>();
  return std::sqrt(sum_sq);
}

void scale_grads(const std::vector<ParamSlice>& slices, double factor) {
  torch::NoGradGuard no_grad;
  for (const auto& s : slices) {
    torch::Tensor g = s.grad();
    if (g.defined()) g.mul_(factor);
  }
}

double clip_factor(double norm, double max_norm) {
  if (max_norm > 0.0 && norm > max_norm) return max_norm / (norm + 1e-6);
  return 1.0;
}

std::string first_nonfinite_grad(const std::vector<ParamSlice>& slices) {
  torch::NoGradGuard no_grad;
  for (const auto& s : slices) {
    const torch::Tensor g = s.grad();
    if (g.defined() && !torch::isfinite(g).all().item<bool>()) return s.state_key();
  }
  return {};
}

}  // namespace coordexp::train
