// ConfigTree: YAML loading with `extends:` resolution, deep merge, `--set` overrides and per-key
// origins (see include/coordexp/config/tree.h). No schema knowledge: type checks and unknown keys are
// handled by the schema visitors (schema.cpp).
#include "coordexp/config/tree.h"

#include <filesystem>
#include <set>
#include <utility>

#include "coordexp/util/error.h"

namespace coordexp::config {
namespace {

namespace fs = std::filesystem;

std::string join_key(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string file_line(const std::string& file, const YAML::Mark& mark) {
  return file + ":" + std::to_string(mark.line + 1);
}

// Removes `key` and every key below it ("key.*") from `origins`.
void erase_subtree(std::map<std::string, std::string>& origins, const std::string& key) {
  origins.erase(key);
  // '/' sorts right after '.', so [key + ".", key + "/") is exactly the keys below `key`.
  origins.erase(origins.lower_bound(key + "."), origins.lower_bound(key + "/"));
}

void copy_subtree(const std::map<std::string, std::string>& from,
                  std::map<std::string, std::string>& to, const std::string& key) {
  if (auto it = from.find(key); it != from.end()) to[key] = it->second;
  for (auto it = from.lower_bound(key + "."); it != from.lower_bound(key + "/"); ++it)
    to[it->first] = it->second;
}

// Records the origin of every mapping key under `node` (all labelled `origin`).
void label_subtree(const YAML::Node& node, const std::string& prefix, const std::string& origin,
                   std::map<std::string, std::string>& origins) {
  if (!node.IsMap()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = join_key(prefix, it->first.Scalar());
    origins[key] = origin;
    label_subtree(it->second, key, origin, origins);
  }
}

std::vector<std::string> split_dotted(const std::string& dotted) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    parts.push_back(dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

}  // namespace

// Builds trees from files; a friend of ConfigTree so it can fill the root and origins directly.
class TreeLoader {
 public:
  ConfigTree load(const std::string& path, const std::string& included_from) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      if (included_from.empty())
        throw ConfigError("config file not found: " + path, "", "check the --config path");
      throw ConfigError("extends file not found: " + path, included_from,
                        "extends: paths are relative to the directory of the file that names them");
    }
    if (!fs::is_regular_file(path, ec))
      throw ConfigError("config path is not a regular file: " + path, included_from);
    fs::path canonical = fs::weakly_canonical(path, ec);
    if (ec) canonical = fs::absolute(path).lexically_normal();
    for (size_t i = 0; i < stack_.size(); ++i) {
      if (stack_[i].second != canonical) continue;
      std::string chain;
      for (size_t j = i; j < stack_.size(); ++j) chain += stack_[j].first + " -> ";
      throw ConfigError("extends cycle: " + chain + path, included_from,
                        "remove one of the extends: entries in this chain");
    }

    YAML::Node doc = parse(path);
    ConfigTree own;
    record_origins(doc, "", path, own.origins_, /*at_root=*/true);  // also rejects malformed keys
    std::vector<std::pair<std::string, std::string>> extends;  // (path as written resolved, origin)
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      const std::string key = it->first.Scalar();
      if (key == "extends") {
        extends = extends_entries(path, it->second);
        continue;
      }
      own.root_[key] = YAML::Clone(it->second);
    }

    stack_.emplace_back(path, canonical);
    ConfigTree merged;
    for (const auto& [ext_path, ext_origin] : extends) merged.merge_from(load(ext_path, ext_origin));
    stack_.pop_back();
    merged.merge_from(own);
    return merged;
  }

 private:
  static YAML::Node parse(const std::string& path) {
    YAML::Node doc;
    try {
      doc = YAML::LoadFile(path);
    } catch (const YAML::ParserException& e) {
      throw ConfigError("invalid YAML: " + e.msg,
                        path + ":" + std::to_string(e.mark.line + 1) + ":" +
                            std::to_string(e.mark.column + 1),
                        "fix the YAML syntax at this position");
    } catch (const YAML::BadFile&) {
      throw ConfigError("cannot read config file: " + path, "", "check the file's permissions");
    }
    if (doc.IsNull()) return YAML::Node(YAML::NodeType::Map);  // empty file = no settings
    if (!doc.IsMap())
      throw ConfigError("the top level of a config file must be a mapping of sections",
                        file_line(path, doc.Mark()), "write e.g. `train:` then indented keys");
    return doc;
  }

  // extends: a path or a list of paths, each relative to the including file's directory.
  static std::vector<std::pair<std::string, std::string>> extends_entries(
      const std::string& path, const YAML::Node& node) {
    std::vector<YAML::Node> items;
    if (node.IsScalar()) {
      items.push_back(node);
    } else if (node.IsSequence()) {
      for (const auto& item : node) items.push_back(item);
    } else if (!node.IsNull()) {
      throw ConfigError("extends: must be a path or a list of paths", file_line(path, node.Mark()),
                        "write extends: ../base.yaml or extends: [a.yaml, b.yaml]");
    }
    std::vector<std::pair<std::string, std::string>> out;
    const fs::path dir = fs::path(path).parent_path();
    for (const auto& item : items) {
      if (!item.IsScalar() || item.Scalar().empty())
        throw ConfigError("extends: entries must be non-empty paths", file_line(path, item.Mark()),
                          "write extends: [a.yaml, b.yaml]");
      out.emplace_back((dir / item.Scalar()).lexically_normal().string(),
                       file_line(path, item.Mark()));
    }
    return out;
  }

  static void record_origins(const YAML::Node& map, const std::string& prefix,
                             const std::string& file, std::map<std::string, std::string>& origins,
                             bool at_root) {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string where = file_line(file, it->first.Mark());
      if (!it->first.IsScalar() || it->first.Scalar().empty())
        throw ConfigError("mapping keys must be non-empty names", where, "write `name: value`");
      const std::string name = it->first.Scalar();
      const std::string key = join_key(prefix, name);
      if (!seen.insert(name).second)
        throw ConfigError("duplicate key `" + key + "`", where, "keep only one of the entries");
      if (name.find('.') != std::string::npos)
        throw ConfigError("key `" + key + "` contains '.'", where,
                          "nest it instead (a: {b: ...}); dotted keys are for --set only");
      if (at_root && name == "extends") continue;
      origins[key] = where;
      if (it->second.IsMap()) record_origins(it->second, key, file, origins, false);
    }
  }

  std::vector<std::pair<std::string, fs::path>> stack_;  // files being loaded (display, canonical)
};

ConfigTree::ConfigTree() : root_(YAML::NodeType::Map) {}

ConfigTree ConfigTree::load_file(const std::string& path) { return TreeLoader().load(path, ""); }

void ConfigTree::merge_from(const ConfigTree& overlay) {
  merge_map(root_, overlay.root_, "", overlay.origins_);
}

void ConfigTree::merge_map(YAML::Node base, const YAML::Node& overlay, const std::string& prefix,
                           const std::map<std::string, std::string>& overlay_origins) {
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const std::string name = it->first.Scalar();
    const std::string key = join_key(prefix, name);
    const YAML::Node& value = it->second;
    const YAML::Node existing = std::as_const(base)[name];
    if (existing.IsDefined() && existing.IsMap() && (value.IsMap() || value.IsNull())) {
      if (value.IsMap()) {
        if (auto o = overlay_origins.find(key); o != overlay_origins.end()) origins_[key] = o->second;
        merge_map(base[name], value, key, overlay_origins);
      }
      continue;
    }
    base[name] = YAML::Clone(value);
    erase_subtree(origins_, key);
    copy_subtree(overlay_origins, origins_, key);
  }
}

void ConfigTree::set(const std::string& dotted_key, const YAML::Node& value,
                     const std::string& origin) {
  const std::vector<std::string> parts = split_dotted(dotted_key);
  for (const auto& p : parts)
    if (p.empty())
      throw ConfigError("malformed key `" + dotted_key + "`", origin,
                        "write dotted names such as optim.lr");
  YAML::Node cur = root_;
  std::string key;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    key = join_key(key, parts[i]);
    const YAML::Node existing = std::as_const(cur)[parts[i]];
    if (!existing.IsDefined() || existing.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      origins_[key] = origin;
    } else if (!existing.IsMap()) {
      throw ConfigError("cannot set `" + dotted_key + "`: `" + key + "` is not a mapping", origin,
                        "`" + key + "` was set at " + this->origin(key));
    }
    YAML::Node child = cur[parts[i]];
    cur.reset(child);
  }
  key = dotted_key;
  cur[parts.back()] = YAML::Clone(value);
  erase_subtree(origins_, key);
  origins_[key] = origin;
  label_subtree(value, key, origin, origins_);
}

void ConfigTree::apply_override(const std::string& assignment) {
  const std::string origin = "--set " + assignment;
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("malformed override '" + assignment + "'", "--set",
                      "write --set section.key=value, e.g. --set optim.lr=1e-4");
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value;
  if (text.empty()) {
    value = YAML::Node(std::string());
  } else {
    try {
      value = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      throw ConfigError("cannot parse the value of `" + key + "` as YAML: " + e.msg, origin,
                        "quote strings with special characters, e.g. --set 'k=\"a: b\"'");
    }
  }
  set(key, value, origin);
}

std::optional<YAML::Node> ConfigTree::find(const std::string& dotted_key) const {
  YAML::Node cur = root_;
  for (const auto& part : split_dotted(dotted_key)) {
    if (!cur.IsMap()) return std::nullopt;
    const YAML::Node next = std::as_const(cur)[part];
    if (!next.IsDefined()) return std::nullopt;
    cur.reset(next);
  }
  return cur;
}

std::string ConfigTree::origin(const std::string& dotted_key) const {
  const auto it = origins_.find(dotted_key);
  return it == origins_.end() ? std::string() : it->second;
}

}  // namespace coordexp::config
