#include "server/job_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <map>

#include "server/api_limits.hpp"
#include "server/json_fields.hpp"

namespace ferry::server {
namespace {

// The names of sched::AfterPolicy's values, in its order.
constexpr std::array<std::string_view, 5> kAfterPolicies = {"success", "end", "failure",
                                                            "one_success", "one_failed"};

namespace json = boost::json;
using namespace json_fields;

CommandSpec command_of(const json::value& value, const Path& path, const SpecLimits& limits) {
  Fields fields(value, path);
  CommandSpec command;
  const json::value* argv = fields.take("argv");
  const json::value* shell = fields.take("shell");
  if ((argv != nullptr) == (shell != nullptr)) fail(path, "needs exactly one of argv and shell");
  if (argv) {
    Path argv_path = fields.path("argv");
    if (!argv->is_array()) fail(argv_path, "must be an array of strings");
    const json::array& items = argv->as_array();
    if (items.empty()) fail(argv_path, "must not be empty");
    if (items.size() > limits.max_argv)
      fail(argv_path, fmt::format("must have at most {} entries", limits.max_argv));
    for (std::size_t i = 0; i < items.size(); ++i)
      command.argv.push_back(
          string_of(items[i], at(argv_path, i), limits.max_string_bytes, i != 0));
  } else {
    command.shell = string_of(*shell, fields.path("shell"), limits.max_string_bytes, false);
  }
  if (const json::value* env = fields.take("env")) {
    Path env_path = fields.path("env");
    if (!env->is_object()) fail(env_path, "must be an object of names to strings");
    for (const auto& entry : env->as_object()) {
      std::string name(entry.key());
      if (name.empty() || name.find('=') != std::string::npos ||
          name.find('\0') != std::string::npos)
        fail(env_path, fmt::format("'{}' is not a variable name", name));
      command.env[name] = string_of(entry.value(), join(env_path, name), limits.max_string_bytes);
    }
  }
  if (const json::value* cwd = fields.take("cwd"))
    command.cwd = string_of(*cwd, fields.path("cwd"), limits.max_string_bytes);
  if (const json::value* input = fields.take("stdin"))
    command.stdin_data = string_of(*input, fields.path("stdin"), limits.max_stdin_bytes);
  fields.reject_unknown();
  return command;
}

CallSpec call_of(const json::value& value, const Path& path, const SpecLimits& limits) {
  Fields fields(value, path);
  CallSpec call;
  const json::value* function = fields.take("function");
  if (!function) fail(fields.path("function"), "is required");
  call.function = name_of(*function, fields.path("function"));
  if (const json::value* args = fields.take("args")) {
    check_depth(*args, fields.path("args"));
    call.args_json = json::serialize(*args);
    if (call.args_json.size() > limits.max_args_json_bytes)
      fail(fields.path("args"),
           fmt::format("must be at most {} bytes of JSON", limits.max_args_json_bytes));
  }
  fields.reject_unknown();
  return call;
}

JobSpec job_of(const json::value& value, const Path& path, const SpecLimits& limits) {
  Fields fields(value, path);
  JobSpec spec;
  const json::value* command = fields.take("command");
  const json::value* call = fields.take("call");
  if ((command != nullptr) == (call != nullptr))
    fail(path, "needs exactly one of command and call");
  if (command)
    spec.work = command_of(*command, fields.path("command"), limits);
  else
    spec.work = call_of(*call, fields.path("call"), limits);
  if (const json::value* name = fields.take("name"))
    spec.name = string_of(*name, fields.path("name"), 256);
  if (const json::value* queue = fields.take("queue"))
    spec.queue = name_of(*queue, fields.path("queue"));
  if (const json::value* priority = fields.take("priority"))
    spec.priority = integer_of(*priority, fields.path("priority"), -1000, 1000);
  if (const json::value* retries = fields.take("retries"))
    spec.retries = integer_of(*retries, fields.path("retries"), 0, 100);
  if (const json::value* delay = fields.take("retry_delay"))
    spec.retry_delay = seconds_of(*delay, fields.path("retry_delay"));
  if (const json::value* timeout = fields.take("timeout"))
    spec.timeout = seconds_of(*timeout, fields.path("timeout"));
  if (const json::value* delay = fields.take("delay"))
    spec.delay = seconds_of(*delay, fields.path("delay"));
  if (const json::value* ref = fields.take("ref")) spec.ref = name_of(*ref, fields.path("ref"));
  if (const json::value* after = fields.take("after")) {
    Path after_path = fields.path("after");
    if (!after->is_array()) fail(after_path, "must be an array of job ids and refs");
    if (after->as_array().size() > 1000) fail(after_path, "must name at most 1000 jobs");
    for (std::size_t i = 0; i < after->as_array().size(); ++i) {
      const json::value& item = after->as_array()[i];
      if (item.is_string())
        spec.after_refs.push_back(name_of(item, at(after_path, i)));
      else if (item.is_number())
        spec.after.push_back(id_of(item, at(after_path, i)));
      else
        fail(at(after_path, i), "must be a job id or a ref");
    }
  }
  if (const json::value* policy = fields.take("after_policy")) {
    std::string given = string_of(*policy, fields.path("after_policy"), 16);
    auto named = std::find(kAfterPolicies.begin(), kAfterPolicies.end(), given);
    if (named == kAfterPolicies.end())
      fail(fields.path("after_policy"),
           "must be \"success\", \"end\", \"failure\", \"one_success\" or \"one_failed\"");
    spec.after_policy = static_cast<sched::AfterPolicy>(named - kAfterPolicies.begin());
  }
  if (const json::value* key = fields.take("key"))
    spec.key = string_of(*key, fields.path("key"), 256, false);
  if (const json::value* keep = fields.take("keep"))
    spec.keep = seconds_of(*keep, fields.path("keep"));
  if (const json::value* labels = fields.take("labels")) {
    Path labels_path = fields.path("labels");
    if (!labels->is_array()) fail(labels_path, "must be an array of strings");
    if (labels->as_array().size() > 32) fail(labels_path, "must have at most 32 labels");
    for (std::size_t i = 0; i < labels->as_array().size(); ++i)
      spec.labels.push_back(name_of(labels->as_array()[i], at(labels_path, i)));
  }
  fields.reject_unknown();
  return spec;
}

}  // namespace

JobSpec parse_job_spec(std::string_view text, const SpecLimits& limits) {
  return job_of(parse_document(text), "", limits);
}

Submission parse_job_batch(std::string_view text, const SpecLimits& limits) {
  return submission_of(parse_document(text), limits);
}

namespace {

// Refs name jobs of one batch: each once, each named one there, no cycle.
void check_refs(const std::vector<JobSpec>& jobs) {
  std::map<std::string_view, std::size_t> index;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].ref.empty()) continue;
    auto [place, fresh] = index.emplace(jobs[i].ref, i);
    if (!fresh)
      fail(join(at("jobs", i), "ref"),
           fmt::format("'{}' is the ref of jobs[{}] too", jobs[i].ref, place->second));
  }
  for (std::size_t i = 0; i < jobs.size(); ++i)
    for (std::size_t k = 0; k < jobs[i].after_refs.size(); ++k)
      if (!index.contains(jobs[i].after_refs[k]))
        fail(at(join(at("jobs", i), "after"), k),
             fmt::format("no job of this batch has the ref '{}'", jobs[i].after_refs[k]));
  // Depth-first, without recursion: 0 unvisited, 1 on the path, 2 done.
  std::vector<int> mark(jobs.size(), 0);
  for (std::size_t start = 0; start < jobs.size(); ++start) {
    if (mark[start]) continue;
    std::vector<std::pair<std::size_t, std::size_t>> path{{start, 0}};  // job, next edge
    mark[start] = 1;
    while (!path.empty()) {
      auto& [job, edge] = path.back();
      if (edge == jobs[job].after_refs.size()) {
        mark[job] = 2;
        path.pop_back();
        continue;
      }
      std::size_t next = index.at(jobs[job].after_refs[edge++]);
      if (mark[next] == 1) {
        std::string cycle = jobs[next].ref;
        auto from = std::find_if(path.begin(), path.end(),
                                 [&](const auto& step) { return step.first == next; });
        for (auto step = from + 1; step != path.end(); ++step)
          cycle += " -> " + jobs[step->first].ref;
        fail("jobs", fmt::format("the dependencies form a cycle: {} -> {}", cycle, jobs[next].ref));
      }
      if (mark[next] == 0) {
        mark[next] = 1;
        path.push_back({next, 0});
      }
    }
  }
}

}  // namespace

JobSpec spec_of(const json::value& document, const SpecLimits& limits) {
  return job_of(document, "", limits);
}

Submission submission_of(const json::value& document, const SpecLimits& limits) {
  Fields fields(document, "");
  const json::value* jobs = fields.take("jobs");
  const json::value* flow = fields.take("flow");
  fields.reject_unknown();
  if (!jobs || !jobs->is_array()) fail("jobs", "must be an array of jobs");
  const json::array& items = jobs->as_array();
  if (items.empty()) fail("jobs", "must hold at least one job");
  if (items.size() > limits.max_jobs_per_batch)
    fail("jobs", fmt::format("must hold at most {} jobs per request", limits.max_jobs_per_batch));
  Submission submission;
  submission.jobs.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i)
    submission.jobs.push_back(job_of(items[i], at("jobs", i), limits));
  check_refs(submission.jobs);
  bool has_refs = std::any_of(submission.jobs.begin(), submission.jobs.end(),
                              [](const JobSpec& job) { return !job.ref.empty(); });
  if (flow) {
    Fields given(*flow, "flow");
    submission.flow.emplace();
    if (const json::value* name = given.take("name"))
      submission.flow->name = string_of(*name, given.path("name"), 256);
    if (const json::value* key = given.take("key"))
      submission.flow->key = string_of(*key, given.path("key"), 256, false);
    given.reject_unknown();
  } else if (has_refs) {
    submission.flow.emplace();
  }
  if (submission.flow)
    for (std::size_t i = 0; i < submission.jobs.size(); ++i)
      if (!submission.jobs[i].key.empty())
        fail(join(at("jobs", i), "key"),
             "a job of a flow has no key of its own: give the flow one (\"flow\": {\"key\": ...})");
  return submission;
}

std::string to_json(const JobSpec& spec) {
  json::object object;
  if (const auto* command = std::get_if<CommandSpec>(&spec.work)) {
    json::object work;
    if (!command->argv.empty())
      work["argv"] = json::array(command->argv.begin(), command->argv.end());
    else
      work["shell"] = command->shell;
    if (!command->env.empty()) {
      json::object env;
      for (const auto& [name, value] : command->env) env[name] = value;
      work["env"] = std::move(env);
    }
    if (!command->cwd.empty()) work["cwd"] = command->cwd;
    if (command->stdin_data) work["stdin"] = *command->stdin_data;
    object["command"] = std::move(work);
  } else {
    const auto& call = std::get<CallSpec>(spec.work);
    object["call"] = json::object{{"function", call.function},
                                  {"args", json::parse(call.args_json, {}, api_parse_options())}};
  }
  // Defaults are left out: a million queued specs are held in memory.
  const JobSpec defaults;
  if (spec.name != defaults.name) object["name"] = spec.name;
  if (spec.queue != defaults.queue) object["queue"] = spec.queue;
  if (spec.priority != defaults.priority) object["priority"] = spec.priority;
  if (spec.retries != defaults.retries) object["retries"] = spec.retries;
  if (spec.retry_delay != defaults.retry_delay)
    object["retry_delay"] = seconds_value(spec.retry_delay);
  if (spec.timeout != defaults.timeout) object["timeout"] = seconds_value(spec.timeout);
  if (spec.delay != defaults.delay) object["delay"] = seconds_value(spec.delay);
  if (!spec.labels.empty()) object["labels"] = json::array(spec.labels.begin(), spec.labels.end());
  if (!spec.key.empty()) object["key"] = spec.key;
  if (spec.keep) object["keep"] = seconds_value(*spec.keep);
  if (!spec.ref.empty()) object["ref"] = spec.ref;
  if (!spec.after.empty() || !spec.after_refs.empty()) {
    json::array after(spec.after.begin(), spec.after.end());
    for (const std::string& ref : spec.after_refs) after.push_back(json::value(ref));
    object["after"] = std::move(after);
  }
  if (spec.after_policy != sched::AfterPolicy::success)
    object["after_policy"] = kAfterPolicies[static_cast<std::size_t>(spec.after_policy)];
  return json::serialize(object);
}

}  // namespace ferry::server
