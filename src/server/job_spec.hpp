// JobSpec — what a client asks to run, as the API accepts it.
//
// A job is either a command (argv, or a shell string, with optional env, cwd
// and stdin) or a call of a function registered on workers (a name and JSON
// arguments), plus where and how it runs: queue, priority, retries with
// backoff, timeout, delay, labels a worker must have. docs/api.md documents
// the JSON form field by field.
//
// Parsing is strict: an unknown field, a wrong type, a value out of range or
// over a size limit is a SpecError naming the field ("jobs[3].command.argv:
// must not be empty"), and nothing is accepted. to_json() gives the canonical
// form the store keeps (defaults left out); parsing it gives the same spec.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sched/scheduler.hpp"

namespace ferry::server {

struct SpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CommandSpec {
  std::vector<std::string> argv;  // either argv ...
  std::string shell;              // ... or a script for /bin/sh -c
  std::map<std::string, std::string> env;
  std::string cwd;
  std::optional<std::string> stdin_data;
  bool operator==(const CommandSpec&) const = default;
};

struct CallSpec {
  std::string function;
  std::string args_json = "null";  // any JSON value, kept as compact text
  bool operator==(const CallSpec&) const = default;
};

struct JobSpec {
  std::variant<CommandSpec, CallSpec> work;
  std::string name;  // for people; not unique
  std::string queue = "default";
  int priority = 0;
  int retries = 0;
  std::chrono::milliseconds retry_delay{1000};  // before the first retry; doubles
  std::chrono::milliseconds timeout{0};         // per attempt; 0: none
  std::chrono::milliseconds delay{0};           // before it may first run
  std::vector<std::string> labels;              // a worker must have them all
  // At most the queue's `concurrency_limit` running jobs share it ("": none).
  std::string concurrency_key;
  // Submitting a job whose key a kept job has gives that job instead of a
  // new one: a submit can be sent again safely.
  std::string key;
  // How long the server keeps it once ended (0: for ever); none: its default.
  std::optional<std::chrono::milliseconds> keep;
  // Dependencies: jobs it runs after, by id, and (in a batch) by the `ref`
  // of another job of the same batch; the server turns refs into ids.
  std::string ref;
  std::vector<std::uint64_t> after;
  std::vector<std::string> after_refs;
  sched::AfterPolicy after_policy = sched::AfterPolicy::success;
  bool operator==(const JobSpec&) const = default;
};

// A batch submitted as one flow: its jobs, a name for people, and a key that
// makes the submit idempotent (the flow is made once while it is kept).
struct FlowSpec {
  std::string name;
  std::string key;
  bool operator==(const FlowSpec&) const = default;
};

// What POST /v1/jobs carries. A batch is a flow when it says so ("flow") or
// when its jobs name each other by ref.
struct Submission {
  std::vector<JobSpec> jobs;
  std::optional<FlowSpec> flow;
};

struct SpecLimits {
  std::size_t max_jobs_per_batch = 10'000;
  std::size_t max_argv = 4096;
  std::size_t max_string_bytes = 64 * 1024;  // each argv entry, shell, env value, ...
  std::size_t max_stdin_bytes = 1024 * 1024;
  std::size_t max_args_json_bytes = 1024 * 1024;
};

// One job object.
JobSpec parse_job_spec(std::string_view json, const SpecLimits& limits = {});

// {"jobs": [job, ...], "flow": {...}}: a batch of at least one and at most
// max_jobs_per_batch. Refs are checked here: unique in the batch, every one
// named in `after` is there, and they form no cycle.
Submission parse_job_batch(std::string_view json, const SpecLimits& limits = {});

// The canonical JSON form: fixed field order, fields at their defaults left out.
std::string to_json(const JobSpec& spec);

}  // namespace ferry::server
