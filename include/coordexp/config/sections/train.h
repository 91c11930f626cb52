// `train:` section — the Stage-1 training loop: where the run writes, how long it runs, batch shape,
// logging/validation cadence, device and precision. Optimizer settings live in `optim:`, checkpoint
// policy in `checkpoint:`. Holds values only; the trainer (src/train) interprets them.
#pragma once

#include <cstdint>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct TrainOptions {
  std::string stage = "stage1";               // stage1 (SFT) | stage2 (Channel-A / Channel-B steps, stage2.*)
  std::string output_dir = "runs/coordexp";  // run directory: config.yaml, train.log, metrics, checkpoints
  int64_t seed = 42;                          // seeds model init, data shuffle and sampling (CLI --seed wins)
  int64_t max_steps = 0;                      // optimizer steps; 0 = run `epochs` full passes instead
  int epochs = 1;                             // passes over data.jsonl (used only when max_steps = 0)
  int64_t stop_at_step = 0;                   // stop (checkpoint saved) after this step; the schedule still spans max_steps
  int micro_batch_size = 1;                   // samples per forward/backward on each rank
  int grad_accum_steps = 1;                   // micro-batches summed per optimizer step
  int64_t log_every = 10;                     // optimizer steps between metrics lines / progress updates
  int64_t eval_every = 0;                     // optimizer steps between validation passes; 0 = off
  int64_t val_max_batches = 0;                // cap on validation batches per pass; 0 = whole val set
  std::string device = "auto";                // auto (CUDA when available, else CPU) | cpu | cuda
  std::string precision = "auto";             // auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
  int num_threads = 0;                        // CPU compute threads; 0 = the cores / LOCAL_WORLD_SIZE
  bool threads_follow_load = true;            // CPU: fewer threads while other processes keep cores busy
  int max_nonfinite_steps = 10;               // consecutive skipped (NaN/Inf) steps before aborting

  void validate() const {
    if (precision == "bf16" && device == "cpu")
      throw ConfigError("train.precision bf16 is only supported on CUDA, but train.device is cpu",
                        "train.precision", "use precision: auto or fp32 on CPU");
  }
};

template <class V>
void visit_fields(V& v, TrainOptions& o) {
  v.field(Field("stage", "stage1 = SFT on the GT answer (context gt); stage2 = Stage-2: Channel-A "
                         "(channel_a.*) and Channel-B (channel_b.*) steps chosen by the step router "
                         "(stage2.schedule, stage2.b_ratio).").choices({"stage1", "stage2"}), o.stage);
  v.field(Field("output_dir", "Run directory: resolved config.yaml, train.log, metrics.jsonl and "
                              "checkpoints are written here (created if missing)."), o.output_dir);
  v.field(Field("seed", "Random seed for initialization, data shuffling and sampling; the global "
                        "`--seed` flag overrides it.").min(0), o.seed);
  v.field(Field("max_steps", "Number of optimizer steps; 0 = run `train.epochs` full passes over "
                             "the training data instead.").min(0), o.max_steps);
  v.field(Field("stop_at_step", "Stop after this optimizer step, saving a checkpoint, as if interrupted "
                              "there: the learning-rate schedule and everything else still span the whole "
                              "run (max_steps / epochs), so resuming without it continues exactly. Trains a "
                              "long run in planned pieces; 0 = run to the end.").min(0), o.stop_at_step);
  v.field(Field("epochs", "Full passes over the training data; used only when "
                          "`train.max_steps` is 0.").min(1), o.epochs);
  v.field(Field("micro_batch_size", "Samples per forward/backward pass on each rank.").min(1),
          o.micro_batch_size);
  v.field(Field("grad_accum_steps", "Micro-batches accumulated per optimizer step (effective "
                                    "batch = micro_batch_size x grad_accum_steps x world size).")
              .min(1), o.grad_accum_steps);
  v.field(Field("log_every", "Optimizer steps between metrics lines and progress updates.").min(1),
          o.log_every);
  v.field(Field("eval_every", "Optimizer steps between validation passes on `data.val_jsonl` (validation "
                              "loss; with eval.detection also infer + detection metrics); 0 = no periodic "
                              "validation.").min(0), o.eval_every);
  v.field(Field("val_max_batches", "Maximum validation batches per pass; 0 = the whole "
                                   "validation set.").min(0), o.val_max_batches);
  v.field(Field("device", "Compute device: auto picks CUDA when this build and machine have it, "
                          "else CPU.").choices({"auto", "cpu", "cuda"}), o.device);
  v.field(Field("precision", "Compute precision: auto = bf16 autocast on CUDA, float32 on CPU.")
              .choices({"auto", "fp32", "bf16"}), o.precision);
  v.field(Field("num_threads", "CPU compute threads (LibTorch intra-op and the BLAS); 0 = the hardware "
                               "threads divided by LOCAL_WORLD_SIZE (torchrun's processes on this node), "
                               "unless OMP_NUM_THREADS is set.").min(0),
          o.num_threads);
  v.field(Field("threads_follow_load", "CPU runs: before each step, use only the cores other processes leave "
                                       "free (runnable tasks in /proc/stat), between 1 and num_threads; back up "
                                       "after 5 quieter steps. A busy core makes each parallel op wait for a "
                                       "descheduled worker (a step measured 10x slower). The count can change "
                                       "mid-run, and float reductions split over threads round differently, so "
                                       "turn it off when reruns must be bit-identical."),
          o.threads_follow_load);
  v.field(Field("max_nonfinite_steps", "Consecutive steps with a non-finite loss or gradient "
                                       "(each skipped and logged) before the run aborts.").min(1),
          o.max_nonfinite_steps);
}

}  // namespace coordexp::config
