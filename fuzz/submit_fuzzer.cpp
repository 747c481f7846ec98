// POST /v1/jobs bodies: the strict JSON reader under every parser of the
// API, then one job or a batch under small limits.
//
// - parse_document accepts exactly what Boost.JSON accepts at the same depth,
//   except an object holding a key twice, and reads the same value (each
//   number to the nearest double); what it read, written out, reads back
//   exactly;
// - a refusal says where and what;
// - every job accepted keeps within the limits it was parsed under, and its
//   strings are UTF-8 text without NUL.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "fuzz_checks.hpp"
#include "server/api_json.hpp"

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
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body = ferry::fuzz::text_of(data, size);
  check_document(body);
  std::vector<JobSpec> specs;
  try {
    specs = parse_submit(body, kLimits);
  } catch (const SpecError& refusal) {
    ferry::fuzz::check_refusal(refusal);
    return 0;
  }
  require(!specs.empty() && specs.size() <= kLimits.max_jobs_per_batch,
          "a submit holds 1 to max_jobs_per_batch jobs");
  for (const JobSpec& spec : specs) check_limits(spec);
  return 0;
}
