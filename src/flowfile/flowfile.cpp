#include "flowfile/flowfile.hpp"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>
#include <zip.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <memory>

namespace ferry::flowfile {
namespace {

namespace json = boost::json;

// Bounds on what is read. A flow file is written by hand: these are far above
// any real one and far below what could exhaust the stack or memory.
constexpr std::size_t kMaxFileBytes = 1024 * 1024;
constexpr int kMaxDepth = 64;                             // nesting of YAML/JSON values
constexpr std::size_t kMaxValues = 100'000;               // aliases count each time used
constexpr std::size_t kMaxStringBytes = 64 * 1024;        // one value after substitution
constexpr std::size_t kMaxTotalBytes = 16 * 1024 * 1024;  // all text, after aliases
constexpr std::size_t kMaxJobs = 10'000;                  // the API's limit per batch
constexpr std::size_t kMaxRefBytes = 128;                 // the API's limit on a ref
constexpr std::size_t kMaxFiles = 10'000;                 // in a directory or a zip
constexpr std::int64_t kMaxBackoffMs = 365LL * 24 * 3600 * 1000;

// Where in the file an error is: "" for the top, `node "a:b"`, `flow "a"`.
// A refusal is one line: a control character it quotes (a newline in a
// node's name) is written as an escape.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (byte < 0x20 || byte == 0x7f)
      out += fmt::format("\\x{:02x}", byte);
    else
      out += c;
  }
  return out;
}

[[noreturn]] void fail(std::string_view source, std::string_view where, std::string_view what) {
  if (where.empty()) throw FlowError(one_line(fmt::format("{}: {}", source, what)));
  throw FlowError(one_line(fmt::format("{}: {}: {}", source, where, what)));
}

// Text is checked before any parser sees it: bounded, no NUL, valid UTF-8.
void check_text(std::string_view text, std::string_view source) {
  if (text.size() > kMaxFileBytes)
    fail(source, "", fmt::format("is larger than {} bytes", kMaxFileBytes));
  for (std::size_t i = 0; i < text.size();) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte == 0) fail(source, "", fmt::format("byte {}: a NUL byte is not text", i));
    std::size_t length = byte < 0x80           ? 1
                         : (byte >> 5) == 0x6  ? 2
                         : (byte >> 4) == 0xE  ? 3
                         : (byte >> 3) == 0x1E ? 4
                                               : 0;
    bool valid = length != 0 && i + length <= text.size();
    std::uint32_t code = length <= 1 ? byte : byte & (0x3F >> (length - 1));
    for (std::size_t k = 1; valid && k < length; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
    if (valid && length > 1)
      valid = code >= kLeast[length] && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF);
    if (!valid) fail(source, "", fmt::format("byte {}: not UTF-8 text", i));
    i += length;
  }
}

// ---- YAML to JSON values ---------------------------------------------------

// Converts a YAML tree to JSON values, counting every value it makes, so
// aliases that multiply ("billion laughs") or refer to themselves end in an
// error instead of a hang. With `typed`, plain scalars become numbers, true,
// false and null as YAML 1.2 reads them; otherwise every scalar stays text
// (Azkaban reads its values as text).
class YamlConverter {
 public:
  YamlConverter(std::string_view source, bool typed) : source_(source), typed_(typed) {}

  json::value convert(const YAML::Node& node, const std::string& path, int depth) {
    if (depth > kMaxDepth) {
      // The path of a value that deep is long: its start says where.
      std::string start = path.size() > 60 ? path.substr(0, 60) + "..." : path;
      fail(source_, start, fmt::format("nested deeper than {} levels", kMaxDepth));
    }
    if (++values_ > kMaxValues)
      fail(source_, "",
           fmt::format("holds more than {} values (an alias counts each time it is used)",
                       kMaxValues));
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        return scalar(node, path);
      case YAML::NodeType::Sequence: {
        json::array array;
        std::size_t index = 0;
        for (const YAML::Node& item : node)
          array.push_back(convert(item, fmt::format("{}[{}]", path, index++), depth + 1));
        return array;
      }
      case YAML::NodeType::Map: {
        json::object object;
        for (const auto& entry : node) {
          if (!entry.first.IsScalar()) fail(source_, path, "a key must be text");
          const std::string& key = entry.first.Scalar();
          std::string key_path = path.empty() ? key : path + "." + key;
          count_bytes(key.size());
          if (object.contains(key)) fail(source_, key_path, "the key appears twice");
          object[key] = convert(entry.second, key_path, depth + 1);
        }
        return object;
      }
    }
    return nullptr;
  }

 private:
  void count_bytes(std::size_t bytes) {
    bytes_ += bytes;
    if (bytes_ > kMaxTotalBytes)
      fail(source_, "",
           fmt::format("holds more than {} bytes of text (an alias counts each time it is used)",
                       kMaxTotalBytes));
  }

  json::value scalar(const YAML::Node& node, const std::string& path) {
    const std::string& text = node.Scalar();
    count_bytes(text.size());
    // YAML's "\0" escape makes one; the API refuses them in every string.
    if (text.find('\0') != std::string::npos) fail(source_, path, "a NUL character is not text");
    // "?" is the tag of a plain (unquoted) scalar; quoted ones are text.
    if (!typed_ || node.Tag() != "?") return json::string(text);
    if (text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    if (!text.empty() && text[0] == '+') ++first;
    std::int64_t whole = 0;
    auto [end, error] = std::from_chars(first, last, whole);
    if (end == last && error == std::errc{} && first != last) return whole;
    std::uint64_t large = 0;
    auto [large_end, large_error] = std::from_chars(first, last, large);
    if (large_end == last && large_error == std::errc{} && first != last) return large;
    bool digits = first != last && std::all_of(first, last, [](char c) {
                    return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' ||
                           c == 'E' || c == '-' || c == '+';
                  });
    bool starts_like_number = first != last && (std::isdigit(static_cast<unsigned char>(*first)) ||
                                                *first == '-' || *first == '.');
    if (digits && starts_like_number) {
      double number = 0;
      auto [number_end, number_error] = std::from_chars(first, last, number);
      if (number_end == last && number_error == std::errc{} && std::isfinite(number)) return number;
      if (number_end == last)
        fail(source_, path, fmt::format("the number {} is out of range", text));
    }
    return json::string(text);
  }

  std::string_view source_;
  bool typed_;
  std::size_t values_ = 0;
  std::size_t bytes_ = 0;
};

json::value yaml_to_json(std::string_view text, std::string_view source, bool typed) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& error) {
    // yaml-cpp's parser bounds its own recursion; its message says "bad file".
    fail(source, fmt::format("line {}, column {}", error.mark.line + 1, error.mark.column + 1),
         "nested too deeply");
  } catch (const YAML::Exception& error) {
    fail(source, fmt::format("line {}, column {}", error.mark.line + 1, error.mark.column + 1),
         error.msg);
  }
  return YamlConverter(source, typed).convert(root, "", 0);
}

json::value parse_json(std::string_view text, std::string_view source) {
  json::parse_options options;
  options.max_depth = kMaxDepth;
  std::error_code error;
  json::value value = json::parse(text, error, {}, options);
  if (error) fail(source, "", fmt::format("not valid JSON: {}", error.message()));
  return value;
}

std::string text_of(const json::value& value) {
  if (value.is_string()) return std::string(value.as_string());
  if (value.is_null()) return "";
  return json::serialize(value);
}

// ---- parameters --------------------------------------------------------------

// `${name}` parameters. A flow's values may use parameters of their own and of
// every enclosing flow (the nearest definition wins); overrides win over all.
// A value is resolved where it is used (late binding, as Azkaban does), each
// parameter once per scope.
class Scope {
 public:
  Scope(const Scope* parent, const Params* overrides) : parent_(parent), overrides_(overrides) {}

  void define(const std::string& name, std::string value) { raw_[name] = std::move(value); }

  // Replaces every ${name} in `text`. Throws std::invalid_argument with the
  // reason, which the caller places.
  std::string substitute(std::string_view text) const {
    std::vector<std::string> chain;
    return substitute(text, chain);
  }

 private:
  std::string substitute(std::string_view text, std::vector<std::string>& chain) const {
    std::string out;
    std::size_t at = 0;
    while (true) {
      std::size_t open = text.find("${", at);
      if (open == std::string_view::npos) break;
      std::size_t close = text.find('}', open + 2);
      if (close == std::string_view::npos)
        throw std::invalid_argument(fmt::format("'${{' at offset {} has no closing '}}'", open));
      out.append(text.substr(at, open - at));
      out += resolve(std::string(text.substr(open + 2, close - open - 2)), chain);
      if (out.size() > kMaxStringBytes)
        throw std::invalid_argument(fmt::format(
            "is longer than {} bytes once parameters are substituted", kMaxStringBytes));
      at = close + 1;
    }
    out.append(text.substr(at));
    if (out.size() > kMaxStringBytes)
      throw std::invalid_argument(
          fmt::format("is longer than {} bytes once parameters are substituted", kMaxStringBytes));
    return out;
  }

  std::string resolve(const std::string& name, std::vector<std::string>& chain) const {
    if (overrides_) {
      auto given = overrides_->find(name);
      if (given != overrides_->end()) return given->second;
    }
    auto known = resolved_.find(name);
    if (known != resolved_.end()) return known->second;
    // The nearest definition, resolved in this (the using) scope.
    const std::string* raw = nullptr;
    for (const Scope* scope = this; scope && !raw; scope = scope->parent_) {
      auto found = scope->raw_.find(name);
      if (found != scope->raw_.end()) raw = &found->second;
    }
    std::string used_by = chain.empty() ? "" : fmt::format(" (used by parameter {})", chain.back());
    if (!raw)
      throw std::invalid_argument(fmt::format("unknown parameter ${{{}}}{}", name, used_by));
    if (std::find(chain.begin(), chain.end(), name) != chain.end())
      throw std::invalid_argument(fmt::format("parameter {} refers to itself{}", name, used_by));
    chain.push_back(name);
    std::string value = substitute(*raw, chain);
    chain.pop_back();
    resolved_[name] = value;
    return value;
  }

  const Scope* parent_;
  const Params* overrides_;
  std::map<std::string, std::string> raw_;
  mutable std::map<std::string, std::string> resolved_;
};

// ---- Azkaban Flow 2.0 ----------------------------------------------------------

// The condition macros, and the after_policy each is in the API.
const std::map<std::string, std::string, std::less<>> kConditions = {
    {"all_success", "success"},     {"all_done", "end"},          {"all_failed", "failure"},
    {"one_success", "one_success"}, {"one_failed", "one_failed"},
};

// Embedded flows' jobs get refs of the path of names: "outer:inner". The
// separator is ':' because a ref may hold only letters, digits and _ - . :,
// and ':' is also how Azkaban names an embedded flow ("flow:embedded").
constexpr char kRefSeparator = ':';

struct Level;

struct Node {
  std::string name;
  std::string ref;
  std::string type;                      // command, noop or flow
  std::string where;                     // `node "ref"`, for errors
  const json::object* object = nullptr;  // the node as written
  const json::object* config = nullptr;
  std::vector<std::size_t> depends;  // siblings, by index
  std::string policy;                // after_policy; "" for the default
  std::unique_ptr<Level> embedded;   // for type flow
  std::vector<std::string> exits;    // refs a dependant of this node runs after
};

struct Level {
  std::string prefix;  // "" at the top, else "outer:inner:"
  Scope scope;
  std::vector<Node> nodes;
};

class AzkabanReader {
 public:
  AzkabanReader(std::string_view source, const Params& overrides)
      : source_(source), overrides_(overrides) {}

  json::array read(const json::value& root) {
    if (!root.is_object())
      fail(source_, "", "a Flow 2.0 file is a map with `nodes` (and `config`)");
    const json::object& top = root.as_object();
    for (const auto& entry : top)
      if (entry.key() != "nodes" && entry.key() != "config")
        fail(source_, entry.key(), "unknown key (a flow has nodes and config)");
    std::unique_ptr<Level> level =
        read_level(top.if_contains("nodes"), top.if_contains("config"), "", nullptr, "", 0);
    json::array jobs;
    emit(*level, {}, jobs);
    return jobs;
  }

 private:
  // On the heap, so the scopes of embedded flows can point to their parent's.
  std::unique_ptr<Level> read_level(const json::value* nodes, const json::value* config,
                                    const std::string& prefix, const Scope* parent,
                                    const std::string& where, int depth) {
    if (depth > kMaxDepth)
      fail(source_, where, fmt::format("embedded flows nest deeper than {} levels", kMaxDepth));
    auto owned = std::make_unique<Level>(Level{prefix, Scope(parent, &overrides_), {}});
    Level& level = *owned;
    std::string config_where = where.empty() ? "config" : where + ": config";
    if (config) {
      if (!config->is_object() && !config->is_null())
        fail(source_, config_where, "must be a map of parameters");
      if (config->is_object())
        for (const auto& entry : config->as_object()) {
          if (entry.value().is_object() || entry.value().is_array())
            fail(source_, fmt::format("{}.{}", config_where, std::string(entry.key())),
                 "a parameter is a single value");
          level.scope.define(entry.key(), text_of(entry.value()));
        }
    }
    std::string nodes_where = where.empty() ? "nodes" : where + ": nodes";
    if (!nodes || !nodes->is_array() || nodes->as_array().empty())
      fail(source_, nodes_where, "must be a list of at least one node");
    std::map<std::string, std::size_t> by_name;
    for (const json::value& item : nodes->as_array()) {
      level.nodes.push_back(read_node(item, prefix, level.nodes.size(), nodes_where));
      Node& node = level.nodes.back();
      if (!by_name.emplace(node.name, level.nodes.size() - 1).second)
        fail(source_, node.where, "name: another node of this flow has this name");
    }
    for (std::size_t i = 0; i < level.nodes.size(); ++i) resolve_depends(level, i, by_name);
    check_cycles(level);
    for (Node& node : level.nodes) {
      if (node.type != "flow") continue;
      const json::object& object = *node.object;
      node.embedded = read_level(object.if_contains("nodes"), object.if_contains("config"),
                                 node.ref + kRefSeparator, &level.scope, node.where, depth + 1);
    }
    // What a dependant of a node runs after: the node itself, or the leaves
    // of an embedded flow (its nodes no other of its nodes depends on).
    for (Node& node : level.nodes)
      if (node.type != "flow") node.exits = {node.ref};
    for (Node& node : level.nodes) {
      if (node.type != "flow") continue;
      std::vector<bool> depended(node.embedded->nodes.size(), false);
      for (const Node& inner : node.embedded->nodes)
        for (std::size_t index : inner.depends) depended[index] = true;
      for (std::size_t i = 0; i < depended.size(); ++i)
        if (!depended[i])
          for (const std::string& exit : node.embedded->nodes[i].exits) node.exits.push_back(exit);
    }
    return owned;
  }

  Node read_node(const json::value& item, const std::string& prefix, std::size_t index,
                 const std::string& nodes_where) {
    std::string item_where = fmt::format("{}[{}]", nodes_where, index);
    if (!item.is_object()) fail(source_, item_where, "a node is a map with name and type");
    const json::object& object = item.as_object();
    Node node;
    const json::value* name = object.if_contains("name");
    if (!name || !name->is_string() || name->as_string().empty())
      fail(source_, item_where, "name: is required");
    node.name = std::string(name->as_string());
    node.ref = prefix + node.name;
    node.where = fmt::format("node \"{}\"", node.ref);
    bool plain = std::all_of(node.name.begin(), node.name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
    if (!plain) fail(source_, node.where, "name: may hold only letters, digits and _ - .");
    if (node.ref.size() > kMaxRefBytes)
      fail(source_, node.where,
           fmt::format("name: the job's ref is longer than {} characters", kMaxRefBytes));
    const json::value* type = object.if_contains("type");
    if (!type || !type->is_string()) fail(source_, node.where, "type: is required");
    node.type = std::string(type->as_string());
    if (node.type != "command" && node.type != "noop" && node.type != "flow")
      fail(source_, node.where,
           fmt::format("type: \"{}\" is not supported (ferry runs command, noop and flow nodes)",
                       node.type));
    for (const auto& entry : object) {
      std::string_view key = entry.key();
      bool known = key == "name" || key == "type" || key == "config" || key == "dependsOn" ||
                   key == "condition" || (key == "nodes" && node.type == "flow");
      if (!known) fail(source_, node.where, fmt::format("{}: unknown key", std::string(key)));
    }
    if (const json::value* condition = object.if_contains("condition")) {
      if (node.type == "flow")
        fail(source_, node.where,
             "condition: not supported on an embedded flow (put it on the flow's nodes)");
      std::string given = text_of(*condition);
      auto macro = kConditions.find(given);
      if (macro == kConditions.end())
        fail(source_, node.where,
             fmt::format("condition: \"{}\" is not supported (only all_success, all_done, "
                         "all_failed, one_success, one_failed; conditions on job output are not)",
                         given));
      if (macro->second != "success") node.policy = macro->second;
    }
    const json::value* config = object.if_contains("config");
    if (config && !config->is_object() && !config->is_null())
      fail(source_, node.where, "config: must be a map");
    if (config && config->is_object()) node.config = &config->as_object();
    if (node.type != "flow" && ++job_count_ > kMaxJobs)
      fail(source_, node.where, fmt::format("the flow has more than {} jobs", kMaxJobs));
    node.object = &object;
    return node;
  }

  void resolve_depends(Level& level, std::size_t index,
                       const std::map<std::string, std::size_t>& by_name) {
    Node& node = level.nodes[index];
    const json::value* depends = node.object->if_contains("dependsOn");
    if (!depends || depends->is_null()) return;
    if (!depends->is_array()) fail(source_, node.where, "dependsOn: must be a list of node names");
    for (const json::value& entry : depends->as_array()) {
      if (!entry.is_string()) fail(source_, node.where, "dependsOn: must be a list of node names");
      std::string name(entry.as_string());
      auto found = by_name.find(name);
      if (found == by_name.end())
        fail(source_, node.where, fmt::format("dependsOn: no node \"{}\" in this flow", name));
      if (std::find(node.depends.begin(), node.depends.end(), found->second) == node.depends.end())
        node.depends.push_back(found->second);
    }
  }

  // Depth-first without recursion: 0 unvisited, 1 on the path, 2 done.
  void check_cycles(const Level& level) {
    std::vector<int> mark(level.nodes.size(), 0);
    for (std::size_t start = 0; start < level.nodes.size(); ++start) {
      if (mark[start]) continue;
      std::vector<std::pair<std::size_t, std::size_t>> path{{start, 0}};
      mark[start] = 1;
      while (!path.empty()) {
        auto& [index, edge] = path.back();
        const Node& node = level.nodes[index];
        if (edge == node.depends.size()) {
          mark[index] = 2;
          path.pop_back();
          continue;
        }
        std::size_t next = node.depends[edge++];
        if (mark[next] == 1) {
          std::string cycle;
          auto from = std::find_if(path.begin(), path.end(),
                                   [&](const auto& step) { return step.first == next; });
          for (auto step = from; step != path.end(); ++step)
            cycle += level.nodes[step->first].name + " -> ";
          fail(source_, level.nodes[next].where,
               fmt::format("dependsOn: the dependencies form a cycle: {}{}", cycle,
                           level.nodes[next].name));
        }
        if (mark[next] == 0) {
          mark[next] = 1;
          path.push_back({next, 0});
        }
      }
    }
  }

  void emit(const Level& level, const std::vector<std::string>& outer_after, json::array& jobs) {
    for (const Node& node : level.nodes) {
      std::vector<std::string> after;
      if (node.depends.empty()) after = outer_after;
      for (std::size_t index : node.depends)
        for (const std::string& exit : level.nodes[index].exits)
          if (std::find(after.begin(), after.end(), exit) == after.end()) after.push_back(exit);
      if (node.type == "flow") {
        emit(*node.embedded, after, jobs);
        continue;
      }
      jobs.push_back(job_of(node, level.scope, after));
    }
  }

  json::object job_of(const Node& node, const Scope& scope, const std::vector<std::string>& after) {
    json::object job;
    job["ref"] = node.ref;
    job["name"] = node.ref;
    std::map<std::string, std::string> values;  // config key -> substituted text
    if (node.config)
      for (const auto& entry : *node.config) {
        std::string key(entry.key());
        std::string where = fmt::format("config.{}", key);
        if (entry.value().is_object() || entry.value().is_array())
          fail(source_, node.where, where + ": must be a single value");
        try {
          values[key] = scope.substitute(text_of(entry.value()));
        } catch (const std::invalid_argument& error) {
          fail(source_, node.where, fmt::format("{}: {}", where, error.what()));
        }
      }
    std::vector<std::string> commands;
    if (node.type == "noop") {
      if (!values.empty())
        fail(source_, node.where,
             fmt::format("config.{}: unknown key (a noop node runs nothing)",
                         values.begin()->first));
      job["command"] = json::object{{"argv", json::array{"true"}}};
    } else {
      auto command = values.find("command");
      if (command == values.end()) fail(source_, node.where, "config.command: is required");
      commands.push_back(command->second);
      std::size_t numbered = 0;
      while (values.contains(fmt::format("command.{}", numbered + 1))) ++numbered;
      for (std::size_t i = 1; i <= numbered; ++i)
        commands.push_back(values.at(fmt::format("command.{}", i)));
      for (std::size_t i = 0; i < commands.size(); ++i)
        if (commands[i].empty())
          fail(source_, node.where,
               i == 0 ? std::string("config.command: must not be empty")
                      : fmt::format("config.command.{}: must not be empty", i));
      for (const auto& [key, value] : values) {
        if (key == "command" || key == "retries" || key == "retry.backoff") continue;
        std::size_t number = 0;
        bool numbered_command = key.starts_with("command.") && number_of(key.substr(8), number);
        if (numbered_command && number <= numbered) continue;
        if (numbered_command)
          fail(source_, node.where,
               fmt::format("config.{}: follows no command.{}", key, numbered + 1));
        fail(source_, node.where, fmt::format("config.{}: unknown key", key));
      }
      for (std::size_t i = 0; i < commands.size(); ++i)
        if (commands[i].find_first_not_of(" \t\r\n") == std::string::npos)
          fail(source_, node.where,
               fmt::format("config.{}: must not be empty",
                           i == 0 ? std::string("command") : fmt::format("command.{}", i)));
      job["command"] = json::object{{"shell", script_of(commands)}};
    }
    if (auto retries = values.find("retries"); retries != values.end()) {
      std::size_t count = 0;
      if (!number_of(retries->second, count) || count > 100)
        fail(source_, node.where, "config.retries: must be a whole number from 0 to 100");
      if (count) job["retries"] = count;
    }
    if (auto backoff = values.find("retry.backoff"); backoff != values.end()) {
      std::size_t milliseconds = 0;
      if (!number_of(backoff->second, milliseconds) || milliseconds < 1 ||
          milliseconds > static_cast<std::size_t>(kMaxBackoffMs))
        fail(source_, node.where,
             "config.retry.backoff: must be a whole number of milliseconds from 1 to one year");
      // The API takes seconds; whole seconds stay integers.
      if (milliseconds % 1000 == 0)
        job["retry_delay"] = milliseconds / 1000;
      else
        job["retry_delay"] = static_cast<double>(milliseconds) / 1000.0;
    }
    if (!after.empty()) job["after"] = json::array(after.begin(), after.end());
    if (!node.policy.empty()) {
      if (after.empty())
        fail(source_, node.where, "condition: the node runs after nothing, so it has no condition");
      job["after_policy"] = node.policy;
    }
    return job;
  }

  // Digits only, no sign, no leading zero (so "command.01" is not command.1).
  static bool number_of(std::string_view text, std::size_t& number) {
    if (text.empty() || text.size() > 15 || (text.size() > 1 && text[0] == '0')) return false;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    return error == std::errc{} && end == text.data() + text.size();
  }

  // One command is the script itself. Several run in order, each in a
  // subshell of its own (as Azkaban runs each as a process of its own), and
  // the first that fails ends the job with its exit status. The newlines keep
  // a trailing comment in a command from swallowing what follows.
  static std::string script_of(const std::vector<std::string>& commands) {
    if (commands.size() == 1) return commands[0];
    std::string script;
    for (const std::string& command : commands) script += "(\n" + command + "\n) || exit $?\n";
    return script;
  }

  std::string_view source_;
  const Params& overrides_;
  std::size_t job_count_ = 0;
};

// ---- plain ferry flows ---------------------------------------------------------

// Replaces ${name} in every string value (not in keys) of a plain flow.
void substitute_all(json::value& value, const Scope& scope, const std::string& path,
                    std::string_view source) {
  if (value.is_string()) {
    try {
      value = json::string(scope.substitute(value.as_string()));
    } catch (const std::invalid_argument& error) {
      fail(source, path, error.what());
    }
    if (value.as_string().find('\0') != json::string::npos)
      fail(source, path, "a NUL character is not text");
  } else if (value.is_array()) {
    json::array& array = value.as_array();
    for (std::size_t i = 0; i < array.size(); ++i)
      substitute_all(array[i], scope, fmt::format("{}[{}]", path, i), source);
  } else if (value.is_object()) {
    for (auto& entry : value.as_object())
      substitute_all(entry.value(), scope,
                     path.empty() ? std::string(entry.key())
                                  : fmt::format("{}.{}", path, std::string(entry.key())),
                     source);
  }
}

FlowDocument plain_flow(json::value root, std::string_view name, std::string_view source,
                        const Params& overrides) {
  if (!root.is_object()) fail(source, "", "a flow file is a map with jobs (and flow, params)");
  json::object& top = root.as_object();
  for (const auto& entry : top)
    if (entry.key() != "jobs" && entry.key() != "flow" && entry.key() != "params")
      fail(source, entry.key(), "unknown key (a flow file holds jobs, flow and params)");
  Scope scope(nullptr, &overrides);
  if (const json::value* params = top.if_contains("params")) {
    if (!params->is_object() && !params->is_null()) fail(source, "params", "must be a map");
    if (params->is_object())
      for (const auto& entry : params->as_object()) {
        if (entry.value().is_object() || entry.value().is_array())
          fail(source, fmt::format("params.{}", std::string(entry.key())),
               "a parameter is a single value");
        scope.define(entry.key(), text_of(entry.value()));
      }
  }
  json::value* jobs = top.if_contains("jobs");
  if (!jobs || !jobs->is_array() || jobs->as_array().empty())
    fail(source, "jobs", "must be a list of at least one job");
  substitute_all(*jobs, scope, "jobs", source);
  json::object flow;
  if (json::value* given = top.if_contains("flow")) {
    if (!given->is_object()) fail(source, "flow", "must be a map (name, key)");
    substitute_all(*given, scope, "flow", source);
    flow = given->as_object();
  }
  if (!flow.contains("name")) flow["name"] = name;
  FlowDocument document;
  document.name =
      flow["name"].is_string() ? std::string(flow["name"].as_string()) : std::string(name);
  document.source = std::string(source);
  json::object batch;
  batch["flow"] = std::move(flow);
  batch["jobs"] = std::move(*jobs);
  document.batch_json = json::serialize(batch);
  return document;
}

// ---- files -----------------------------------------------------------------------

std::string read_file(const std::filesystem::path& path) {
  std::error_code error;
  auto size = std::filesystem::file_size(path, error);
  if (error) fail(path.string(), "", error.message());
  if (size > kMaxFileBytes)
    fail(path.string(), "", fmt::format("is larger than {} bytes", kMaxFileBytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "", "cannot be read");
  // Read at most one byte past the limit: the file may grow while read.
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) fail(path.string(), "", "cannot be read");
  return text;
}

// An Azkaban project's `.project` file says which flow format it holds.
void check_project_file(std::string_view text, std::string_view source) {
  check_text(text, source);
  json::value root = yaml_to_json(text, source, false);
  const json::value* version =
      root.is_object() ? root.as_object().if_contains("azkaban-flow-version") : nullptr;
  if (!version || text_of(*version) != "2.0")
    fail(source, "azkaban-flow-version", "must be 2.0 (ferry reads Flow 2.0 projects)");
}

// One flow file of a directory or zip: its path there, and its text.
struct Entry {
  std::string path;
  std::string text;
};

std::vector<FlowDocument> flows_of(std::vector<Entry> flows, const std::vector<Entry>& projects,
                                   std::string_view container, const Params& params) {
  for (const Entry& project : projects)
    check_project_file(project.text, fmt::format("{}:{}", container, project.path));
  if (flows.empty()) fail(container, "", "holds no .flow file");
  std::sort(flows.begin(), flows.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  std::vector<FlowDocument> documents;
  std::map<std::string, std::string> sources;  // flow name -> where
  for (const Entry& flow : flows) {
    std::string source = fmt::format("{}:{}", container, flow.path);
    std::string stem = std::filesystem::path(flow.path).stem().string();
    auto [place, fresh] = sources.emplace(stem, source);
    if (!fresh)
      fail(source, "", fmt::format("another flow is named \"{}\": {}", stem, place->second));
    documents.push_back(convert(flow.text, Format::azkaban, stem, source, params));
  }
  return documents;
}

std::vector<FlowDocument> load_directory(const std::filesystem::path& directory,
                                         const Params& params) {
  std::vector<Entry> flows, projects;
  std::error_code error;
  std::size_t seen = 0;
  // Symbolic links to directories are not followed, so a loop cannot be.
  for (std::filesystem::recursive_directory_iterator it(directory, error), end; !error && it != end;
       it.increment(error)) {
    if (++seen > kMaxFiles)
      fail(directory.string(), "", fmt::format("holds more than {} files", kMaxFiles));
    if (!it->is_regular_file()) continue;
    std::string extension = it->path().extension().string();
    if (extension != ".flow" && extension != ".project") continue;
    Entry entry{std::filesystem::relative(it->path(), directory).generic_string(),
                read_file(it->path())};
    (extension == ".flow" ? flows : projects).push_back(std::move(entry));
  }
  if (error) fail(directory.string(), "", error.message());
  return flows_of(std::move(flows), projects, directory.string(), params);
}

std::vector<FlowDocument> load_zip(const std::filesystem::path& path, const Params& params) {
  std::string container = path.string();
  int code = 0;
  std::unique_ptr<zip_t, int (*)(zip_t*)> archive(zip_open(container.c_str(), ZIP_RDONLY, &code),
                                                  zip_close);
  if (!archive) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail(container, "", fmt::format("not a readable zip: {}", message));
  }
  zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  if (count < 0 || static_cast<std::size_t>(count) > kMaxFiles)
    fail(container, "", fmt::format("holds more than {} entries", kMaxFiles));
  std::vector<Entry> flows, projects;
  for (zip_uint64_t index = 0; index < static_cast<zip_uint64_t>(count); ++index) {
    const char* raw_name = zip_get_name(archive.get(), index, ZIP_FL_ENC_GUESS);
    if (!raw_name) fail(container, "", fmt::format("entry {} has no name", index));
    std::string name = raw_name;
    // A project is unpacked by some tools: an entry must stay inside it.
    std::filesystem::path entry_path(name);
    bool escapes = name.empty() || name[0] == '/' || name.find('\\') != std::string::npos ||
                   std::any_of(entry_path.begin(), entry_path.end(),
                               [](const std::filesystem::path& part) { return part == ".."; });
    if (escapes)
      fail(container, "", fmt::format("entry \"{}\": an absolute path or '..' is refused", name));
    std::string extension = entry_path.extension().string();
    if (name.back() == '/' || (extension != ".flow" && extension != ".project")) continue;
    zip_stat_t stat;
    if (zip_stat_index(archive.get(), index, 0, &stat) != 0 || !(stat.valid & ZIP_STAT_SIZE))
      fail(container, name, "cannot be read");
    if (stat.size > kMaxFileBytes)
      fail(container, name, fmt::format("is larger than {} bytes", kMaxFileBytes));
    std::unique_ptr<zip_file_t, int (*)(zip_file_t*)> file(zip_fopen_index(archive.get(), index, 0),
                                                           zip_fclose);
    if (!file)
      fail(container, name, fmt::format("cannot be read: {}", zip_strerror(archive.get())));
    // The stated size is not trusted: read at most one byte past the limit.
    std::string text(kMaxFileBytes + 1, '\0');
    std::size_t got = 0;
    while (got < text.size()) {
      zip_int64_t read = zip_fread(file.get(), text.data() + got, text.size() - got);
      if (read < 0)
        fail(container, name, fmt::format("cannot be read: {}", zip_file_strerror(file.get())));
      if (read == 0) break;
      got += static_cast<std::size_t>(read);
    }
    if (got > kMaxFileBytes)
      fail(container, name, fmt::format("is larger than {} bytes", kMaxFileBytes));
    text.resize(got);
    (extension == ".flow" ? flows : projects).push_back(Entry{name, std::move(text)});
  }
  return flows_of(std::move(flows), projects, container, params);
}

}  // namespace

Format format_of(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  if (extension == ".flow") return Format::azkaban;
  if (extension == ".yaml" || extension == ".yml") return Format::plain_yaml;
  if (extension == ".json") return Format::plain_json;
  throw FlowError(fmt::format(
      "{}: not a flow file (.flow for Azkaban Flow 2.0; .yaml, .yml or .json for a ferry flow)",
      path.string()));
}

FlowDocument convert(std::string_view text, Format format, std::string_view name,
                     std::string_view source, const Params& params) {
  check_text(text, source);
  if (format == Format::azkaban) {
    json::value root = yaml_to_json(text, source, false);
    json::array jobs = AzkabanReader(source, params).read(root);
    json::object batch;
    batch["flow"] = json::object{{"name", name}};
    batch["jobs"] = std::move(jobs);
    return FlowDocument{std::string(name), std::string(source), json::serialize(batch)};
  }
  json::value root =
      format == Format::plain_json ? parse_json(text, source) : yaml_to_json(text, source, true);
  return plain_flow(std::move(root), name, source, params);
}

std::vector<FlowDocument> load_flows(const std::filesystem::path& path, const Params& params) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return load_directory(path, params);
  if (!std::filesystem::exists(path, error)) fail(path.string(), "", "no such file or directory");
  if (path.extension() == ".zip") return load_zip(path, params);
  Format format = format_of(path);
  return {convert(read_file(path), format, path.stem().string(), path.string(), params)};
}

}  // namespace ferry::flowfile
