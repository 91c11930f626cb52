// The run directory of a training job: creates train.output_dir, writes the resolved config to
// output_dir/config.yaml (rank 0) and re-installs logging so it also goes to output_dir/train.log
// (rank k > 0: train.rank<k>.log). Metrics and checkpoints are written there later by the trainer.
#pragma once

#include <string>

#include "coordexp/config/run_config.h"
#include "coordexp/config/tree.h"

namespace coordexp::apps {

struct RunDirectory {
  std::string dir;          // train.output_dir
  std::string config_yaml;  // dir/config.yaml (written by rank 0)
  std::string log_file;     // this rank's log file
};

// `cli_log_level` ("" = none) wins over log.level; `tree` supplies the per-key source comments of
// config.yaml. Throws ConfigError naming train.output_dir when the directory cannot be created.
RunDirectory prepare_run_directory(const config::RunConfig& cfg, const config::ConfigTree& tree,
                                   const std::string& cli_log_level, int rank);

}  // namespace coordexp::apps
