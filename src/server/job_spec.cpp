#include "server/job_spec.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "server/api_limits.hpp"
#include "server/json_fields.hpp"

namespace ferry::server {
namespace {

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
    check_finite(*args, fields.path("args"));
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

std::vector<JobSpec> parse_job_batch(std::string_view text, const SpecLimits& limits) {
  json::value document = parse_document(text);
  Fields fields(document, "");
  const json::value* jobs = fields.take("jobs");
  fields.reject_unknown();
  if (!jobs || !jobs->is_array()) fail("jobs", "must be an array of jobs");
  const json::array& items = jobs->as_array();
  if (items.empty()) fail("jobs", "must hold at least one job");
  if (items.size() > limits.max_jobs_per_batch)
    fail("jobs", fmt::format("must hold at most {} jobs per request", limits.max_jobs_per_batch));
  std::vector<JobSpec> specs;
  specs.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i)
    specs.push_back(job_of(items[i], at("jobs", i), limits));
  return specs;
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
    // Read as parse_job_spec reads, so each number reads back the same.
    object["call"] =
        json::object{{"function", call.function}, {"args", parse_document(call.args_json)}};
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
  return json::serialize(object);
}

}  // namespace ferry::server
