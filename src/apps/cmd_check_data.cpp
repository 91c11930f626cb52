// `coordexp-train check-data FILE.jsonl... [--config run.yaml]`: validates JSONL files against the
// data contract (docs/data/JSONL_CONTRACT.md) without training and prints one summary per file.
// Every line is checked whatever data.on_invalid says. Exit 0 when every record is valid, 1 when
// any record is invalid or a file is unreadable, 2 for a bad config or command line.
#include <yaml-cpp/yaml.h>

#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "coordexp/config/sections/data.h"
#include "coordexp/config/sections/protocol.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

// Reads the string/int fields of one config section from a YAML node. Only the `data` and
// `protocol` sections are read; `extends:` and --set belong to the full config loader.
class SectionReader {
 public:
  SectionReader(const YAML::Node& node, std::string file, std::string section)
      : node_(node), file_(std::move(file)), section_(std::move(section)) {}

  template <class T>
  void field(const config::Field& f, T& value) {
    if (!node_ || !node_[f.name()]) return;
    const std::string key = section_ + "." + f.name();
    try {
      value = node_[f.name()].template as<T>();
    } catch (const YAML::Exception&) {
      throw ConfigError("cannot read the value", file_ + ": key " + key, f.doc());
    }
  }

 private:
  YAML::Node node_;
  std::string file_, section_;
};

void read_config(const std::string& path, config::DataOptions& data,
                 config::ProtocolOptions& protocol) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(e.what(), path, "check the YAML syntax");
  }
  SectionReader d(root["data"], path, "data");
  config::visit_fields(d, data);
  SectionReader p(root["protocol"], path, "protocol");
  config::visit_fields(p, protocol);
}

struct CheckDataArgs {
  std::vector<std::string> files;
  std::string config_path;
  bool no_image_check = false;
};

int run_check_data(const CheckDataArgs& args) {
  config::DataOptions data;
  config::ProtocolOptions protocol;
  if (!args.config_path.empty()) read_config(args.config_path, data, protocol);
  data.validate();
  protocol.validate();
  data::JsonlOptions options = data::JsonlOptions::from_config(data, protocol);
  const bool stop_at_first = options.on_invalid == data::InvalidPolicy::kError;
  options.on_invalid = data::InvalidPolicy::kSkip;  // report everything
  options.check_images = !args.no_image_check;

  bool all_valid = true;
  for (const auto& file : args.files) {
    try {
      const data::JsonlFile f = data::read_jsonl(file, options);
      std::cout << f.summary.format();
      if (f.summary.num_invalid > 0) {
        all_valid = false;
        if (stop_at_first)
          std::cout << "note: with data.on_invalid=error, training stops at the first invalid "
                       "record; with skip it drops and counts them\n";
      }
    } catch (const DataError& e) {
      std::cout << "file: " << file << "\nerror: " << e.what() << "\n";
      all_valid = false;
    }
    std::cout << "\n";
  }
  std::cout << (all_valid ? "check-data: all records valid\n" : "check-data: INVALID records found\n");
  return all_valid ? 0 : 1;
}

}  // namespace

CommandRegistration add_check_data_command(CLI::App& app, const GlobalFlags&) {
  auto* sub = app.add_subcommand(
      "check-data", "Validate JSONL files against the data contract and print a summary "
                    "(exit 0: all valid, 1: invalid records or unreadable file)");
  auto args = std::make_shared<CheckDataArgs>();
  sub->add_option("files", args->files, "JSONL files")->required();
  sub->add_option("--config", args->config_path,
                  "run config YAML; its data and protocol sections are used");
  sub->add_flag("--no-image-check", args->no_image_check, "do not check that image files exist");
  return {sub, [args] { return run_check_data(*args); }};
}

}  // namespace coordexp::apps
