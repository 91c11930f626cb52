// Trainer: the training loop (Stage-1 SFT steps or Stage-2 Channel-A steps) and the owner of its
// state (model, tokenizer, data loaders, optimizer, schedule, checkpoints, metrics). One optimizer
// step = grad_accum_steps micro-batches: supervised items are counted over all of them (and over
// ranks) first, each micro-batch's loss is divided by those global counts and backpropagated, then a NaN/Inf guard, global grad-norm clipping and an AdamW update.
// Checkpoints are Hugging Face model directories plus trainer_state/, written atomically; resuming from
// one continues the loss sequence bit-exactly on CPU. The CLI (apps/cmd_train.cpp) only wires this up.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "coordexp/config/run_config.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/reducer.h"

namespace coordexp::train {

struct TrainResult {
  int64_t start_step = 0;       // step the run started from (> 0 after a resume)
  int64_t steps_done = 0;       // optimizer steps completed when run() returned
  int64_t total_steps = 0;
  bool stopped_by_signal = false;
  bool stopped_at_step = false;  // train.stop_at_step reached before the end of the run
  std::string last_checkpoint;  // "" when none was written
  double last_loss = 0.0;       // total loss of the last step
  std::map<std::string, int64_t> data_skipped;  // samples skipped by reason over the run, all ranks (resumes included)
};

// Test-only environment hook: when COORDEXP_TEST_PAUSE_SAVE_AT_STEP=N, the save of checkpoint N stops
// after the model files are in its temporary directory (before trainer_state/), prints
// "test hook: checkpoint save paused" to stderr and sleeps (300 s, or S seconds for N:S), so a test can
// kill the process mid-save or make the other ranks wait at the checkpoint barrier.
inline constexpr const char* kPauseSaveEnv = "COORDEXP_TEST_PAUSE_SAVE_AT_STEP";

// Whether a run with this config computes on CUDA (train.device / model.device, and what this
// build and machine have); the CLI picks the collective backend from it before the Trainer exists.
bool trains_on_cuda(const config::RunConfig& config);

class Trainer {
 public:
  // Loads everything the run needs (resuming per checkpoint.resume); throws ConfigError for bad
  // settings and DataError/FormatError for bad inputs, before any training happens.
  // `reducer` null = single process; with a multi-rank reducer every rank constructs a Trainer with
  // the same config, rank 0 alone writes checkpoints and metrics, and all ranks take the same steps.
  explicit Trainer(config::RunConfig config, std::shared_ptr<StepReducer> reducer = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains until total_steps (or a SIGINT/SIGTERM: finish the step, save, return). Throws
  // std::runtime_error after train.max_nonfinite_steps consecutive non-finite steps.
  TrainResult run();

  int64_t step() const;         // optimizer steps done so far
  int64_t total_steps() const;  // steps of the whole run (train.max_steps or the epochs' worth)
  model::Qwen3VL& model();      // the model being trained (tests inspect or perturb it)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coordexp::train
