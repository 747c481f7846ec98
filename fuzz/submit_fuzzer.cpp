// POST /v1/jobs bodies: the strict JSON reader under every parser of the
// API, then one job or a batch under small limits.
//
// - parse_document accepts exactly what Boost.JSON accepts at the same depth,
//   except an object holding a key twice, and reads the same value (each
//   number to the nearest double); what it read, written out, reads back
//   exactly;
// - a refusal says where and what;
// - every job accepted keeps within the limits it was parsed under, and its
//   strings are UTF-8 text without NUL;
// - a batch accepted is a flow exactly when it says so or its jobs have
//   refs; refs are unique names, each ref named in `after` is one of the
//   batch, the dependencies form no cycle, and no job of a flow has a key;
// - a job alone names no other by ref;
// - a batch refused for a cycle names a real one;
// - read as a PATCH of a queue's settings, what is accepted is within its
//   bounds and reads back the same from its JSON.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "fuzz_checks.hpp"
#include "server/api_json.hpp"
#include "server/queue_settings.hpp"

namespace {

namespace json = boost::json;
using namespace ferry::server;
using ferry::fuzz::is_api_text;
using ferry::fuzz::require;

bool all_finite(const json::value& value) {
  try {
    json_fields::check_finite(value, "");
    return true;
  } catch (const SpecError&) {
    return false;
  }
}

// Small enough for a fuzzer to reach each limit within a few kilobytes.
constexpr SpecLimits kLimits{.max_jobs_per_batch = 4,
                             .max_argv = 4,
                             .max_string_bytes = 40,
                             .max_stdin_bytes = 60,
                             .max_args_json_bytes = 80};

// Boost.JSON's reading, `reference`, and parse_document's agree, but for
// doubles, which parse_document reads to the nearest (Boost.JSON 1.81 only
// near it, and 0e500 as NaN).
bool same_value(const json::value& value, const json::value& reference) {
  if (value.is_double() && reference.is_double()) {
    double ours = value.get_double(), theirs = reference.get_double();
    if (std::isnan(theirs)) return ours == 0;
    if (std::isinf(theirs) || ours == 0 || theirs == 0)
      return ours == theirs || std::abs(ours) < 1e-300;
    return std::abs(ours - theirs) <= 1e-15 * std::abs(theirs);
  }
  if (value.kind() != reference.kind()) return false;
  if (const auto* object = value.if_object()) {
    const json::object& other = reference.as_object();
    if (object->size() != other.size()) return false;
    for (auto a = object->begin(), b = other.begin(); a != object->end(); ++a, ++b)
      if (a->key() != b->key() || !same_value(a->value(), b->value())) return false;
    return true;
  }
  if (const auto* array = value.if_array()) {
    const json::array& other = reference.as_array();
    if (array->size() != other.size()) return false;
    for (std::size_t i = 0; i < array->size(); ++i)
      if (!same_value((*array)[i], other[i])) return false;
    return true;
  }
  return value == reference;
}

void check_document(std::string_view body) {
  json::error_code error;
  json::value reference = json::parse(body, error, {}, api_parse_options());
  json::value value;
  try {
    value = json_fields::parse_document(body);
  } catch (const SpecError& refusal) {
    ferry::fuzz::check_refusal(refusal);
    std::string_view why = refusal.what();
    require(error || why.find("twice") != std::string_view::npos,
            "parse_document refuses valid JSON only for a key given twice", why);
    return;
  }
  require(!error, "parse_document accepts only JSON", error.message());
  require(same_value(value, reference), "parse_document reads what Boost.JSON reads");
  // What it read, written as JSON, reads back exactly (finite numbers).
  if (!all_finite(value)) return;
  std::string text = json::serialize(value);
  require(json::serialize(ferry::fuzz::reparsed(text, "serialize gives JSON")) == text,
          "parse_document reads back what serialize wrote", text);
}

bool is_name(const std::string& text) {
  return !text.empty() && text.size() <= 128 && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == ':';
  });
}

bool is_string_field(const std::string& text, std::size_t limit) {
  return text.size() <= limit && is_api_text(text);
}

void check_limits(const JobSpec& spec) {
  if (const auto* command = std::get_if<CommandSpec>(&spec.work)) {
    require(command->argv.empty() != command->shell.empty(), "a command has argv or shell");
    require(command->argv.size() <= kLimits.max_argv, "argv within its limit");
    require(command->argv.empty() || !command->argv[0].empty(), "argv[0] is not empty");
    for (const std::string& word : command->argv)
      require(is_string_field(word, kLimits.max_string_bytes), "argv entries are text");
    require(is_string_field(command->shell, kLimits.max_string_bytes), "shell is text");
    for (const auto& [name, value] : command->env) {
      require(!name.empty() && name.find('=') == std::string::npos && is_api_text(name),
              "env names are variable names", name);
      require(is_string_field(value, kLimits.max_string_bytes), "env values are text");
    }
    require(is_string_field(command->cwd, kLimits.max_string_bytes), "cwd is text");
    if (command->stdin_data)
      require(is_string_field(*command->stdin_data, kLimits.max_stdin_bytes), "stdin is text");
  } else {
    const auto& call = std::get<CallSpec>(spec.work);
    require(is_name(call.function), "a function is a name", call.function);
    require(call.args_json.size() <= kLimits.max_args_json_bytes, "args within its limit");
    json::value args = ferry::fuzz::reparsed(call.args_json, "args are JSON");
    require(value_depth(args) <= kMaxValueDepth, "args within the depth limit", call.args_json);
  }
  require(is_string_field(spec.name, 256), "a name is text");
  require(is_name(spec.queue), "a queue is a name", spec.queue);
  require(spec.priority >= -1000 && spec.priority <= 1000, "priority in range");
  require(spec.retries >= 0 && spec.retries <= 100, "retries in range");
  require(spec.key.size() <= 256 && is_api_text(spec.key), "a key is text");
  for (auto duration : {spec.retry_delay, spec.timeout, spec.delay,
                        spec.keep.value_or(std::chrono::milliseconds(0))})
    require(duration.count() >= 0 && duration.count() <= 365LL * 24 * 3600 * 1000,
            "durations from 0 to a year");
  require(spec.labels.size() <= 32, "at most 32 labels");
  for (const std::string& label : spec.labels) require(is_name(label), "labels are names", label);
  require(spec.ref.empty() || is_name(spec.ref), "a ref is a name", spec.ref);
  require(spec.after.size() + spec.after_refs.size() <= 1000, "after names at most 1000 jobs");
  for (std::uint64_t id : spec.after) require(id > 0, "ids in after are positive");
  for (const std::string& ref : spec.after_refs) require(is_name(ref), "refs in after are names");
}

// Whether the jobs of a batch, each running after those its after_refs
// name, can all run: Kahn's order, apart from the parser's depth-first walk.
bool acyclic(const std::vector<JobSpec>& jobs) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (!jobs[i].ref.empty()) index[jobs[i].ref] = i;
  std::vector<std::size_t> waiting(jobs.size(), 0);
  std::vector<std::vector<std::size_t>> unblocks(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i)
    for (const std::string& ref : jobs[i].after_refs) {
      ++waiting[i];
      unblocks[index.at(ref)].push_back(i);
    }
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (waiting[i] == 0) ready.push_back(i);
  std::size_t ran = 0;
  while (!ready.empty()) {
    std::size_t job = ready.back();
    ready.pop_back();
    ++ran;
    for (std::size_t next : unblocks[job])
      if (--waiting[next] == 0) ready.push_back(next);
  }
  return ran == jobs.size();
}

void check_submission(const json::value& document, const Submission& submission) {
  require(!submission.jobs.empty() && submission.jobs.size() <= kLimits.max_jobs_per_batch,
          "a submit holds 1 to max_jobs_per_batch jobs");
  for (const JobSpec& spec : submission.jobs) check_limits(spec);
  const json::object& object = document.as_object();
  if (!object.contains("jobs")) {
    require(submission.jobs.size() == 1 && !submission.flow, "one job alone is no flow");
    require(submission.jobs[0].after_refs.empty(), "a job alone names no other by ref");
    return;
  }
  std::set<std::string> refs;
  for (const JobSpec& spec : submission.jobs)
    if (!spec.ref.empty()) require(refs.insert(spec.ref).second, "refs are unique", spec.ref);
  for (const JobSpec& spec : submission.jobs)
    for (const std::string& ref : spec.after_refs)
      require(refs.contains(ref), "each ref in after is one of the batch", ref);
  require(acyclic(submission.jobs), "the dependencies of a batch form no cycle");
  require(submission.flow.has_value() == (object.contains("flow") || !refs.empty()),
          "a batch is a flow when it says so or has refs");
  if (!submission.flow) return;
  for (const JobSpec& spec : submission.jobs)
    require(spec.key.empty(), "no job of a flow has a key", spec.key);
  const FlowSpec& flow = *submission.flow;
  require(is_string_field(flow.name, 256) && is_string_field(flow.key, 256),
          "a flow's name and key are text");
}

// "jobs: the dependencies form a cycle: a -> b -> a": each ref runs after
// the next, in the batch as it was sent.
void check_cycle(std::string_view body, std::string_view why) {
  constexpr std::string_view kCycle = "jobs: the dependencies form a cycle: ";
  if (!why.starts_with(kCycle)) return;
  // (A field of that name, unknown, is refused with its name first.)
  json::value document = json_fields::parse_document(body);
  for (const auto& field : document.as_object())
    if (field.key() != "jobs" && field.key() != "flow") return;
  std::map<std::string, std::set<std::string>> after;  // ref -> refs it runs after
  for (const json::value& job : document.at("jobs").as_array()) {
    const json::object& fields = job.as_object();
    const json::value* ref = fields.if_contains("ref");
    if (!ref) continue;
    std::set<std::string>& named = after[std::string(ref->as_string())];
    if (const json::value* list = fields.if_contains("after"))
      for (const json::value& item : list->as_array())
        if (item.is_string()) named.insert(std::string(item.as_string()));
  }
  std::vector<std::string> steps;
  for (std::string_view rest = why.substr(kCycle.size());;) {
    std::size_t arrow = rest.find(" -> ");
    steps.emplace_back(rest.substr(0, arrow));
    if (arrow == std::string_view::npos) break;
    rest.remove_prefix(arrow + 4);
  }
  require(steps.size() >= 2 && steps.front() == steps.back(), "a cycle ends where it began", why);
  for (std::size_t i = 0; i + 1 < steps.size(); ++i)
    require(after[steps[i]].contains(steps[i + 1]), "each ref of a cycle runs after the next", why);
}

}  // namespace

void check_queue_patch(std::string_view body) {
  QueueSettings settings;
  try {
    settings = patch_queue_settings(body, {});
  } catch (const SpecError& refusal) {
    ferry::fuzz::check_refusal(refusal);
    return;
  }
  auto within = [](std::uint32_t n, std::uint32_t low) { return n >= low && n <= 1'000'000; };
  require(!settings.max_running || within(*settings.max_running, 1), "max_running in bounds");
  require(!settings.rate || within(settings.rate->count, 1), "a rate's count in bounds");
  require(within(settings.burst, 0) && within(settings.per_key, 1), "burst and limit in bounds");
  require(patch_queue_settings(to_json(settings), {}) == settings,
          "queue settings read back the same");
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body = ferry::fuzz::text_of(data, size);
  check_document(body);
  check_queue_patch(body);
  Submission submission;
  try {
    submission = parse_submit(body, kLimits);
  } catch (const SpecError& refusal) {
    ferry::fuzz::check_refusal(refusal);
    check_cycle(body, refusal.what());
    return 0;
  }
  check_submission(json_fields::parse_document(body), submission);
  return 0;
}
