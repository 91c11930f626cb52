// The untyped configuration tree: YAML files resolved through `extends:` (deep merge of maps, lists
// replace, later wins), then `--set a.b.c=VALUE` overrides, with the origin of every key ("file:line"
// or "--set a.b.c=VALUE") so later errors can say where a value came from. Knows nothing about the
// typed schema (see schema.h). Only src/config and src/apps include this header (it exposes yaml-cpp).
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace coordexp::config {

class ConfigTree {
 public:
  ConfigTree();  // empty mapping: every key keeps its default

  // Loads `path` after the files it `extends:` (a path or a list of paths relative to `path`'s
  // directory, applied in order, each resolved recursively). Throws ConfigError on unreadable or
  // invalid YAML, a missing extends file (naming the path tried), an extends cycle (naming the chain),
  // duplicate keys, and keys containing '.'.
  static ConfigTree load_file(const std::string& path);

  // Parses "a.b.c=VALUE" (VALUE is YAML: 1e-4, true, [a, b], {k: v}; empty = "") and sets it.
  // The origin recorded is "--set a.b.c=VALUE". Throws ConfigError for a malformed assignment.
  void apply_override(const std::string& assignment);

  // Sets a dotted key to `value`, creating intermediate mappings; `origin` labels the value.
  void set(const std::string& dotted_key, const YAML::Node& value, const std::string& origin);

  // Deep-merges `overlay` into this tree: maps merge key by key, anything else (scalars, lists,
  // a map replacing a scalar) replaces; a null overlay value leaves an existing map untouched.
  void merge_from(const ConfigTree& overlay);

  const YAML::Node& root() const { return root_; }
  // The node at a dotted key, or nullopt when absent.
  std::optional<YAML::Node> find(const std::string& dotted_key) const;
  // Where the key was set ("file:line" or "--set ..."), or "" when it was never set.
  std::string origin(const std::string& dotted_key) const;
  const std::map<std::string, std::string>& origins() const { return origins_; }

 private:
  friend class TreeLoader;  // src/config/tree.cpp: builds trees from files
  void merge_map(YAML::Node base, const YAML::Node& overlay, const std::string& prefix,
                 const std::map<std::string, std::string>& overlay_origins);

  YAML::Node root_;                              // always a mapping
  std::map<std::string, std::string> origins_;  // dotted key -> origin, for every mapping key
};

}  // namespace coordexp::config
