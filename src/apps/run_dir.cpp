// Run-directory setup for `train` (see run_dir.h). config.yaml is written to a temporary name and
// renamed, so a reader never sees a half-written file.
#include "apps/run_dir.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <system_error>

#include "coordexp/config/schema.h"
#include "coordexp/util/error.h"
#include "coordexp/util/log.h"

namespace coordexp::apps {
namespace {

namespace fs = std::filesystem;

void write_text_replacing(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message());
}

}  // namespace

RunDirectory prepare_run_directory(const config::RunConfig& cfg, const config::ConfigTree& tree,
                                   const std::string& cli_log_level, int rank) {
  RunDirectory run;
  run.dir = cfg.train.output_dir;
  const std::string origin = tree.origin("train.output_dir");
  if (run.dir.empty())
    throw ConfigError("train.output_dir is empty", origin.empty() ? "default" : origin,
                      "set train.output_dir to the run directory, e.g. runs/my_run");
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec || !fs::is_directory(run.dir))
    throw ConfigError("cannot create train.output_dir '" + run.dir + "'" +
                          (ec ? ": " + ec.message() : std::string(": not a directory")),
                      origin.empty() ? "default" : origin,
                      "choose a writable directory for train.output_dir");
  run.config_yaml = (fs::path(run.dir) / "config.yaml").string();
  run.log_file = (fs::path(run.dir) / (rank == 0 ? std::string("train.log")
                                                  : "train.rank" + std::to_string(rank) + ".log"))
                     .string();

  const std::string level = !cli_log_level.empty() ? cli_log_level
                            : cfg.log.level == "auto" ? std::string()
                                                      : cfg.log.level;
  util::init_logging({level, rank, run.log_file});

  if (rank == 0) {
    write_text_replacing(run.config_yaml,
                         "# Resolved config of this run (written by `coordexp-train train`); each "
                         "comment says where the value was set.\n" +
                             config::dump_yaml(cfg, &tree));
  }
  if (rank == 0)
    spdlog::info("run directory {}: resolved config in {}, log in {}", run.dir, run.config_yaml,
                 run.log_file);
  else
    spdlog::info("run directory {}: log in {} (rank 0 writes config.yaml)", run.dir, run.log_file);
  return run;
}

}  // namespace coordexp::apps
