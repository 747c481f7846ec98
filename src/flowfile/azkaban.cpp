// Azkaban Flow 2.0 files (docs/flows.md) read as the jobs of one API batch:
// nodes become jobs with refs, dependsOn and conditions become `after` and
// `after_policy`, embedded flows are flattened, parameters substituted.
#include <algorithm>
#include <charconv>

#include "flowfile/reading.hpp"

namespace ferry::flowfile::reading {
namespace {

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
}  // namespace

json::array azkaban_jobs(const json::value& root, std::string_view source,
                         const Params& overrides) {
  return AzkabanReader(source, overrides).read(root);
}

}  // namespace ferry::flowfile::reading
