// The Stage-1 training loop (trainer.h): setup (runtime, tokenizer, model, datasets, loader, optimizer,
// resume), the optimizer step (global counts -> per-micro-batch normalized backward -> NaN/Inf guard ->
// clip -> AdamW), validation, metrics/progress, and checkpoint contents (HF model dir + trainer_state/).
#include "coordexp/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "coordexp/config/schema.h"
#include "coordexp/data/dataset.h"
#include "coordexp/data/loader.h"
#include "coordexp/eval/evaluate.h"
#include "coordexp/eval/predict.h"
#include "coordexp/model/adapter.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/train/adamw.h"
#include "coordexp/train/b_sampler.h"
#include "coordexp/train/channel_a_step.h"
#include "coordexp/train/channel_b_step.h"
#include "coordexp/train/checkpoint.h"
#include "coordexp/train/param_groups.h"
#include "coordexp/train/progress.h"
#include "coordexp/train/rng_state.h"
#include "coordexp/train/rollout_actor.h"
#include "coordexp/train/rollout_queue.h"
#include "coordexp/train/schedule.h"
#include "coordexp/train/stage1_step.h"
#include "coordexp/train/step_router.h"
#include "coordexp/train/stop_signal.h"
#include "coordexp/train/trainer_state.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"
#include "coordexp/util/threads.h"

namespace coordexp::train {
namespace fs = std::filesystem;
namespace {

// Files of a Hugging Face model directory that travel with every checkpoint unchanged (the weights,
// config.json and the tokenizer files are written from the live objects).
const char* const kAuxiliaryFiles[] = {"preprocessor_config.json", "video_preprocessor_config.json",
                                       "generation_config.json",   "chat_template.json",
                                       "chat_template.jinja",      "special_tokens_map.json",
                                       "vocab.json",               "merges.txt"};

const char* const kStateDir = "trainer_state";
const char* const kOptimizerFile = "optimizer.safetensors";
const char* const kRngFile = "rng.safetensors";
const char* const kExactParamsFile = "exact_params.safetensors";
const char* const kConfigYaml = "config.yaml";

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Every option as dotted key -> value text, for the resume diff.
class FlattenVisitor : public config::SchemaVisitor {
 public:
  std::map<std::string, std::string> out;

 protected:
  void on_field(const config::Field& f, config::FieldRef ref) override { out[key_of(f.name())] = config::format_value(ref); }
};

std::map<std::string, std::string> flatten(config::RunConfig c) {
  FlattenVisitor v;
  visit_fields(v, c);
  return v.out;
}

// train.device / train.precision refine the model section's runtime choices.
config::ModelOptions effective_model_options(const config::RunConfig& c) {
  config::ModelOptions m = c.model;
  if (c.train.device != "auto") {
    if (m.device != "auto" && m.device != c.train.device)
      throw ConfigError("train.device is " + c.train.device + " but model.device is " + m.device,
                        "key train.device", "set only one of them, or make them agree");
    m.device = c.train.device;
  }
  if (c.train.precision == "fp32") m.cuda_autocast = false;
  if (c.train.precision == "bf16") m.cuda_autocast = true;
  return m;
}

model::ModelRuntime resolve_runtime(const config::RunConfig& c) {
  model::ModelRuntime r = model::ModelRuntime::from_options(effective_model_options(c));
  if (c.train.precision == "bf16" && !r.device.is_cuda())
    spdlog::warn("train.precision bf16 applies to CUDA only; this run computes in float32 on {}", r.device.str());
  return r;
}

AdamWSettings adamw_settings(const config::OptimOptions& o) {
  AdamWSettings s;
  s.beta1 = o.betas.at(0);
  s.beta2 = o.betas.at(1);
  s.eps = o.eps;
  s.weight_decay = o.weight_decay;
  s.fused = o.fused;
  auto group = [](const config::ParamGroupOptions& g) { return GroupSettings{g.lr_mult, g.weight_decay_mult, g.freeze}; };
  s.groups[static_cast<int>(ParamGroup::kVision)] = group(o.vision);
  s.groups[static_cast<int>(ParamGroup::kMerger)] = group(o.merger);
  s.groups[static_cast<int>(ParamGroup::kLanguageModel)] = group(o.language_model);
  s.groups[static_cast<int>(ParamGroup::kCoordRows)] = group(o.coord_rows);
  // The coord-offset table: an absolute peak lr (following the same schedule) and weight decay.
  GroupSettings& offset = s.groups[static_cast<int>(ParamGroup::kCoordOffset)];
  if (o.coord_offset.lr > 0.0) {
    if (!(o.lr > 0.0))
      throw ConfigError("optim.coord_offset.lr is set but optim.lr is 0: the table's lr follows optim.lr's schedule",
                        "optim.coord_offset.lr", "set optim.lr > 0, or optim.coord_offset.lr: 0");
    offset.lr_mult = o.coord_offset.lr / o.lr;
  }
  offset.weight_decay_abs = o.coord_offset.weight_decay;
  return s;
}

std::map<std::string, torch::Tensor> read_all_tensors(const std::string& path) {
  const auto file = util::SafetensorsFile::open(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& info : file->tensors()) out[info.name] = file->tensor(info.name);
  return out;
}

std::string join_nonfinite(const coord::TermSums& sums, const coord::TermActive& active, coord::IouKind iou) {
  std::string s;
  for (int i = 0; i < coord::kNumTerms; ++i)
    if (active[i] && !std::isfinite(sums[i]))
      s += (s.empty() ? "" : ", ") + coord::term_name(static_cast<coord::Term>(i), iou) + " = " +
           (std::isnan(sums[i]) ? "nan" : "inf");
  return s;
}

// The trainable parameters, each tensor once (slices may share one).
std::vector<torch::Tensor> trainable_params(const std::vector<ParamSlice>& slices) {
  std::vector<torch::Tensor> out;
  const void* last = nullptr;
  for (const auto& s : slices) {
    if (s.param.unsafeGetTensorImpl() == last) continue;
    last = s.param.unsafeGetTensorImpl();
    out.push_back(s.param);
  }
  return out;
}

// The gradients to sum over ranks, the same list on every rank. A rank whose micro-batches left a
// parameter without a gradient (an empty or loss-free batch) gets zeros for it when another rank
// has one; a parameter no rank touched keeps no gradient, as in a single-process run. One small
// collective agrees on which gradients exist.
std::vector<torch::Tensor> gradients_to_reduce(const std::vector<ParamSlice>& slices, StepReducer& reducer) {
  const std::vector<torch::Tensor> params = trainable_params(slices);
  std::vector<int64_t> defined;
  for (const auto& p : params) defined.push_back(p.grad().defined() ? 1 : 0);
  if (reducer.world_size() > 1) reducer.sum(defined);
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < params.size(); ++i) {
    if (defined[i] == 0) continue;
    torch::Tensor p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    out.push_back(p.grad());
  }
  return out;
}

// Each rank's skip counts summed over ranks (one collective; every rank calls it at the same
// points). The ranks agree on the keys through a fixed list, the dataset's reasons (data::kReason*);
// a reason outside it is counted under "other". Reasons no rank saw stay absent.
std::vector<data::ReasonCounts> sum_over_ranks(const std::vector<data::ReasonCounts>& parts, StepReducer& reducer) {
  static const std::vector<std::string> kReasons = {data::kReasonImageUnreadable, data::kReasonImageSizeMismatch,
                                                    data::kReasonImageUnusable, data::kReasonTooLong,
                                                    data::kReasonGeometryNotInPrompt, "other"};
  std::vector<int64_t> flat(parts.size() * kReasons.size(), 0);
  for (size_t p = 0; p < parts.size(); ++p)
    for (const auto& [reason, n] : parts[p]) {
      const auto it = std::find(kReasons.begin(), kReasons.end(), reason);
      flat[p * kReasons.size() + static_cast<size_t>((it == kReasons.end() ? kReasons.end() - 1 : it) - kReasons.begin())] += n;
    }
  if (reducer.world_size() > 1) reducer.sum(flat);
  std::vector<data::ReasonCounts> out(parts.size());
  for (size_t p = 0; p < parts.size(); ++p)
    for (size_t r = 0; r < kReasons.size(); ++r)
      if (const int64_t n = flat[p * kReasons.size() + r]; n > 0) out[p][kReasons[r]] = n;
  return out;
}

// A loader's counters (data::DataLoader::counters) over all ranks: each rank skips within its own
// shard, so data_skipped_* are summed; data_padded_samples / data_dropped_samples are already the
// whole world's (every rank plans the whole epoch: summing them counted each repeat world_size
// times) and data_invalid_* come from the file scan every rank does alike. A collective: every rank
// calls it.
std::map<std::string, int64_t> loader_counters_over_ranks(const data::DataLoader& loader, StepReducer& reducer) {
  std::map<std::string, int64_t> c = loader.counters();
  for (auto it = c.begin(); it != c.end();) it = it->first.rfind("data_skipped_", 0) == 0 ? c.erase(it) : std::next(it);
  const std::vector<data::ReasonCounts> skipped = sum_over_ranks({loader.state().skipped}, reducer);  // named:
  for (const auto& [reason, n] : skipped[0]) c["data_skipped_" + reason] = n;  // [0] of a temporary would dangle
  return c;
}

// Summed statistics of one optimizer step (or one validation pass) across micro-batches.
struct StepStats {
  coord::TermSums sums{};
  coord::TermCounts counts{};
  coord::TermActive active{};
  coord::IouKind iou_kind = coord::IouKind::kCiou;
  int64_t num_samples = 0;
  int64_t num_tokens = 0;
  int64_t num_poly_excluded = 0;
  double data_wait_s = 0.0;       // this rank's time blocked on the loader (token peek + each next())
  ChannelADiagnostics channel_a;  // Channel-A steps only
  ChannelBDiagnostics channel_b;  // Channel-B steps only

  void add_terms(const coord::LossTerms& t) {
    const auto s = t.detached_sums();
    const auto a = t.active();
    for (int i = 0; i < coord::kNumTerms; ++i) {
      sums[i] += s[i];
      active[i] = active[i] || a[i];
    }
    for (bool x : a)
      if (x) iou_kind = t.iou_kind;  // an empty micro-batch's default must not override it
    num_poly_excluded += t.num_poly_excluded;
  }
  // Counts over ranks (before the forwards; one collective).
  void reduce_counts(StepReducer& r) {
    std::vector<int64_t> n(counts.begin(), counts.end());
    r.sum(n);
    std::copy(n.begin(), n.end(), counts.begin());
  }
  // Sums, activity and sizes over ranks (after the forwards; two collectives).
  void reduce_sums(StepReducer& r) {
    std::vector<double> d(sums.begin(), sums.end());
    std::vector<int64_t> n;
    for (bool a : active) n.push_back(a ? 1 : 0);
    n.push_back(num_samples);
    n.push_back(num_tokens);
    n.push_back(num_poly_excluded);
    n.push_back(channel_a.num_slots);
    n.push_back(channel_a.argmax_changed);
    n.push_back(channel_a.decoder_forwards);
    n.push_back(channel_a.reused_positions);
    n.push_back(channel_a.computed_positions);
    d.push_back(channel_a.abs_shift_sum);
    const size_t b_ints = n.size(), b_doubles = d.size();
    ChannelBDiagnostics& b = channel_b;
    for (int64_t* x : b_int_fields()) n.push_back(*x);
    for (int k = 0; k < protocol::kNumDropReasons; ++k)
      n.push_back(b.drop_invalid_by_reason[protocol::drop_reason_name(static_cast<protocol::DropReason>(k))]);
    for (double* x : b_double_fields()) d.push_back(*x);
    r.sum(d);
    r.sum(n);
    {
      size_t i = b_ints;
      for (int64_t* x : b_int_fields()) *x = n[i++];
      b.drop_invalid_by_reason.clear();
      for (int k = 0; k < protocol::kNumDropReasons; ++k, ++i)
        if (n[i] > 0) b.drop_invalid_by_reason[protocol::drop_reason_name(static_cast<protocol::DropReason>(k))] = n[i];
      i = b_doubles;
      for (double* x : b_double_fields()) *x = d[i++];
    }
    std::copy(d.begin(), d.begin() + coord::kNumTerms, sums.begin());
    for (int i = 0; i < coord::kNumTerms; ++i) active[i] = n[static_cast<size_t>(i)] > 0;
    num_samples = n[coord::kNumTerms];
    num_tokens = n[coord::kNumTerms + 1];
    num_poly_excluded = n[coord::kNumTerms + 2];
    channel_a.num_slots = n[coord::kNumTerms + 3];
    channel_a.argmax_changed = n[coord::kNumTerms + 4];
    channel_a.decoder_forwards = n[coord::kNumTerms + 5];
    channel_a.reused_positions = n[coord::kNumTerms + 6];
    channel_a.computed_positions = n[coord::kNumTerms + 7];
    channel_a.abs_shift_sum = d[coord::kNumTerms];
  }
  std::vector<int64_t*> b_int_fields() {
    ChannelBDiagnostics& b = channel_b;
    return {&b.num_rollouts, &b.num_parse_complete, &b.num_invalid_rollout, &b.num_truncated, &b.num_valid_pred,
            &b.num_drop_invalid, &b.num_matched, &b.num_fp, &b.num_fn, &b.num_gt, &b.num_overlength,
            &b.rollout_tokens, &b.y_in_tokens};
  }
  std::vector<double*> b_double_fields() {
    ChannelBDiagnostics& b = channel_b;
    return {&b.rollout_seconds, &b.build_seconds, &b.forward_backward_seconds};
  }
};

// Channel-B metrics of one B step (seed 10.8), from rank-summed diagnostics. Times are summed over
// ranks and divided by the world size: the mean rank's time.
void add_channel_b_metrics(nlohmann::ordered_json& rec, const ChannelBDiagnostics& b, int world_size,
                           const config::MatchingOptions& gates) {
  const double n = static_cast<double>(std::max<int64_t>(b.num_rollouts, 1));
  const double w = static_cast<double>(world_size);
  rec["b_num_rollouts"] = b.num_rollouts;
  rec["b_parse_success_rate"] = static_cast<double>(b.num_parse_complete) / n;
  rec["b_num_valid_pred"] = b.num_valid_pred;
  rec["b_num_drop_invalid"] = b.num_drop_invalid;
  for (const auto& [reason, count] : b.drop_invalid_by_reason) rec["b_drop_" + reason] = count;
  rec["b_num_matched"] = b.num_matched;
  rec["b_num_fp"] = b.num_fp;
  rec["b_num_fn"] = b.num_fn;
  rec["b_num_gt"] = b.num_gt;
  rec["b_invalid_rollout"] = b.num_invalid_rollout;
  rec["b_overlength"] = b.num_overlength;
  rec["b_rollout_len_mean"] = static_cast<double>(b.rollout_tokens) / n;
  rec["b_truncation_rate"] = static_cast<double>(b.num_truncated) / n;
  rec["b_y_in_len_mean"] = static_cast<double>(b.y_in_tokens) / n;
  rec["b_rollout_tokens_per_s"] = b.rollout_seconds > 0 ? static_cast<double>(b.rollout_tokens) / b.rollout_seconds * w : 0.0;
  rec["b_time_rollout_s"] = b.rollout_seconds / w;
  rec["b_time_build_s"] = b.build_seconds / w;
  rec["b_time_forward_backward_s"] = b.forward_backward_seconds / w;
  rec["b_gate_min_iou"] = gates.min_iou.value();
  rec["b_gate_max_l1"] = gates.max_l1.value();
}

// Every rank's `mine` (lengths may differ), in rank order, on every rank: two sums, the lengths and
// the values each in its own segment. All ranks call it.
template <class T>
std::vector<std::vector<T>> gather_over_ranks(const std::vector<T>& mine, StepReducer& r) {
  const auto world = static_cast<size_t>(r.world_size()), rank = static_cast<size_t>(r.rank());
  if (world == 1) return {mine};
  std::vector<int64_t> lengths(world, 0);
  lengths[rank] = static_cast<int64_t>(mine.size());
  r.sum(lengths);
  size_t total = 0, offset = 0;
  for (size_t k = 0; k < world; ++k) {
    if (k == rank) offset = total;
    total += static_cast<size_t>(lengths[k]);
  }
  std::vector<T> flat(total, T{0});
  std::copy(mine.begin(), mine.end(), flat.begin() + static_cast<std::ptrdiff_t>(offset));
  r.sum(flat);
  std::vector<std::vector<T>> out;
  size_t at = 0;
  for (size_t k = 0; k < world; ++k) {
    const auto n = static_cast<size_t>(lengths[k]);
    out.emplace_back(flat.begin() + static_cast<std::ptrdiff_t>(at), flat.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  return out;
}

}  // namespace

struct Trainer::Impl {
  config::RunConfig cfg;
  std::shared_ptr<StepReducer> reducer;
  model::ModelRuntime runtime;
  std::optional<CheckpointInfo> resume_from;
  // The lineage this run writes (trainer_state.h RunLineage); auto-resume and pruning follow it.
  RunLineage lineage;
  std::optional<RunLineage> current_lineage;  // output_dir's run_lineage.json at start, if any
  std::string model_source_dir;  // where the model (and auxiliary files) were loaded from
  // kAuxiliaryFiles of model_source_dir, read at setup: every checkpoint gets them even after that
  // directory is gone (a resumed run's source checkpoint rotated away by keep_last).
  std::vector<std::pair<std::string, std::string>> auxiliary_files;

  std::shared_ptr<tokenizer::Tokenizer> tok;
  std::shared_ptr<const model::ImagePreprocessor> preprocessor;
  std::shared_ptr<const data::DetectionDataset> train_set, val_set;
  data::LoaderOptions loader_options;
  std::unique_ptr<data::DataLoader> loader;
  std::optional<model::Qwen3VL> model;
  coord::CoordIdRange coord_ids;
  bool stage2 = false;  // train.stage: Channel-A / Channel-B steps instead of Stage-1 steps
  ChannelASettings channel_a;
  ChannelBSettings channel_b;
  std::unique_ptr<StepRouter> router;
  std::optional<util::LoadFollowingThreads> load_threads;  // CPU + train.threads_follow_load, > 1 thread
  std::unique_ptr<BSampler> b_sampler;  // stage2, channel_b.producer sync
  // channel_b.producer async: the learner's weights as the actor sees them, this rank's queue and
  // actor (declared in this order: the actor stops before the queue and the model go).
  LearnerWeights learner_weights;
  std::unique_ptr<RolloutQueue> b_queue;
  std::unique_ptr<RolloutActor> actor;
  double actor_start_s = 0.0;
  std::unique_ptr<AdamW> optimizer;
  LrSchedule schedule;
  std::unique_ptr<CheckpointManager> checkpoints;
  std::unique_ptr<MetricsWriter> metrics;
  std::map<std::string, std::string> flat_config;
  std::optional<eval::Predictor> detection_predictor;  // eval.detection, rank 0, built at first use
  int64_t num_detection_evals_skipped = 0;  // rank 0: evals whose inputs could not be read or written

  TrainerState state;
  int64_t total_steps = 0;
  int64_t last_saved_step = -1;
  std::string last_checkpoint;

  bool is_main() const { return reducer->rank() == 0; }

  void setup();
  void follow_load(ProgressReporter& progress);
  // adapter.*: attaches LoRA/DoRA and the coord offset (base frozen), loading them from an adapter
  // checkpoint when resuming from one; refuses a resume whose checkpoint kind does not match.
  void setup_adapters(const std::optional<model::AdapterDir>& from_checkpoint, const std::string& base_dir);
  void load_resume_state();
  // Decides this run's lineage (rank 0, broadcast), records it in output_dir and hands it to the
  // checkpoint manager. `resumed`: the loaded checkpoint's lineage, or nullopt for a fresh start.
  void adopt_lineage(const std::optional<RunLineage>& resumed);
  void log_run_summary() const;
  std::string save_checkpoint();
  // skipped_all_ranks: the loader's skip counts summed over ranks (saved as the run's totals).
  void write_checkpoint_contents(const std::string& dir, const data::ReasonCounts& skipped_all_ranks);
  void run_validation();
  void run_detection_eval();
  TrainResult train_loop();
  // The step function of `kind` on one prepared micro-batch.
  coord::LossTerms step_loss_terms(StepKind kind, const PreparedBatch& pb, StepStats& st);
  data::ReasonCounts b_skipped;  // B samples the dataset could not build, this process's run
  std::string producer_json_for_save;  // async: every rank's RolloutQueue::ProducerState (JSON)
  // async B step: takes the update's ready rollouts from the queue (waiting for them when needed)
  // and collates them into micro-batches; returns the seconds the learner waited.
  double take_b_micro_batches(std::vector<PreparedBatch>& micro, StepStats& st);
  // async: every rank's producer state, gathered to one JSON text (all ranks call it).
  std::string gather_producer_state();
  // async: queue / actor diagnostics of all ranks for a metrics record (all ranks call it).
  void add_async_metrics(nlohmann::ordered_json* rec, double queue_wait_s, double sync_wait_s);
};

// train.threads_follow_load: one load sample per step; a changed count applies to LibTorch and the
// BLAS from this step on (rare: the follower has hysteresis, and a change costs a few ms).
void Trainer::Impl::follow_load(ProgressReporter& progress) {
  const int before = load_threads->current();
  const util::CpuLoad load = util::sample_cpu_load();
  const int n = load_threads->observe(load);
  if (n == before) return;
  util::set_compute_threads(n);
  progress.clear();
  spdlog::info("step {}: {} compute thread(s) of {} ({} other runnable task(s) on {} CPU(s); "
               "train.threads_follow_load)", state.step + 1, n, load_threads->max_threads(),
               load.others_runnable, load.cpus);
}

void Trainer::Impl::setup() {
  if (const char* ws = std::getenv("WORLD_SIZE"); ws && std::atoi(ws) > 1 && reducer->world_size() == 1)
    throw ConfigError(std::string("WORLD_SIZE=") + ws + " but no process group was given to the trainer",
                      "environment WORLD_SIZE", "launch with `coordexp-train train` (it joins the process group), "
                      "or unset WORLD_SIZE for a single process");
  if (cfg.train.num_threads > 0) util::set_compute_threads(cfg.train.num_threads);
  stage2 = cfg.train.stage == "stage2";
  channel_a = ChannelASettings::from_options(cfg.channel_a);
  runtime = resolve_runtime(cfg);
  if (runtime.device.is_cpu() && cfg.train.threads_follow_load && at::get_num_threads() > 1)
    load_threads.emplace(at::get_num_threads());
  if (runtime.device.is_cpu()) {
    // A CPU step allocates and frees tensors of tens of MB (full-vocab logits, embedding gradients,
    // optimizer temporaries). Above glibc's mmap threshold (<= 32 MB) each one is a fresh mmap whose
    // pages fault in again every step; keeping them in the heap measured 1.7x faster on the tiny
    // test model (page faults were ~30% of the time).
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  flat_config = flatten(cfg);
  checkpoints = std::make_unique<CheckpointManager>(cfg.train.output_dir, cfg.checkpoint.keep_last);
  if (is_main()) checkpoints->remove_stale_temps();

  // Where to start: checkpoint.resume = off | auto | <checkpoint dir>.
  const std::string& resume = cfg.checkpoint.resume;
  if (resume == "auto") {
    // Rank 0 picks the checkpoint for everyone, so ranks cannot disagree on the start step: the
    // newest of the lineage run_lineage.json names (the run that last started here), else (a
    // directory from before lineages, or a copied checkpoint) the highest step.
    std::string picked;
    if (is_main()) {
      current_lineage = checkpoints->read_current_lineage();
      resume_from = current_lineage ? checkpoints->latest_in(*current_lineage) : checkpoints->latest();
      picked = resume_from ? resume_from->path : "";
      if (current_lineage) {
        int64_t others = 0;
        for (const auto& c : checkpoints->list()) others += current_lineage->contains(c.run_id, c.step) ? 0 : 1;
        if (others > 0)
          spdlog::info("checkpoint.resume = auto: following run {} ({}); {} checkpoint(s) of other run lineages in {} "
                       "are not resumed (resume one with checkpoint.resume=<its directory>)",
                       current_lineage->run_id, cfg.train.output_dir + "/" + kLineageFile, others, cfg.train.output_dir);
      }
    }
    reducer->broadcast(picked);
    resume_from = picked.empty() ? std::nullopt : std::optional<CheckpointInfo>(CheckpointInfo{0, picked, ""});
    if (!resume_from)
      spdlog::info("checkpoint.resume = auto: no complete checkpoint {}in {}, starting fresh",
                   current_lineage ? "of the current run lineage " : "", cfg.train.output_dir);
  } else if (resume != "off") {
    if (!fs::exists(fs::path(resume) / kCheckpointMarker))
      throw ConfigError("'" + resume + "' is not a complete checkpoint (no " + kCheckpointMarker + ")",
                        "key checkpoint.resume", "use off, auto, or a checkpoint-<step> directory written by train");
    resume_from = CheckpointInfo{0, resume, ""};
  }
  if (!resume_from && cfg.model.path.empty())
    throw ConfigError("no model to train", "key model.path",
                      "set it to a Hugging Face Qwen3-VL directory (coordexp-train make-tiny writes a tiny one)");
  model_source_dir = resume_from ? resume_from->path : cfg.model.path;
  if (!resume_from && !fs::exists(fs::path(cfg.model.path) / "config.json"))
    throw ConfigError("'" + cfg.model.path + "' is not a model directory (no config.json)", "key model.path",
                      "set it to a Hugging Face Qwen3-VL directory (scripts/make-demo-data.sh writes a tiny one)");

  // Tokenizer: a checkpoint carries its own; else tokenizer.path or the model directory.
  const std::string tok_dir =
      resume_from ? resume_from->path : (cfg.tokenizer.path.empty() ? cfg.model.path : cfg.tokenizer.path);
  tok = tokenizer::Tokenizer::from_dir(tok_dir);
  if (cfg.tokenizer.add_coord_tokens) tok->ensure_coord_tokens();
  const tokenizer::CoordVocab cv = tok->coord_vocab();
  if (!cv.valid())
    throw ConfigError("the tokenizer in " + tok_dir + " has no coord tokens", "key tokenizer.add_coord_tokens",
                      "set tokenizer.add_coord_tokens: true");
  if (cfg.tokenizer.expected_coord_wildcard_id >= 0 && cv.wildcard_id != cfg.tokenizer.expected_coord_wildcard_id)
    throw ConfigError("<|coord_*|> has id " + std::to_string(cv.wildcard_id) + ", expected " +
                          std::to_string(cfg.tokenizer.expected_coord_wildcard_id),
                      "key tokenizer.expected_coord_wildcard_id", "use the tokenizer the model was trained with, or -1");
  coord_ids.first_id = cv.first_id;

  // An adapter checkpoint (PEFT layout) holds no base weights: they come from model.path (or the
  // base the checkpoint names).
  std::optional<model::AdapterDir> adapter_checkpoint;
  std::string base_dir = model_source_dir;
  if (resume_from && model::is_adapter_dir(resume_from->path)) {
    adapter_checkpoint = model::read_adapter_dir(resume_from->path);
    base_dir = cfg.model.path.empty() ? adapter_checkpoint->spec.base_model_name_or_path : cfg.model.path;
    if (base_dir.empty() || !fs::exists(fs::path(base_dir) / "config.json"))
      throw ConfigError("checkpoint " + resume_from->path + " holds adapters only and its base model '" + base_dir +
                            "' is not a model directory", "model.path",
                        "set model.path to the base model the adapters were trained on");
  }
  model.emplace(model::Qwen3VL::load(base_dir, runtime));
  for (const char* name : kAuxiliaryFiles)
    if (const fs::path src = fs::path(model_source_dir) / name; fs::exists(src))
      auxiliary_files.emplace_back(name, util::read_file(src.string()));
  model->set_gradient_checkpointing(runtime.checkpoint_text_layers, runtime.checkpoint_vision_blocks);
  const int64_t model_vocab = model->config().text.vocab_size;
  if (model_vocab < static_cast<int64_t>(tok->vocab_size()))
    throw DataError("the model has " + std::to_string(model_vocab) + " token rows but the tokenizer has " +
                        std::to_string(tok->vocab_size()) + " ids",
                    model_source_dir + "/config.json", "add the coord tokens to the model first (coordexp-train expand-vocab)");

  preprocessor = std::make_shared<const model::ImagePreprocessor>(
      model::ImagePreprocessor::from_model_dir(model_source_dir, cfg.preprocess));
  if (cfg.data.train_jsonl.empty())
    throw ConfigError("no training data", "key data.train_jsonl", "list the training JSONL file(s)");
  const data::DatasetOptions dopts = data::DatasetOptions::from_config(cfg.data, cfg.protocol);
  train_set = std::make_shared<const data::DetectionDataset>(cfg.data.train_jsonl, dopts, tok, preprocessor);
  if (!cfg.data.val_jsonl.empty())
    val_set = std::make_shared<const data::DetectionDataset>(cfg.data.val_jsonl, dopts, tok, preprocessor);
  else if (cfg.train.eval_every > 0)
    spdlog::warn("train.eval_every = {} but data.val_jsonl is empty: no validation", cfg.train.eval_every);

  loader_options = data::LoaderOptions::from_config(cfg.data, cfg.train.micro_batch_size,
                                                    static_cast<uint64_t>(cfg.train.seed), reducer->rank(),
                                                    reducer->world_size());
  loader_options.validate();

  setup_adapters(adapter_checkpoint, base_dir);
  // With adapters only they are trained (the frozen base has no slices: no gradient, no state).
  optimizer = std::make_unique<AdamW>(
      partition_parameters(model->has_adapters() ? model->adapter_parameters() : model->named_parameters(),
                           {coord_ids.first_id, coord::CoordIdRange::kNumBins}),
      adamw_settings(cfg.optim));

  data::LoaderState start;
  if (resume_from) {
    load_resume_state();
    start = data::LoaderState::from_json(state.loader_state_json);
    if (reducer->rank() != 0) start.skipped.clear();  // the saved counts are all ranks' totals
  }
  adopt_lineage(resume_from ? std::optional<RunLineage>(state.lineage) : std::nullopt);
  loader = std::make_unique<data::DataLoader>(train_set, loader_options, start);
  router = std::make_unique<StepRouter>(stage2, cfg.stage2, *reducer);
  if (stage2) {
    channel_b = ChannelBSettings::from_config(cfg, *tok);
    if (train_set->size() == 0)
      throw ConfigError("no training samples for Channel-B", "key data.train_jsonl", "check the training data");
    const bool queue_schedule = cfg.stage2.schedule == "queue";
    if (queue_schedule && !channel_b.async_producer)
      throw ConfigError("stage2.schedule is queue but channel_b.producer is sync: the queue schedule routes by "
                        "the rollouts an asynchronous actor has ready", "keys stage2.schedule, channel_b.producer",
                        "set channel_b.producer: async, or stage2.schedule: deterministic");
    if (queue_schedule && cfg.channel_b.version_window < cfg.actor.sync_every)
      throw ConfigError("channel_b.version_window = " + std::to_string(cfg.channel_b.version_window) +
                            " is below actor.sync_every = " + std::to_string(cfg.actor.sync_every) +
                            ": between two refreshes the snapshot's rollouts go stale and B would starve",
                        "keys channel_b.version_window, actor.sync_every",
                        "raise channel_b.version_window to >= actor.sync_every, or refresh more often");
    const int64_t per_update = channel_b.batch_size * cfg.train.grad_accum_steps;
    if (channel_b.async_producer && channel_b.queue_limit < per_update)
      throw ConfigError("channel_b.queue_limit = " + std::to_string(channel_b.queue_limit) + " holds fewer rollouts than "
                            "one B update needs (channel_b.batch_size x train.grad_accum_steps = " +
                            std::to_string(per_update) + ")",
                        "key channel_b.queue_limit", "raise it to at least " + std::to_string(per_update));
    BSampler sampler(train_set->size(), static_cast<uint64_t>(cfg.train.seed), reducer->rank(), reducer->world_size(),
                     state.b_sampler_position);
    if (channel_b.async_producer) {
      // A resumed async run drops the queued rollouts and rolls their samples out again first.
      std::vector<BSampler::Pick> outstanding;
      if (!state.b_producer_json.empty()) {
        const auto j = nlohmann::json::parse(state.b_producer_json);
        const auto& ranks = j.at("ranks");
        if (static_cast<int>(ranks.size()) == reducer->world_size()) {
          const auto& mine = ranks.at(static_cast<size_t>(reducer->rank()));
          sampler = BSampler(train_set->size(), static_cast<uint64_t>(cfg.train.seed), reducer->rank(),
                             reducer->world_size(), mine.at("position").get<int64_t>());
          for (const auto& p : mine.at("outstanding"))
            outstanding.push_back({p.at(0).get<int64_t>(), p.at(1).get<int64_t>()});
        }
      }
      if (!outstanding.empty())
        spdlog::info("resume: {} Channel-B sample(s) were queued or in flight; they are rolled out again first",
                     outstanding.size());
      b_queue = std::make_unique<RolloutQueue>(channel_b.queue_limit, channel_b.version_window, std::move(sampler),
                                               std::move(outstanding));
      b_queue->set_version(state.step);
    } else {
      b_sampler = std::make_unique<BSampler>(std::move(sampler));
    }
  } else if (cfg.channel_b.producer == "async") {
    spdlog::warn("channel_b.producer async applies to train.stage stage2 only; this Stage-1 run has no Channel-B");
  }

  if (cfg.train.max_steps > 0) {
    total_steps = cfg.train.max_steps;
  } else {
    int64_t micro = 0;
    for (int64_t e = 0; e < cfg.train.epochs; ++e) micro += loader->batches_in_epoch(e);
    total_steps = std::max<int64_t>(1, micro / cfg.train.grad_accum_steps);
  }
  schedule = {cfg.optim.lr, cfg.optim.warmup_steps, total_steps, parse_decay_kind(cfg.optim.schedule),
              cfg.optim.min_lr_ratio};
  const std::string metrics_path =
      is_main() && !cfg.log.metrics_jsonl.empty() ? (fs::path(cfg.train.output_dir) / cfg.log.metrics_jsonl).string() : "";
  metrics = std::make_unique<MetricsWriter>(metrics_path, resume_from ? state.step : -1);
  log_run_summary();
}

void Trainer::Impl::setup_adapters(const std::optional<model::AdapterDir>& from_checkpoint, const std::string& base_dir) {
  const config::AdapterOptions& a = cfg.adapter;
  if (!a.any()) {
    if (from_checkpoint)
      throw ConfigError("checkpoint " + resume_from->path + " holds adapters (PEFT layout) but this run has adapter.kind "
                        "none and adapter.coord_offset false", "adapter.kind",
                        "resume with the adapter settings it was written with (its trainer_state/config.yaml)");
    return;
  }
  if (resume_from && !from_checkpoint)
    throw ConfigError("checkpoint " + resume_from->path + " holds full weights (trained without adapters) but this run "
                      "trains adapters", "adapter.kind",
                      "start a new adapter run from its weights: --set model.path=" + resume_from->path +
                      " --set checkpoint.resume=off");
  if (a.lora_on() && a.dropout > 0.0 && (runtime.checkpoint_text_layers || runtime.checkpoint_vision_blocks))
    throw ConfigError("adapter.dropout > 0 with gradient checkpointing: the recomputed forward would draw other dropout "
                      "masks than the first", "adapter.dropout",
                      "set adapter.dropout: 0 (the CoordExp default) or turn model.gradient_checkpointing_* off");
  const model::AdapterSpec spec = model::adapter_spec_from_options(a, model->config(), coord_ids.first_id, base_dir);
  model::attach_adapters(*model, spec, static_cast<uint64_t>(cfg.train.seed));
  if (from_checkpoint) {
    std::string difference;
    if (!model::same_adapter_structure(spec, from_checkpoint->spec, &difference))
      throw ConfigError("the adapter settings differ from checkpoint " + resume_from->path + "'s (" + difference + ")",
                        "adapter", "resume with the adapter settings it was written with (its trainer_state/config.yaml)");
    model::load_adapter_tensors(*model, from_checkpoint->tensors, resume_from->path);
  }
  int64_t trainable = 0, base = 0;
  for (const auto& [k, t] : model->adapter_parameters()) trainable += t.numel();
  for (const auto& [k, t] : model->named_parameters()) base += t.numel();
  spdlog::info("adapters: {} (r {}, alpha {}, dropout {}) on {} linear map(s){}; {} trainable parameters, base ({} "
               "parameters) frozen", model::to_string(spec.kind), spec.rank, spec.alpha, spec.dropout,
               spec.target_modules.size(),
               spec.coord_offset ? (spec.coord_offset_tied ? " + tied coord offset" : " + untied coord offsets") : "",
               trainable, base);
}

void Trainer::Impl::load_resume_state() {
  const fs::path sdir = fs::path(resume_from->path) / kStateDir;
  const std::string state_path = (sdir / "state.json").string();
  state = TrainerState::from_json(util::read_file(state_path), state_path);
  // Each rank's data position is (epoch, batch index) of its own shard: with another world size
  // the same position means other samples. (Older checkpoints did not record it: accepted.)
  if (state.world_size > 0 && state.world_size != reducer->world_size())
    throw ConfigError("checkpoint " + resume_from->path + " was written by a run with " +
                          std::to_string(state.world_size) + " rank(s), this run has " +
                          std::to_string(reducer->world_size()) + " (WORLD_SIZE)",
                      state_path, "resume with " + std::to_string(state.world_size) + " rank(s) (torchrun "
                      "--nproc_per_node/--nnodes, scripts/launch.sh --nproc), or start a new run from its weights: "
                      "--set model.path=" + resume_from->path + " --set checkpoint.resume=off");
  resume_from->step = state.step;
  optimizer->load_state_tensors(read_all_tensors((sdir / kOptimizerFile).string()), (sdir / kOptimizerFile).string());
  {
    const std::string rng_path = (sdir / kRngFile).string();
    const auto rng = read_all_tensors(rng_path);
    if (!rng.count("cpu")) throw FormatError("no 'cpu' generator state", rng_path, "the checkpoint is damaged");
    const GeneratorRestore r = restore_generator_states(run_generators(), rng);
    for (const auto& name : r.not_saved)
      spdlog::warn("resume: {} has no state for the {} generator (written by a run without it); it keeps its seed",
                   rng_path, name);
    for (const auto& name : r.not_here)
      spdlog::warn("resume: {} holds a {} generator state this run has no device for; ignored", rng_path, name);
  }
  // Parameters the HF files store in a narrower dtype than training uses (e.g. bf16 files, float32
  // training) come back exactly from here.
  const fs::path exact = sdir / kExactParamsFile;
  if (fs::exists(exact)) {
    torch::NoGradGuard no_grad;
    const auto params = model->named_parameters();
    for (const auto& [key, t] : read_all_tensors(exact.string())) {
      const auto it = params.find(key);
      if (it == params.end() || it->second.sizes() != t.sizes())
        throw FormatError("tensor '" + key + "' does not match the model", exact.string(), "the checkpoint is damaged");
      it->second.copy_(t);
    }
  }
  spdlog::info("resuming from {} at step {}", resume_from->path, state.step);
  const auto changes = diff_settings(state.config, flat_config, {"checkpoint.resume"});
  for (const auto& c : changes)
    spdlog::info("resume: setting changed: {}: {} -> {}", c.key, c.before.empty() ? "(unset)" : c.before,
                 c.after.empty() ? "(unset)" : c.after);
  if (changes.empty()) spdlog::info("resume: settings unchanged");
  for (const auto& c : changes)
    if (c.key.rfind("data.", 0) == 0 || c.key == "train.micro_batch_size" || c.key == "train.seed" ||
        c.key == "train.grad_accum_steps") {
      spdlog::warn("resume: {} changed; the data position is kept as (epoch, batch index), so with other batches "
                   "some samples of this epoch may be seen twice or not at all",
                   c.key);
      break;
    }
  const std::string here = checkpoints->path_for(state.step);
  std::error_code ec;
  if (fs::exists(fs::path(here) / kCheckpointMarker) &&
      fs::equivalent(here, resume_from->path, ec)) {  // nothing new to save before the next step
    last_saved_step = state.step;
    last_checkpoint = here;
  }
}

void Trainer::Impl::adopt_lineage(const std::optional<RunLineage>& resumed) {
  std::string text;
  if (is_main()) {
    const int64_t step = resumed ? state.step : 0;
    if (!resumed) {
      lineage = RunLineage{new_run_id(), {}};
      spdlog::info("run lineage: new run {} (fresh start)", lineage.run_id);
    } else if (current_lineage && current_lineage->contains(resumed->run_id, step)) {
      lineage = *current_lineage;  // auto-resume inside the lineage that last ran here
      spdlog::info("run lineage: continuing run {} from step {}", lineage.run_id, step);
    } else if (!resumed->run_id.empty() && !checkpoints->run_has_later(resumed->run_id, step)) {
      lineage = *resumed;  // the newest checkpoint of its run: the same run continues
      spdlog::info("run lineage: continuing run {} from step {}", lineage.run_id, step);
    } else {
      // An older checkpoint of its run (that run's later checkpoints are abandoned), or one written
      // before run ids: a new run branches off at this step.
      lineage = resumed->branch(step, new_run_id());
      spdlog::info("run lineage: new run {} branching off run {} at step {}{}", lineage.run_id,
                   resumed->run_id.empty() ? "(unnamed: written before run ids)" : resumed->run_id, step,
                   resumed->run_id.empty() ? "" : " (its later checkpoints are no longer resumed or pruned)");
    }
    checkpoints->write_current_lineage(lineage);
    text = lineage.to_json();
  }
  reducer->broadcast(text);
  lineage = RunLineage::from_json(text, "run lineage from rank 0");
  checkpoints->set_lineage(lineage);
}

void Trainer::Impl::log_run_summary() const {
  if (!is_main()) return;
  const auto n = count_elements(optimizer->trainable());
  std::string groups;
  for (int g = 0; g < kNumParamGroups; ++g) {
    const auto pg = static_cast<ParamGroup>(g);
    groups += std::string(g ? ", " : "") + to_string(pg) + " " +
              (optimizer->settings().of(pg).frozen ? std::string("frozen") : std::to_string(n[g]));
  }
  spdlog::info("model {} on {}: trainable parameters: {}", model_source_dir, runtime.device.str(), groups);
  const auto& r = train_set->load_report();
  spdlog::info("train data: {} samples ({} objects) from {} line(s); {} step(s) of {} x {} micro-batch(es) x {} rank(s)",
               r.num_samples, r.num_objects, r.num_lines, total_steps, cfg.train.micro_batch_size,
               cfg.train.grad_accum_steps, reducer->world_size());
  for (const auto& [reason, count] : r.invalid) spdlog::warn("train data: {} record(s) skipped: {}", count, reason);
  if (val_set) spdlog::info("validation data: {} samples", val_set->size());
  if (stage2) {
    const auto& a = cfg.channel_a;
    spdlog::info("stage2: {} schedule, b_ratio {}: Channel-A {} forward(s), grad {}, context embeddings {} "
                 "(tau_A {}), init {}, prefix reuse {}, geometry decode {}; Channel-B {} rollout(s) per rank per micro-step, "
                 "{} decoding, prefix {}, geo weight {}, geometry decode {}",
                 cfg.stage2.schedule, cfg.stage2.b_ratio, a.n_softctx_iter, a.softctx_grad_mode,
                 a.coord_ctx_embed_mode, a.ctx_tau, a.init,
                 !a.prefix_reuse ? "off" : cfg.model.gradient_checkpointing_text ? "off (gradient checkpointing)" : "on",
                 cfg.coord.decode_mode, channel_b.batch_size,
                 cfg.rollout.decoding, cfg.channel_b.prefix_mode, cfg.channel_b.geo_weight,
                 cfg.channel_b.coord_decode_mode);
    if (channel_b.async_producer)
      spdlog::info("stage2: asynchronous Channel-B producer per rank: version_window {}, queue_limit {}, snapshot "
                   "refresh every {} step(s), learner waits at a lag of {}",
                   channel_b.version_window, channel_b.queue_limit, cfg.actor.sync_every, cfg.actor.max_lag);
    if (cfg.stage2.b_ratio < 1.0 && cfg.loss.geo.weight == 0.0 && cfg.loss.coord_dist.mode == "none")
      spdlog::warn("stage2 with loss.geo.weight = 0 and loss.coord_dist.mode = none: the self-context forwards "
                   "feed no loss, so Channel-A costs {} forwards for a Stage-1 update; set loss.geo.weight",
                   channel_a.override_forwards() + 1);
  }
}

void Trainer::Impl::write_checkpoint_contents(const std::string& dir, const data::ReasonCounts& skipped_all_ranks) {
  if (model->has_adapters()) {  // the frozen base is not copied: the PEFT files + coord offset
    model::AdapterTensors t = model::adapter_tensors(*model);
    for (auto* m : {&t.lora_A, &t.lora_B, &t.magnitude})
      for (auto& [path, x] : *m) x = x.detach();
    if (t.coord_offset_embed.defined()) t.coord_offset_embed = t.coord_offset_embed.detach();
    if (t.coord_offset_lm_head.defined()) t.coord_offset_lm_head = t.coord_offset_lm_head.detach();
    model::write_adapter_dir(dir, model->adapter_spec(), t);
  } else {
    model->save(dir, {torch::kFloat, static_cast<uint64_t>(cfg.checkpoint.max_shard_bytes)});
  }
  tok->save(dir);
  for (const auto& [name, bytes] : auxiliary_files) util::write_file_atomic((fs::path(dir) / name).string(), bytes);
  if (const char* pause = std::getenv(kPauseSaveEnv); pause && std::atoll(pause) == state.step) {
    const char* seconds = std::strchr(pause, ':');  // N:S pauses S seconds, N alone 300
    std::cerr << "test hook: checkpoint save paused at step " << state.step << " in " << dir << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(seconds ? std::atoll(seconds + 1) : 300));
  }
  const fs::path sdir = fs::path(dir) / kStateDir;
  fs::create_directories(sdir);
  util::write_safetensors((sdir / kOptimizerFile).string(), optimizer->state_tensors());
  util::write_safetensors((sdir / kRngFile).string(), generator_states(run_generators()));
  util::NamedTensors exact;
  for (const auto& [key, p] : model->has_adapters() ? std::map<std::string, torch::Tensor>{} : model->named_parameters()) {
    const auto it = model->layout().tensors.find(key);
    if (it != model->layout().tensors.end() && util::st_dtype_to_torch(it->second.dtype) != p.scalar_type())
      exact.emplace_back(key, p.detach());
  }
  if (!exact.empty()) util::write_safetensors((sdir / kExactParamsFile).string(), exact);
  util::write_file_atomic((sdir / kConfigYaml).string(), config::dump_yaml(cfg));
  TrainerState s = state;
  data::LoaderState ls = loader->state();
  ls.skipped = skipped_all_ranks;  // all ranks' (resumed: rank 0 starts from them, the others from 0)
  s.loader_state_json = ls.to_json();
  s.world_size = reducer->world_size();
  if (b_sampler) s.b_sampler_position = b_sampler->position();
  s.b_producer_json = producer_json_for_save;
  s.config = flat_config;
  s.lineage = lineage;
  util::write_file_atomic((sdir / "state.json").string(), s.to_json());  // the completeness marker, last
}

std::string Trainer::Impl::save_checkpoint() {
  if (last_saved_step == state.step) return last_checkpoint;  // the same on every rank
  reducer->set_context("checkpoint save at step " + std::to_string(state.step));
  const data::ReasonCounts skipped = sum_over_ranks({loader->state().skipped}, *reducer)[0];
  if (b_queue) producer_json_for_save = gather_producer_state();
  if (is_main()) {
    const double t0 = now_s();
    last_checkpoint = checkpoints->save(state.step, [&](const std::string& dir) { write_checkpoint_contents(dir, skipped); });
    spdlog::info("saved checkpoint {} ({:.1f} s)", last_checkpoint, now_s() - t0);
  } else {
    last_checkpoint = checkpoints->path_for(state.step);
  }
  last_saved_step = state.step;
  // Only rank 0 writes; the others wait here so none runs ahead (or exits and gets resumed) while
  // the checkpoint is incomplete (dist.save_timeout_s: writing may take much longer than a step).
  reducer->checkpoint_barrier();
  return last_checkpoint;
}

double Trainer::Impl::take_b_micro_batches(std::vector<PreparedBatch>& micro, StepStats& st) {
  const int accum = cfg.train.grad_accum_steps;
  const int64_t need = channel_b.batch_size * accum;
  const double t0 = now_s();
  std::optional<std::vector<RolloutItem>> items;
  while (!(items = b_queue->take_ready(need))) {
    actor->rethrow_if_failed();
    // With a small version_window the current snapshot may never yield fresh items: refresh now.
    if (actor->stats().snapshot_ver < state.step - channel_b.version_window) actor->request_refresh();
    b_queue->wait_ready(need, 0.5);
  }
  const double waited = now_s() - t0;
  size_t next = 0;
  for (int i = 0; i < accum; ++i) {
    std::vector<data::Sample> samples;
    std::vector<BTarget> targets;
    for (int64_t j = 0; j < channel_b.batch_size; ++j, ++next) {
      RolloutItem& item = (*items)[next];
      st.channel_b += item.diagnostics;
      samples.push_back(std::move(item.sample));
      targets.push_back(std::move(item.target));
    }
    micro.push_back(prepare_b_forward(std::move(samples), targets, channel_b, train_set->pad_id()));
    for (int t = 0; t < coord::kNumTerms; ++t) st.counts[t] += micro.back().counts[t];
    st.num_samples += micro.back().batch.size();
    st.num_tokens += micro.back().batch.num_tokens;
  }
  return waited;
}

std::string Trainer::Impl::gather_producer_state() {
  const RolloutQueue::ProducerState p = b_queue->producer_state();
  std::vector<int64_t> mine{p.sampler_position};
  for (const auto& pick : p.outstanding) {
    mine.push_back(pick.index);
    mine.push_back(pick.epoch);
  }
  nlohmann::ordered_json ranks = nlohmann::ordered_json::array();
  for (const auto& v : gather_over_ranks(mine, *reducer)) {
    nlohmann::ordered_json r;
    r["position"] = v.at(0);
    r["outstanding"] = nlohmann::ordered_json::array();
    for (size_t i = 1; i + 1 < v.size(); i += 2) r["outstanding"].push_back({v[i], v[i + 1]});
    ranks.push_back(std::move(r));
  }
  nlohmann::ordered_json j;
  j["ranks"] = std::move(ranks);
  return j.dump();
}

void Trainer::Impl::add_async_metrics(nlohmann::ordered_json* rec, double queue_wait_s, double sync_wait_s) {
  const RolloutQueueStats q = b_queue->stats();
  const RolloutActorStats a = actor->stats();
  const std::vector<int64_t> ints{q.raw, q.ready, q.ready_fresh, q.lag_max, q.dropped_stale, q.dropped_overflow,
                                  a.rollouts, state.step - a.snapshot_ver, a.refreshes};
  const std::vector<double> doubles{q.lag_mean * static_cast<double>(q.raw + q.ready), queue_wait_s, sync_wait_s,
                                    static_cast<double>(a.rollouts) / std::max(now_s() - actor_start_s, 1e-9),
                                    a.rollout_seconds, a.preprocess_seconds};
  const auto all_i = gather_over_ranks(ints, *reducer);
  const auto all_d = gather_over_ranks(doubles, *reducer);
  int64_t raw = 0, ready = 0, fresh = 0, fresh_min = INT64_MAX, lag_max = 0, stale = 0, overflow = 0, rollouts = 0,
          snapshot_lag = 0, refreshes = 0;
  double lag_sum = 0.0, wait_max = 0.0, sync_max = 0.0, rate = 0.0, busy = 0.0, prep = 0.0;
  for (size_t k = 0; k < all_i.size(); ++k) {
    const auto& v = all_i[k];
    const auto& d = all_d[k];
    raw += v[0];
    ready += v[1];
    fresh += v[2];
    fresh_min = std::min(fresh_min, v[2]);
    lag_max = std::max(lag_max, v[3]);
    stale += v[4];
    overflow += v[5];
    rollouts += v[6];
    snapshot_lag = std::max(snapshot_lag, v[7]);
    refreshes += v[8];
    lag_sum += d[0];
    wait_max = std::max(wait_max, d[1]);
    sync_max = std::max(sync_max, d[2]);
    rate += d[3];
    busy += d[4];
    prep += d[5];
  }
  nlohmann::ordered_json& r = *rec;
  r["queue_raw"] = raw;  // summed over ranks
  r["queue_ready"] = ready;
  r["queue_ready_fresh"] = fresh;
  r["queue_ready_fresh_min"] = fresh_min;  // the routing quantity: the least-filled rank
  r["queue_lag_mean"] = raw + ready > 0 ? lag_sum / static_cast<double>(raw + ready) : 0.0;
  r["queue_lag_max"] = lag_max;
  r["queue_dropped_stale"] = stale;        // cumulative, this run
  r["queue_dropped_overflow"] = overflow;
  r["actor_rollouts"] = rollouts;
  r["actor_rollouts_per_s"] = rate;        // wall-clock rate since the actors started, all ranks
  r["actor_busy_s"] = busy / static_cast<double>(all_i.size());  // mean rank's time generating
  r["actor_preprocess_s"] = prep / static_cast<double>(all_i.size());
  r["actor_refreshes"] = refreshes;
  r["actor_snapshot_lag"] = snapshot_lag;  // steps, the most-lagging rank
  r["b_queue_wait_s"] = wait_max;          // this step: the learner's wait for ready rollouts (slowest rank)
  r["actor_sync_wait_s"] = sync_max;       // this step: the learner's wait for a refresh (max_lag)
}

void Trainer::Impl::run_validation() {
  if (!val_set) return;
  torch::NoGradGuard no_grad;
  data::LoaderOptions vo = loader_options;
  vo.shuffle = false;
  vo.drop_last = false;
  vo.exclude_repeats = true;  // the repeats that even out the ranks' batch counts are not scored twice
  data::DataLoader val_loader(val_set, vo);
  int64_t num_batches = val_loader.batches_in_epoch(0);
  if (cfg.train.val_max_batches > 0) num_batches = std::min(num_batches, cfg.train.val_max_batches);
  StepStats st;
  for (int64_t i = 0; i < num_batches; ++i) {
    PreparedBatch pb = prepare_batch(val_loader.next(), cfg.loss);
    for (int t = 0; t < coord::kNumTerms; ++t) st.counts[t] += pb.counts[t];
    st.num_samples += pb.batch.size();
    st.add_terms(stage1_loss_terms(*model, pb, coord_ids, cfg.coord, cfg.loss));
  }
  st.reduce_counts(*reducer);
  st.reduce_sums(*reducer);
  const double loss = total_loss_value(st.sums, st.counts, st.active, cfg.loss);
  nlohmann::ordered_json rec;
  rec["step"] = state.step;
  rec["val_loss"] = loss;
  for (const auto& m : coord::loss_metrics(st.sums, st.counts, st.active, st.iou_kind)) rec["val_" + m.name] = m.value;
  rec["val_samples"] = st.num_samples;
  for (const auto& [k, v] : loader_counters_over_ranks(val_loader, *reducer)) rec["val_" + k] = v;
  if (is_main()) {
    metrics->write(rec);
    spdlog::info("validation at step {}: loss {:.4f} over {} samples", state.step, loss, st.num_samples);
  }
  run_detection_eval();
}

// eval.detection: rank 0 predicts the first eval.max_images val records with the current weights
// (the `infer` path) and scores them as `coordexp-train eval` does; the other ranks wait at the
// barrier (their next collective would wait anyway). Writes eval/step-<N>/{predictions.jsonl,
// metrics.json} for `report` and one metrics.jsonl record with eval_* headline numbers.
void Trainer::Impl::run_detection_eval() {
  if (!cfg.eval.detection || cfg.data.val_jsonl.empty()) return;
  if (is_main()) {
    // The val JSONL is read again here (the dataset holds records, not the raw lines the predictor
    // takes): a file removed or made unreadable mid-run, or an eval output that cannot be written,
    // skips this eval with an error line and a count (eval_detection_skipped) instead of ending the run.
    try {
      const double t0 = now_s();
      torch::NoGradGuard no_grad;
      std::vector<eval::InputRecord> inputs;
      for (const auto& file : cfg.data.val_jsonl) {
        const int64_t room = cfg.eval.max_images - static_cast<int64_t>(inputs.size());
        if (cfg.eval.max_images > 0 && room <= 0) break;
        for (auto& r : eval::read_input_records(file, cfg.eval.max_images > 0 ? room : 0)) {
          r.index = static_cast<int64_t>(inputs.size());
          inputs.push_back(std::move(r));
        }
      }
      if (!detection_predictor) {
        detection_predictor.emplace(cfg, model_source_dir, std::shared_ptr<const tokenizer::Tokenizer>(tok));
        if (cfg.rollout.constrained) detection_predictor->enable_constraint(model->config().text.vocab_size);
      }
      std::vector<nlohmann::ordered_json> lines;
      const auto batch_size = static_cast<size_t>(detection_predictor->batch_size());
      for (size_t begin = 0; begin < inputs.size(); begin += batch_size) {
        std::vector<const eval::InputRecord*> batch;
        for (size_t i = begin; i < std::min(inputs.size(), begin + batch_size); ++i) batch.push_back(&inputs[i]);
        for (auto& l : detection_predictor->predict(*model, batch)) lines.push_back(std::move(l));
      }
      // GT: the contract records of the predicted lines only (the rest of the val set is not scored).
      const data::JsonlOptions jsonl = data::JsonlOptions::from_config(cfg.data, cfg.protocol);
      std::set<std::string> keys;
      for (const auto& in : inputs) keys.insert(in.key);
      std::vector<data::Record> gt_records;
      std::vector<std::string> gt_raw;
      for (const auto& file : cfg.data.val_jsonl) {
        eval::GroundTruth part = eval::read_ground_truth(file, jsonl);
        for (size_t i = 0; i < part.records.size(); ++i)
          if (keys.count(part.raw_images[i])) {
            gt_records.push_back(std::move(part.records[i]));
            gt_raw.push_back(part.raw_images[i]);
          }
      }
      eval::GroundTruth gt = eval::GroundTruth::from_records(std::move(gt_records), jsonl.convention);
      gt.raw_images = std::move(gt_raw);
      gt.file = cfg.data.val_jsonl.front();

      char step_name[32];
      std::snprintf(step_name, sizeof(step_name), "step-%06lld", static_cast<long long>(state.step));
      const fs::path dir = fs::path(cfg.train.output_dir) / "eval" / step_name;
      fs::create_directories(dir);
      const std::string pred_path = (dir / "predictions.jsonl").string();
      std::string text;
      for (const auto& l : lines) text += l.dump() + "\n";
      util::write_file_atomic(pred_path, text);
      const eval::PredictionSet preds = eval::read_predictions(pred_path);
      const eval::EvalResult result = eval::evaluate(gt, preds);
      util::write_file_atomic((dir / "metrics.json").string(), eval::to_json(result).dump(2) + "\n");

      nlohmann::ordered_json rec;
      rec["step"] = state.step;
      std::map<std::string, double> headline;
      for (const auto& [name, value] : eval::headline_metrics(result)) {
        rec["eval_" + name] = value;
        headline[name] = value;
      }
      rec["eval_images"] = static_cast<int64_t>(inputs.size());
      rec["eval_time_s"] = now_s() - t0;
      metrics->write(rec);
      spdlog::info("detection eval at step {}: AP50 {:.3f}, AP {:.3f}, F1@0.5 {:.3f}, parse rate {:.3f} over {} val "
                   "image(s) ({:.1f} s; {})",
                   state.step, headline["AP50"], headline["AP"], headline["f1_50"], headline["parse_rate"],
                   inputs.size(), now_s() - t0, dir.string());
    } catch (const UserError& e) {
      ++num_detection_evals_skipped;
      spdlog::error("detection eval at step {} skipped ({} so far; training goes on): {}", state.step,
                    num_detection_evals_skipped, e.what());
      nlohmann::ordered_json rec;
      rec["step"] = state.step;
      rec["eval_detection_skipped"] = num_detection_evals_skipped;
      metrics->write(rec);
    }
  }
  reducer->barrier();
}

TrainResult Trainer::Impl::train_loop() {
  StopSignalScope stop;
  ProgressReporter progress(is_main() ? resolve_progress_mode(cfg.log.progress) : ProgressMode::kOff);
  TrainResult result;
  result.start_step = state.step;
  result.total_steps = total_steps;
  const int accum = cfg.train.grad_accum_steps;
  const double run_start = now_s();
  double window_start = run_start;
  int64_t window_samples = 0, window_tokens = 0;
  const auto weights = coord::term_weights(cfg.loss);

  const auto stop_planned = [&] { return cfg.train.stop_at_step > 0 && state.step >= cfg.train.stop_at_step; };
  if (stop_planned() && state.step < total_steps) result.stopped_at_step = true;  // resumed at or past it
  const int64_t b_update_items = channel_b.batch_size * accum;
  if (b_queue && state.step < total_steps && !result.stopped_at_step) {
    learner_weights.model = &*model;
    learner_weights.version = state.step;
    // On CPU the actor decodes with one intra-op thread (decode's small ops gain nothing from more)
    // on a core the learner should leave free: more runnable threads than cores make OpenMP / BLIS
    // workers spin-wait for descheduled partners (docs/performance.md).
    const int actor_threads = runtime.device.is_cpu() ? 1 : at::get_num_threads();
    const auto cores = static_cast<int>(std::thread::hardware_concurrency());
    if (runtime.device.is_cpu() && cores > 0 && at::get_num_threads() + actor_threads > cores)
      spdlog::warn("channel_b.producer async on CPU: the learner's {} compute thread(s) and the actor's {} exceed "
                   "the {} hardware threads; set train.num_threads to {} so they do not slow each other down",
                   at::get_num_threads(), actor_threads, cores, std::max(1, cores - actor_threads));
    actor = std::make_unique<RolloutActor>(learner_weights, train_set, channel_b, cfg.actor, *b_queue, actor_threads,
                                           b_update_items);
    actor_start_s = now_s();
    // Test hook: COORDEXP_TEST_ACTOR_DELAY_MS=<rank 0 ms>,<rank 1 ms>,... slows chosen ranks' actors
    // (deliberately unequal queue fill across ranks).
    if (const char* d = std::getenv("COORDEXP_TEST_ACTOR_DELAY_MS"); d && *d) {
      std::stringstream ss(d);
      std::string part;
      for (int r = 0; std::getline(ss, part, ','); ++r)
        if (r == reducer->rank() && !part.empty()) actor->set_batch_delay_ms(std::stoi(part));
    }
  }
  while (state.step < total_steps && !result.stopped_at_step) {
    reducer->set_context("step " + std::to_string(state.step + 1));  // named by a failed collective
    if (load_threads) follow_load(progress);
    // 0. The step's kind, agreed by all ranks; it holds for every micro-batch of the step.
    RouteInputs route;
    route.num_b_steps = state.num_b_steps;
    route.b_ready = b_queue && b_queue->ready_fresh() >= b_update_items;
    const StepKind kind = router->kind_for(state.step, route);
    const bool is_b = kind == StepKind::kChannelB;
    const std::array<double, coord::kNumTerms> step_weights = is_b ? channel_b.term_weights : weights;
    const int64_t gate_step = state.step;

    // 1. The step's supervised-item counts, summed over micro-batches and ranks. Stage-1 / Channel-A:
    // from the token metadata of the step's loader batches (no pixels; each batch is loaded with its
    // pixels right before its forward, so memory holds one micro-batch plus the loader's prefetch).
    // B micro-batches come from the B sampler and are rolled out here (B0-B3), not from the loader.
    std::vector<PreparedBatch> micro;
    std::vector<coord::TermCounts> loader_counts;
    StepStats st;
    double queue_wait_s = 0.0;
    if (!is_b) {
      const double wait_start = now_s();
      std::vector<data::Batch> peeked = loader->peek_tokens(accum);
      st.data_wait_s += now_s() - wait_start;
      for (data::Batch& tokens : peeked) {
        loader_counts.push_back(prepare_batch(std::move(tokens), cfg.loss).counts);
        for (int t = 0; t < coord::kNumTerms; ++t) st.counts[t] += loader_counts.back()[t];
      }
    }
    if (is_b && b_queue) queue_wait_s = take_b_micro_batches(micro, st);
    for (int i = 0; i < accum && is_b && !b_queue; ++i) {
      data::ReasonCounts skipped;
      ChannelBBatch cb = prepare_channel_b(*model, *train_set, b_sampler->next(channel_b.batch_size), state.step,
                                           channel_b, &skipped);
      for (const auto& [reason, n] : skipped) b_skipped[reason] += n;
      st.channel_b += cb.diagnostics;
      micro.push_back(std::move(cb.prepared));
      for (int t = 0; t < coord::kNumTerms; ++t) st.counts[t] += micro.back().counts[t];
      st.num_samples += micro.back().batch.size();
      st.num_tokens += micro.back().batch.num_tokens;
    }
    st.reduce_counts(*reducer);
    // What the step loss will do with each token-CE sum (the chunked head keeps that gradient from
    // its forward instead of going over the vocabulary again in the backward).
    {
      std::array<double, coord::kNumHeadCeTerms> ce_scale{};
      const coord::Term ce_terms[] = {coord::Term::kStructCe, coord::Term::kDescCe, coord::Term::kCoordTokenCe};
      for (int t = 0; t < coord::kNumHeadCeTerms; ++t) {
        const int i = static_cast<int>(ce_terms[t]);
        ce_scale[t] = st.counts[i] > 0 ? step_weights[i] / static_cast<double>(st.counts[i]) : 0.0;
      }
      for (PreparedBatch& pb : micro) pb.ce_grad_scale = ce_scale;
    }

    // 2. Forward + backward of each micro-batch (the step function of its kind), its loss divided by
    // the global counts.
    const double fb_start = now_s();
    const size_t num_micro = is_b ? micro.size() : static_cast<size_t>(accum);
    for (size_t i = 0; i < num_micro; ++i) {
      PreparedBatch loaded;
      if (!is_b) {
        const double wait_start = now_s();
        data::Batch next = loader->next();
        st.data_wait_s += now_s() - wait_start;
        loaded = prepare_batch(std::move(next), cfg.loss);
        st.num_samples += loaded.batch.size();
        st.num_tokens += loaded.batch.num_tokens;
        if (loaded.counts != loader_counts[i]) {
          progress.clear();
          spdlog::warn("step {}: micro-batch {} lost sample(s) while loading its images (data.on_invalid=skip) after "
                       "the step's supervised items were counted; this step's loss is divided by counts that still "
                       "include theirs", state.step + 1, i + 1);
        }
      }
      PreparedBatch& pb = is_b ? micro[i] : loaded;
      const coord::LossTerms terms = step_loss_terms(kind, pb, st);
      st.add_terms(terms);
      const torch::Tensor total = coord::total_loss(terms, st.counts, step_weights);
      if (total.requires_grad() && std::isfinite(total.item<double>())) total.backward();
      pb.batch = {};  // free activations' inputs and pixels early
    }
    if (is_b) st.channel_b.forward_backward_seconds = now_s() - fb_start;
    st.reduce_sums(*reducer);
    ++state.step;
    if (is_b) {
      ++state.num_b_steps;
      if (b_sampler) state.b_sampler_position = b_sampler->position();
      if (actor) b_skipped = actor->skipped();
      // Every rank logs it (train.rank<k>.log): the kinds of all ranks can be compared afterwards.
      const ChannelBDiagnostics& b = st.channel_b;
      progress.clear();
      spdlog::info("step {}: Channel-B: {} rollouts ({} parsed complete, {} invalid), {} valid objects, "
                   "{} matched, {} FP, {} FN of {} GT; rollout {:.2f} s, build {:.2f} s, forward+backward {:.2f} s",
                   state.step, b.num_rollouts, b.num_parse_complete, b.num_invalid_rollout, b.num_valid_pred,
                   b.num_matched, b.num_fp, b.num_fn, b.num_gt, b.rollout_seconds, b.build_seconds,
                   b.forward_backward_seconds);
    }
    state.num_samples += st.num_samples;
    state.num_tokens += st.num_tokens;
    window_samples += st.num_samples;
    window_tokens += st.num_tokens;

    // 3. NaN/Inf guard, clipping, update.
    const double lr = schedule.lr_at(state.step);
    const double loss = total_loss_value(st.sums, st.counts, st.active, step_weights);
    std::string nonfinite = join_nonfinite(st.sums, st.active, st.iou_kind);
    double norm = 0.0;
    if (nonfinite.empty()) {
      const std::vector<torch::Tensor> to_reduce = gradients_to_reduce(optimizer->trainable(), *reducer);
      if (reducer->world_size() > 1 && state.step == result.start_step + 1) {  // once: what DDP moves
        int64_t elements = 0;
        for (const auto& g : to_reduce) elements += g.numel();
        spdlog::info("gradient all-reduce: {} tensor(s), {} element(s) per step", to_reduce.size(), elements);
      }
      reducer->sum_gradients(to_reduce);
      norm = grad_norm(optimizer->trainable());
      if (!std::isfinite(norm)) nonfinite = "gradient of " + first_nonfinite_grad(optimizer->trainable());
    }
    if (!nonfinite.empty()) {
      optimizer->zero_grad();
      ++state.num_nonfinite_skipped;
      ++state.consecutive_nonfinite;
      progress.clear();
      spdlog::warn("step {}: non-finite {}; update skipped ({} in a row, limit train.max_nonfinite_steps = {})",
                   state.step, nonfinite, state.consecutive_nonfinite, cfg.train.max_nonfinite_steps);
    } else {
      scale_grads(optimizer->trainable(), clip_factor(norm, cfg.optim.grad_clip));
      {
        std::lock_guard<std::mutex> lock(learner_weights.mutex);  // the actor copies weights between updates only
        optimizer->step(lr);
      }
      optimizer->zero_grad();
      state.consecutive_nonfinite = 0;
    }
    result.last_loss = loss;
    double actor_sync_wait_s = 0.0;
    if (actor) {
      {
        std::lock_guard<std::mutex> lock(learner_weights.mutex);
        learner_weights.version = state.step;
      }
      b_queue->set_version(state.step);
      actor_sync_wait_s = actor->after_step(state.step);
    }

    // 4. What users see.
    const double t = now_s();
    ProgressSnapshot snap;
    snap.step = state.step;
    snap.total_steps = total_steps;
    snap.loss = loss;
    snap.lr = lr;
    const double window = std::max(t - window_start, 1e-9);
    snap.tokens_per_s = static_cast<double>(window_tokens) / window;
    snap.samples_per_s = static_cast<double>(window_samples) / window;
    const int64_t done_here = state.step - result.start_step;
    snap.eta_s = (t - run_start) / static_cast<double>(done_here) * static_cast<double>(total_steps - state.step);
    progress.update(snap);
    // B steps are rare and carry their own diagnostics: always logged.
    const bool log_step =
        state.step % cfg.train.log_every == 0 || state.step == total_steps || !nonfinite.empty() || is_b;
    // Skip counters summed over ranks: a collective, so every rank at each logged step.
    std::map<std::string, int64_t> counters;
    data::ReasonCounts b_skipped_all;
    if (log_step) {
      counters = loader_counters_over_ranks(*loader, *reducer);
      b_skipped_all = sum_over_ranks({is_b ? b_skipped : data::ReasonCounts{}}, *reducer)[0];
    }
    nlohmann::ordered_json async_rec;  // every rank takes part in its collectives
    if (log_step && actor) {
      add_async_metrics(&async_rec, queue_wait_s, actor_sync_wait_s);
    }
    if (log_step && is_main()) {
      nlohmann::ordered_json rec;
      rec["step"] = state.step;
      rec["epoch"] = loader->state().epoch;
      rec["loss"] = loss;
      for (const auto& m : coord::loss_metrics(st.sums, st.counts, st.active, st.iou_kind)) rec[m.name] = m.value;
      for (int i = 0; i < coord::kNumTerms; ++i)
        if (st.active[i] && step_weights[i] != 0.0)
          rec["num_" + coord::term_name(static_cast<coord::Term>(i), st.iou_kind)] = st.counts[i];
      rec["lr"] = lr;
      rec["grad_norm"] = norm;
      rec["update_skipped"] = !nonfinite.empty();
      rec["num_nonfinite_skipped"] = state.num_nonfinite_skipped;
      rec["tokens_per_s"] = snap.tokens_per_s;
      rec["samples_per_s"] = snap.samples_per_s;
      if (load_threads) rec["compute_threads"] = load_threads->current();
      if (!is_b) rec["data_wait_s"] = st.data_wait_s;  // rank 0's; > 0 means the loader fell behind
      if (st.num_poly_excluded > 0) rec["num_poly_excluded"] = st.num_poly_excluded;
      if (stage2) {
        rec["step_kind"] = step_kind_name(kind);
        rec["b_ratio_realized"] = router->realized_b_ratio();
        rec["num_b_steps"] = state.num_b_steps;
        for (const auto& [k, v] : async_rec.items()) rec[k] = v;
        if (is_b) {
          add_channel_b_metrics(rec, st.channel_b, reducer->world_size(), channel_b.matching.at_step(gate_step));
          for (const auto& [reason, n] : b_skipped_all) rec["b_skipped_" + reason] = n;
        } else {
          rec["a_decoder_forwards"] = st.channel_a.decoder_forwards;
          // Over the self-context forwards: rows x positions taken from forward 0 (channel_a.prefix_reuse)
          // and computed; reused / (reused + computed) is the share of their decoder work saved.
          rec["a_reused_positions"] = st.channel_a.reused_positions;
          rec["a_computed_positions"] = st.channel_a.computed_positions;
          if (st.channel_a.num_slots > 0) {
            const double slots = static_cast<double>(st.channel_a.num_slots);
            rec["a_ctx_shift_bins"] = 999.0 * st.channel_a.abs_shift_sum / slots;
            rec["a_ctx_argmax_changed"] = static_cast<double>(st.channel_a.argmax_changed) / slots;
          }
        }
      }
      rec["num_samples"] = state.num_samples;
      rec["num_tokens"] = state.num_tokens;
      for (const auto& [k, v] : counters) rec[k] = v;
      metrics->write(rec);
      progress.log_line(snap);
    }
    if (log_step) {
      window_start = t;
      window_samples = window_tokens = 0;
    }

    if (state.consecutive_nonfinite >= cfg.train.max_nonfinite_steps)
      throw std::runtime_error(
          "aborting: " + std::to_string(state.consecutive_nonfinite) +
          " consecutive steps had a non-finite loss or gradient (last, at step " + std::to_string(state.step) + ": " +
          nonfinite + "). Lower optim.lr, enable optim.grad_clip, check the data, or resume from an earlier "
          "checkpoint");
    if (cfg.train.eval_every > 0 && state.step % cfg.train.eval_every == 0) {
      progress.clear();
      run_validation();
    }
    if (cfg.checkpoint.every > 0 && state.step % cfg.checkpoint.every == 0) {
      progress.clear();
      save_checkpoint();
    }
    bool stop_now = stop.requested();
    if (reducer->world_size() > 1) {  // a signal reaches ranks at different steps: stop together
      std::vector<int64_t> flag{stop_now ? 1 : 0};
      reducer->sum(flag);
      stop_now = flag[0] > 0;
    }
    if (stop_now) {
      progress.clear();
      if (stop.requested())
        spdlog::warn("signal {} received: saving a checkpoint at step {} and stopping", stop.signal_number(), state.step);
      else
        spdlog::warn("another rank received a stop signal: saving a checkpoint at step {} and stopping", state.step);
      result.stopped_by_signal = true;
      break;
    }
    if (stop_planned() && state.step < total_steps) {
      progress.clear();
      spdlog::info("train.stop_at_step {} reached: saving a checkpoint and stopping (resume continues the {}-step run)",
                   cfg.train.stop_at_step, total_steps);
      result.stopped_at_step = true;
      break;
    }
  }
  progress.clear();
  if (!result.stopped_by_signal && !result.stopped_at_step && state.step > result.start_step && cfg.train.eval_every > 0 &&
      state.step % cfg.train.eval_every != 0)
    run_validation();
  save_checkpoint();
  if (actor) {
    const RolloutActorStats a = actor->stats();
    actor->stop();
    actor.reset();
    const RolloutQueueStats q = b_queue->stats();
    spdlog::info("Channel-B actor: {} rollouts in {:.1f} s busy ({} refreshes); queue: {} consumed, {} dropped stale, "
                 "{} dropped overflow, {} left (rolled out again on resume)",
                 a.rollouts, a.rollout_seconds, a.refreshes, q.consumed, q.dropped_stale, q.dropped_overflow,
                 q.raw + q.ready);
  }
  result.steps_done = state.step;
  result.last_checkpoint = last_checkpoint;
  // The run's skips once more at the end (all ranks; a collective), so they are not only in metrics.jsonl.
  const std::vector<data::ReasonCounts> skipped_over_run = sum_over_ranks({loader->state().skipped}, *reducer);
  result.data_skipped = skipped_over_run[0];
  for (const auto& [reason, n] : result.data_skipped)
    spdlog::warn("training data: {} sample(s) skipped over the run: {} (data.on_invalid = skip; "
                 "data_skipped_{} in metrics.jsonl)", n, reason, reason);
  if (num_detection_evals_skipped > 0)
    spdlog::warn("{} detection eval(s) skipped over the run (see the error lines above)", num_detection_evals_skipped);
  spdlog::info("training {} at step {}/{}; last checkpoint {}",
               result.stopped_by_signal || result.stopped_at_step ? "stopped" : "finished",
               state.step, total_steps, last_checkpoint.empty() ? "(none)" : last_checkpoint);
  return result;
}

coord::LossTerms Trainer::Impl::step_loss_terms(StepKind kind, const PreparedBatch& pb, StepStats& st) {
  switch (kind) {
    case StepKind::kStage1: return stage1_loss_terms(*model, pb, coord_ids, cfg.coord, cfg.loss);
    case StepKind::kChannelA:
      return channel_a_loss_terms(*model, pb, coord_ids, cfg.coord, cfg.loss, channel_a, &st.channel_a);
    case StepKind::kChannelB: return channel_b_loss_terms(*model, pb, coord_ids, channel_b);
  }
  COORDEXP_CHECK(false, "unknown step kind");
  return {};
}

bool trains_on_cuda(const config::RunConfig& config) {
  return model::ModelRuntime::from_options(effective_model_options(config)).device.is_cuda();
}

Trainer::Trainer(config::RunConfig config, std::shared_ptr<StepReducer> reducer) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->reducer = reducer ? std::move(reducer) : std::make_shared<LocalReducer>();
  impl_->setup();
}

Trainer::~Trainer() = default;

TrainResult Trainer::run() { return impl_->train_loop(); }
int64_t Trainer::step() const { return impl_->state.step; }
int64_t Trainer::total_steps() const { return impl_->total_steps; }
model::Qwen3VL& Trainer::model() { return *impl_->model; }

}  // namespace coordexp::train
