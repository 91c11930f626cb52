// The scalar part of a checkpoint's trainer_state/: step, counters, the data loader's position and
// the flattened config the run used (for the settings diff on resume), as trainer_state/state.json.
// Tensors (optimizer moments, RNG states, exact parameters) live in safetensors files next to it.
// Pure data + JSON round trip; written and read by the trainer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coordexp::train {

// The identity of a run lineage: the chain of runs whose checkpoints lead to the current weights.
// A fresh start gets a new run id; resuming a checkpoint that is the newest of its run keeps that
// run's id; resuming one its own run has already passed (an explicit resume from an older step, or
// any checkpoint written before run ids existed) starts a new id whose ancestors end at that step.
// Checkpoint c belongs to the lineage when c's run id is run_id (any step) or an ancestor's id with
// c.step <= that ancestor's until_step.
struct RunLineage {
  struct Ancestor {
    std::string run_id;  // "" = checkpoints written before run ids existed
    int64_t until_step = 0;
    bool operator==(const Ancestor& o) const { return run_id == o.run_id && until_step == o.until_step; }
  };
  std::string run_id;              // never "" for a lineage built by the trainer
  std::vector<Ancestor> ancestors; // oldest first

  bool contains(const std::string& checkpoint_run_id, int64_t step) const;
  // This lineage cut at `step` and continued by a new run `new_run_id`.
  RunLineage branch(int64_t step, std::string new_run_id) const;
  std::string to_json() const;  // {"run_id": ..., "ancestors": [{"run_id": ..., "until_step": n}, ...]}
  // Throws FormatError naming `where` for malformed text.
  static RunLineage from_json(const std::string& text, const std::string& where);
  bool operator==(const RunLineage& o) const { return run_id == o.run_id && ancestors == o.ancestors; }
};

// 16 hex digits from the OS entropy source, the clock and the pid (never from torch's generators, so
// a run's random streams do not depend on it).
std::string new_run_id();

struct TrainerState {
  int64_t step = 0;                   // optimizer steps done (skipped non-finite steps included)
  int64_t num_samples = 0;            // training samples consumed, all ranks
  int64_t num_tokens = 0;             // real tokens (image tokens included) consumed, all ranks
  int64_t num_nonfinite_skipped = 0;  // steps whose update was skipped (non-finite loss or gradient)
  int64_t consecutive_nonfinite = 0;  // of those, how many in a row at the end
  std::string loader_state_json;      // data::LoaderState::to_json() of rank 0
  int64_t b_sampler_position = 0;     // Channel-B sampler: global positions consumed (b_sampler.h)
  int64_t num_b_steps = 0;            // Channel-B optimizer steps done
  // channel_b.producer async: {"ranks": [{"position": g, "outstanding": [[index, epoch], ...]}, ...]},
  // each rank's B sampler position and the samples drawn but not yet trained on ("" = none).
  std::string b_producer_json;
  int64_t world_size = 0;             // ranks of the run that wrote it (0 = not recorded: older files)
  std::map<std::string, std::string> config;  // dotted key -> value text (config::format_value)
  // The lineage of the run that wrote it (keys run_id, run_ancestors); run_id "" = written before run
  // ids existed.
  RunLineage lineage;

  std::string to_json() const;
  // Throws FormatError naming `where` and the key for malformed or foreign files.
  static TrainerState from_json(const std::string& text, const std::string& where);
};

// One changed setting between a checkpoint's config and the current one ("" = key absent).
struct SettingChange {
  std::string key, before, after;
};
// Keys whose values differ, in key order; keys listed in `ignore` are left out.
std::vector<SettingChange> diff_settings(const std::map<std::string, std::string>& before,
                                         const std::map<std::string, std::string>& after,
                                         const std::vector<std::string>& ignore = {});

}  // namespace coordexp::train
