#include "server/job_spec.hpp"

#include <fmt/format.h>

#include <gtest/gtest.h>

namespace ferry::server {
namespace {

using namespace std::chrono_literals;

std::string error_of(std::string_view json, const SpecLimits& limits = {}) {
  try {
    parse_job_spec(json, limits);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "(accepted)";
}

TEST(JobSpec, AMinimalCommandGetsTheDefaults) {
  JobSpec spec = parse_job_spec(R"({"command": {"argv": ["echo", "hi"]}})");
  const auto& command = std::get<CommandSpec>(spec.work);
  EXPECT_EQ(command.argv, (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(spec.queue, "default");
  EXPECT_EQ(spec.priority, 0);
  EXPECT_EQ(spec.retries, 0);
  EXPECT_EQ(spec.retry_delay, 1000ms);
  EXPECT_EQ(spec.timeout, 0ms);
}

TEST(JobSpec, EveryField) {
  JobSpec spec = parse_job_spec(R"({
    "command": {"shell": "echo $X | wc -c", "env": {"X": "1"}, "cwd": "/tmp", "stdin": "in"},
    "name": "count", "queue": "gpu.large", "priority": -5, "retries": 3,
    "retry_delay": 0.5, "timeout": 60, "delay": 2.25, "labels": ["gpu", "zone:a"],
    "key": "count-17", "keep": 3600})");
  const auto& command = std::get<CommandSpec>(spec.work);
  EXPECT_EQ(command.shell, "echo $X | wc -c");
  EXPECT_EQ(command.env.at("X"), "1");
  EXPECT_EQ(command.cwd, "/tmp");
  EXPECT_EQ(command.stdin_data, "in");
  EXPECT_EQ(spec.name, "count");
  EXPECT_EQ(spec.queue, "gpu.large");
  EXPECT_EQ(spec.priority, -5);
  EXPECT_EQ(spec.retries, 3);
  EXPECT_EQ(spec.retry_delay, 500ms);
  EXPECT_EQ(spec.timeout, 60s);
  EXPECT_EQ(spec.delay, 2250ms);
  EXPECT_EQ(spec.labels, (std::vector<std::string>{"gpu", "zone:a"}));
  EXPECT_EQ(spec.key, "count-17");
  EXPECT_EQ(spec.keep, 3600s);
  EXPECT_EQ(parse_job_spec(to_json(spec)), spec);
}

TEST(JobSpec, CallsKeepTheirArgumentsAsJson) {
  JobSpec spec =
      parse_job_spec(R"({"call": {"function": "square", "args": {"n": [1, 2.5, null]}}})");
  const auto& call = std::get<CallSpec>(spec.work);
  EXPECT_EQ(call.function, "square");
  EXPECT_EQ(call.args_json, R"({"n":[1,2.5E0,null]})");
  EXPECT_EQ(std::get<CallSpec>(parse_job_spec(R"({"call": {"function": "f"}})").work).args_json,
            "null");
}

TEST(JobSpec, CanonicalJsonRoundTrips) {
  for (const char* json :
       {R"({"command": {"argv": ["a", ""]}, "labels": ["x"], "timeout": 1.5})",
        R"({"command": {"shell": "true", "env": {"A": "b"}, "stdin": ""}, "priority": 7})",
        R"({"call": {"function": "f.g", "args": [1, "two", {"three": 3}]}, "queue": "q"})"}) {
    JobSpec spec = parse_job_spec(json);
    std::string canonical = to_json(spec);
    EXPECT_EQ(parse_job_spec(canonical), spec) << canonical;
    EXPECT_EQ(to_json(parse_job_spec(canonical)), canonical);
  }
}

TEST(JobSpec, BadInputNamesTheField) {
  EXPECT_EQ(error_of("{"), "the body is not valid JSON: incomplete JSON");
  EXPECT_EQ(error_of("{]"), "the body is not valid JSON: syntax error");
  EXPECT_EQ(error_of("[]"), "the body: must be a JSON object");
  EXPECT_EQ(error_of("{}"), "the body: needs exactly one of command and call");
  EXPECT_EQ(error_of(R"({"command": {"argv": ["a"]}, "call": {"function": "f"}})"),
            "the body: needs exactly one of command and call");
  EXPECT_EQ(error_of(R"({"command": {"argv": ["a"]}, "retires": 2})"),
            "retires: is not a known field");
  EXPECT_EQ(error_of(R"({"command": {"argv": []}})"), "command.argv: must not be empty");
  EXPECT_EQ(error_of(R"({"command": {"argv": "ls"}})"),
            "command.argv: must be an array of strings");
  EXPECT_EQ(error_of(R"({"command": {"argv": ["ls", 3]}})"), "command.argv[1]: must be a string");
  EXPECT_EQ(error_of(R"({"command": {"argv": [""]}})"), "command.argv[0]: must not be empty");
  EXPECT_EQ(error_of(R"({"command": {"argv": ["a"], "shell": "b"}})"),
            "command: needs exactly one of argv and shell");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x", "evn": {}}})"),
            "command.evn: is not a known field");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x", "env": {"A=B": "1"}}})"),
            "command.env: 'A=B' is not a variable name");
  EXPECT_EQ(error_of(R"({"command": {"shell": "a\u0000b"}})"),
            "command.shell: must not contain a NUL character");
  EXPECT_EQ(error_of(R"({"call": {}})"), "call.function: is required");
  EXPECT_EQ(error_of(R"({"call": {"function": "rm -rf"}})"),
            "call.function: may hold only letters, digits and _ - . :");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "priority": 1.5})"),
            "priority: must be a whole number");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "priority": 5000})"),
            "priority: must be from -1000 to 1000");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "retries": -1})"),
            "retries: must be from 0 to 100");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "retries": 18446744073709551615})"),
            "retries: must be from 0 to 100");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "timeout": "1m"})"),
            "timeout: must be a number of seconds");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "delay": -1})"),
            "delay: must be from 0 seconds to a year");
  // Durations count in milliseconds: a smaller one would silently become 0.
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "timeout": 0.0004})"),
            "timeout: must be 0 or at least 0.001 seconds");
  EXPECT_EQ(parse_job_spec(R"({"command": {"shell": "x"}, "retry_delay": 0.05})").retry_delay,
            std::chrono::milliseconds(50));
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "queue": ""})"), "queue: must not be empty");
  EXPECT_EQ(error_of(R"({"command": {"shell": "x"}, "labels": ["ok", "not ok"]})"),
            "labels[1]: may hold only letters, digits and _ - . :");
}

TEST(JobSpec, LimitsAreEnforced) {
  SpecLimits limits;
  limits.max_argv = 2;
  limits.max_string_bytes = 4;
  limits.max_stdin_bytes = 3;
  limits.max_args_json_bytes = 8;
  EXPECT_EQ(error_of(R"({"command": {"argv": ["a", "b", "c"]}})", limits),
            "command.argv: must have at most 2 entries");
  EXPECT_EQ(error_of(R"({"command": {"argv": ["abcde"]}})", limits),
            "command.argv[0]: must be at most 4 bytes");
  EXPECT_EQ(error_of(R"({"command": {"argv": ["a"], "stdin": "abcd"}})", limits),
            "command.stdin: must be at most 3 bytes");
  EXPECT_EQ(error_of(R"({"call": {"function": "f", "args": [1, 2, 3, 4]}})", limits),
            "call.args: must be at most 8 bytes of JSON");
  std::string deep(100, '[');
  EXPECT_NE(error_of(R"({"call": {"function": "f", "args": )" + deep + "}}"), "(accepted)");
}

TEST(JobBatch, ParsesAndLimitsBatches) {
  Submission batch =
      parse_job_batch(R"({"jobs": [{"command": {"argv": ["a"]}}, {"call": {"function": "f"}}]})");
  ASSERT_EQ(batch.jobs.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<CallSpec>(batch.jobs[1].work));
  EXPECT_FALSE(batch.flow);

  auto error = [](std::string_view json, SpecLimits limits = {}) -> std::string {
    try {
      parse_job_batch(json, limits);
    } catch (const SpecError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_EQ(error(R"({"jobs": []})"), "jobs: must hold at least one job");
  EXPECT_EQ(error(R"({"job": []})"), "job: is not a known field");
  EXPECT_EQ(error(R"({})"), "jobs: must be an array of jobs");
  EXPECT_EQ(error(R"({"jobs": [{"command": {"argv": ["a"]}}, {"command": {}}]})"),
            "jobs[1].command: needs exactly one of argv and shell");
  SpecLimits small;
  small.max_jobs_per_batch = 1;
  EXPECT_EQ(error(R"({"jobs": [{"call": {"function": "f"}}, {"call": {"function": "f"}}]})", small),
            "jobs: must hold at most 1 jobs per request");
}

TEST(JobBatch, RefsNameJobsOfTheBatchWithoutCycles) {
  Submission flow = parse_job_batch(R"({"jobs": [
    {"ref": "prepare", "command": {"argv": ["p"]}},
    {"ref": "work", "after": ["prepare", 17], "command": {"argv": ["w"]}},
    {"ref": "report", "after": ["work"], "after_policy": "end", "command": {"argv": ["r"]}}]})");
  ASSERT_TRUE(flow.flow);  // refs make it a flow
  EXPECT_EQ(flow.jobs[1].after_refs, std::vector<std::string>{"prepare"});
  EXPECT_EQ(flow.jobs[1].after, std::vector<std::uint64_t>{17});
  EXPECT_EQ(flow.jobs[2].after_policy, sched::AfterPolicy::end);
  for (const char* policy : {"success", "end", "failure", "one_success", "one_failed"}) {
    JobSpec spec = parse_job_spec(fmt::format(
        R"({{"after": [1], "after_policy": "{}", "command": {{"argv": ["x"]}}}})", policy));
    EXPECT_EQ(parse_job_spec(to_json(spec)), spec) << policy;
  }
  Submission named = parse_job_batch(
      R"({"flow": {"name": "nightly", "key": "2026-11-27"}, "jobs": [{"command": {"argv": ["a"]}}]})");
  EXPECT_EQ(named.flow, (FlowSpec{"nightly", "2026-11-27"}));

  auto error = [](std::string_view json) -> std::string {
    try {
      parse_job_batch(json);
    } catch (const SpecError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_EQ(error(R"({"jobs": [{"ref": "a", "command": {"argv": ["x"]}},
                               {"ref": "a", "command": {"argv": ["y"]}}]})"),
            "jobs[1].ref: 'a' is the ref of jobs[0] too");
  EXPECT_EQ(error(R"({"jobs": [{"after": ["nowhere"], "command": {"argv": ["x"]}}]})"),
            "jobs[0].after[0]: no job of this batch has the ref 'nowhere'");
  EXPECT_EQ(error(R"({"jobs": [{"ref": "a", "after": ["c"], "command": {"argv": ["x"]}},
                               {"ref": "b", "after": ["a"], "command": {"argv": ["y"]}},
                               {"ref": "c", "after": ["b"], "command": {"argv": ["z"]}}]})"),
            "jobs: the dependencies form a cycle: a -> c -> b -> a");
  EXPECT_EQ(error(R"({"jobs": [{"ref": "self", "after": ["self"], "command": {"argv": ["x"]}}]})"),
            "jobs: the dependencies form a cycle: self -> self");
  EXPECT_EQ(error(R"({"jobs": [{"ref": "a", "key": "k", "command": {"argv": ["x"]}}]})"),
            "jobs[0].key: a job of a flow has no key of its own: give the flow one (\"flow\": "
            "{\"key\": ...})");
  EXPECT_EQ(error(R"({"jobs": [{"after": [0], "command": {"argv": ["x"]}}]})"),
            "jobs[0].after[0]: must be a positive whole number");
  EXPECT_EQ(error(R"({"jobs": [{"after_policy": "sometimes", "command": {"argv": ["x"]}}]})"),
            "jobs[0].after_policy: must be \"success\", \"end\", \"failure\", \"one_success\" "
            "or \"one_failed\"");
}

}  // namespace
}  // namespace ferry::server
