#include "flowfile/flowfile.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zip.h>

#include <boost/json.hpp>
#include <fstream>

#include "server/job_spec.hpp"

namespace ferry::flowfile {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path kExamples = fs::path(FERRY_SOURCE_DIR) / "examples" / "flows";

std::string azkaban(std::string_view text, const Params& params = {}) {
  return convert(text, Format::azkaban, "f", "f.flow", params).batch_json;
}

// The one-line message a text is refused with ("" when it is accepted).
std::string refusal(std::string_view text, Format format = Format::azkaban,
                    const Params& params = {}) {
  try {
    convert(text, format, "f", "f.flow", params);
  } catch (const FlowError& error) {
    return error.what();
  }
  return "";
}

std::string refusal_of_path(const fs::path& path) {
  try {
    load_flows(path);
  } catch (const FlowError& error) {
    return error.what();
  }
  return "";
}

// What the server makes of a batch (docs/api.md): it must accept it.
server::Submission accepted(const std::string& batch) { return server::parse_job_batch(batch); }

class TempDir {
 public:
  TempDir() {
    static int count = 0;
    path_ = fs::temp_directory_path() /
            ("ferry_flowfile_test_" + std::to_string(getpid()) + "_" + std::to_string(count++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& text) const {
    fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

 private:
  fs::path path_;
};

// Writes a zip of (entry name, text) pairs with libzip.
fs::path write_zip(const fs::path& path,
                   const std::vector<std::pair<std::string, std::string>>& entries) {
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  EXPECT_NE(archive, nullptr);
  for (const auto& [name, text] : entries) {
    zip_source_t* source = zip_source_buffer(archive, text.data(), text.size(), 0);
    EXPECT_GE(zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8), 0) << name;
  }
  EXPECT_EQ(zip_close(archive), 0);  // writes; the buffers must live until here
  return path;
}

const std::string kTwoJobs =
    "nodes:\n  - {name: a, type: command, config: {command: echo a}}\n"
    "  - name: b\n    type: noop\n    dependsOn: [a]\n";

// ---- the examples -----------------------------------------------------------------

TEST(FlowFileExamples, BasicIsOneCommandJob) {
  auto flows = load_flows(kExamples / "basic.flow");
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].name, "basic");
  EXPECT_EQ(flows[0].source, (kExamples / "basic.flow").string());
  EXPECT_EQ(flows[0].batch_json, R"({"flow":{"name":"basic"},"jobs":[{"ref":"jobA","name":"jobA",)"
                                 R"("command":{"shell":"echo \"This is an echoed text.\""}}]})");
  auto submission = accepted(flows[0].batch_json);
  EXPECT_EQ(submission.flow->name, "basic");
  EXPECT_EQ(std::get<server::CommandSpec>(submission.jobs[0].work).shell,
            "echo \"This is an echoed text.\"");
}

TEST(FlowFileExamples, DependsOnRunsAfterBothAndNumberedCommandsRunInOrder) {
  auto flows = load_flows(kExamples / "depends_on.flow");
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(
      flows[0].batch_json,
      R"({"flow":{"name":"depends_on"},"jobs":[)"
      R"({"ref":"jobC","name":"jobC","command":{"argv":["true"]},"after":["jobA","jobB"]},)"
      R"({"ref":"jobA","name":"jobA","command":{"shell":"echo \"This is an echoed text.\""}},)"
      R"({"ref":"jobB","name":"jobB","command":{"shell":"(\npwd\n) || exit $?\n(\nls -l\n) || exit $?\n"},)"
      R"("retries":2,"retry_delay":1.5E0}]})");
  auto submission = accepted(flows[0].batch_json);
  ASSERT_EQ(submission.jobs.size(), 3u);
  EXPECT_EQ(submission.jobs[0].after_refs, (std::vector<std::string>{"jobA", "jobB"}));
  EXPECT_EQ(submission.jobs[2].retries, 2);
  EXPECT_EQ(submission.jobs[2].retry_delay, std::chrono::milliseconds(1500));
}

TEST(FlowFileExamples, EmbeddedFlowJobsAreRefsOfTheNamePath) {
  auto flows = load_flows(kExamples / "embedded.flow");
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(
      flows[0].batch_json,
      R"({"flow":{"name":"embedded"},"jobs":[)"
      R"({"ref":"jobC","name":"jobC","command":{"argv":["true"]},"after":["embedded_flow1:jobB"]},)"
      R"({"ref":"embedded_flow1:jobB","name":"embedded_flow1:jobB","command":{"argv":["true"]},)"
      R"("after":["embedded_flow1:jobA"]},)"
      R"({"ref":"embedded_flow1:jobA","name":"embedded_flow1:jobA",)"
      R"("command":{"shell":"echo \"prop is value\""}}]})");
  accepted(flows[0].batch_json);
}

TEST(FlowFileExamples, ConditionalMacrosBecomeAfterPolicies) {
  auto flows = load_flows(kExamples / "conditional.flow");
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(
      flows[0].batch_json,
      R"({"flow":{"name":"conditional"},"jobs":[)"
      R"({"ref":"jobA","name":"jobA","command":{"shell":"pwd"}},)"
      R"({"ref":"jobB","name":"jobB","command":{"shell":"sh -c \"exit 1\""}},)"
      R"({"ref":"jobC","name":"jobC","command":{"shell":"echo \"one of jobA and jobB failed\""},)"
      R"("after":["jobA","jobB"],"after_policy":"one_failed"},)"
      R"({"ref":"jobD","name":"jobD","command":{"shell":"echo \"jobA and jobB ended\""},)"
      R"("after":["jobA","jobB"],"after_policy":"end"}]})");
  auto submission = accepted(flows[0].batch_json);
  EXPECT_EQ(submission.jobs[2].after_policy, sched::AfterPolicy::one_failed);
  EXPECT_EQ(submission.jobs[3].after_policy, sched::AfterPolicy::end);
}

TEST(FlowFileExamples, PlainYamlFlowIsTheBatchWithParametersSubstituted) {
  auto flows = load_flows(kExamples / "nightly.yaml", {{"region", "us"}});
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].name, "nightly-us");
  EXPECT_EQ(
      flows[0].batch_json,
      R"({"flow":{"name":"nightly-us"},"jobs":[)"
      R"({"ref":"extract","command":{"argv":["./extract.sh","2026-01-01","us"]},)"
      R"("retries":3,"retry_delay":2.5E0},)"
      R"({"ref":"transform","after":["extract"],)"
      R"("command":{"shell":"./transform.sh 2026-01-01 | gzip > out-2026-01-01.gz"},"timeout":600},)"
      R"({"ref":"report","after":["transform"],"after_policy":"end",)"
      R"("command":{"argv":["./report.sh"]},"labels":["mail"]}]})");
  auto submission = accepted(flows[0].batch_json);
  EXPECT_EQ(submission.jobs[2].after_policy, sched::AfterPolicy::end);
  EXPECT_EQ(submission.jobs[0].retry_delay, std::chrono::milliseconds(2500));
}

TEST(FlowFileExamples, TheExamplesDirectoryIsEveryFlowFileInIt) {
  auto flows = load_flows(kExamples);
  std::vector<std::string> names;
  for (const auto& flow : flows) names.push_back(flow.name);
  EXPECT_EQ(names, (std::vector<std::string>{"basic", "conditional", "depends_on", "embedded"}));
}

// ---- Azkaban Flow 2.0 ------------------------------------------------------------

TEST(AzkabanFlow, DependantsOfAnEmbeddedFlowRunAfterItsLeavesAndItsRootsAfterItsDependencies) {
  std::string text = R"(
nodes:
  - name: start
    type: command
    config: {command: echo start}
  - name: outer
    type: flow
    dependsOn: [start]
    nodes:
      - {name: a, type: command, config: {command: echo a}}
      - {name: b, type: command, config: {command: echo b}}
      - name: inner
        type: flow
        dependsOn: [a]
        nodes:
          - {name: x, type: noop}
          - {name: y, type: noop, dependsOn: [x], condition: all_done}
  - name: end
    type: noop
    dependsOn: [outer]
    condition: all_failed
)";
  std::string batch = azkaban(text);
  accepted(batch);
  json::array jobs = json::parse(batch).at("jobs").as_array();
  std::vector<std::string> refs, afters, policies;
  for (const auto& job : jobs) {
    refs.push_back(std::string(job.at("ref").as_string()));
    afters.push_back(job.as_object().contains("after") ? json::serialize(job.at("after")) : "");
    policies.push_back(job.as_object().contains("after_policy")
                           ? std::string(job.at("after_policy").as_string())
                           : "");
  }
  EXPECT_EQ(refs, (std::vector<std::string>{"start", "outer:a", "outer:b", "outer:inner:x",
                                            "outer:inner:y", "end"}));
  EXPECT_EQ(afters,
            (std::vector<std::string>{"", R"(["start"])", R"(["start"])", R"(["outer:a"])",
                                      R"(["outer:inner:x"])", R"(["outer:b","outer:inner:y"])"}));
  EXPECT_EQ(policies, (std::vector<std::string>{"", "", "", "", "end", "failure"}));
}

TEST(AzkabanFlow, EveryConditionMacroMapsToItsPolicy) {
  const std::pair<const char*, const char*> cases[] = {
      {"all_success", ""},          {"all_done", "end"},
      {"all_failed", "failure"},    {"one_success", "one_success"},
      {"one_failed", "one_failed"},
  };
  for (const auto& [macro, policy] : cases) {
    std::string batch = azkaban(kTwoJobs + "    condition: " + macro + "\n");
    json::value document = json::parse(batch);
    const json::object& job = document.at("jobs").as_array()[1].as_object();
    EXPECT_EQ(job.contains("after_policy") ? std::string(job.at("after_policy").as_string()) : "",
              policy)
        << macro;
    accepted(batch);
  }
}

TEST(AzkabanFlow, ParametersComeFromFlowConfigEmbeddedFlowsAndOverrides) {
  std::string text = R"(
config:
  who: world
  greeting: hello ${who}
  where: outside
nodes:
  - name: top
    type: command
    config: {command: "echo ${greeting} ${where}", retries: "${tries}"}
  - name: sub
    type: flow
    config: {who: inner, tries: 1}
    nodes:
      - {name: job, type: command, config: {command: "echo ${greeting} ${where}"}}
config2: x
)";
  // (config2 is refused; the same text without it is read below.)
  EXPECT_EQ(refusal(text), "f.flow: config2: unknown key (a flow has nodes and config)");
  text = text.substr(0, text.find("config2"));
  EXPECT_EQ(refusal(text), "f.flow: node \"top\": config.retries: unknown parameter ${tries}");
  std::string batch = azkaban(text, {{"tries", "3"}});
  accepted(batch);
  json::array jobs = json::parse(batch).at("jobs").as_array();
  EXPECT_EQ(jobs[0].at("command").at("shell"), "echo hello world outside");
  EXPECT_EQ(jobs[0].at("retries"), 3);
  // The embedded flow's `who` is used by the outer `greeting` (late binding).
  EXPECT_EQ(jobs[1].at("command").at("shell"), "echo hello inner outside");
  // An override wins everywhere.
  batch = azkaban(text, {{"tries", "0"}, {"who", "you"}});
  jobs = json::parse(batch).at("jobs").as_array();
  EXPECT_EQ(jobs[0].at("command").at("shell"), "echo hello you outside");
  EXPECT_EQ(jobs[1].at("command").at("shell"), "echo hello you outside");
  EXPECT_FALSE(jobs[0].as_object().contains("retries"));
}

TEST(AzkabanFlow, RefusalsNameTheFileTheNodeAndTheKey) {
  const std::pair<std::string, std::string> cases[] = {
      {"nodes:\n  - {name: build, type: command, config: {command: make, foo: 1}}\n",
       "f.flow: node \"build\": config.foo: unknown key"},
      {"nodes:\n  - {name: j, type: javaprocess, config: {java.class: X}}\n",
       "f.flow: node \"j\": type: \"javaprocess\" is not supported (ferry runs command, noop and "
       "flow nodes)"},
      {"nodes:\n  - {name: h, type: hadoopJava}\n",
       "f.flow: node \"h\": type: \"hadoopJava\" is not supported (ferry runs command, noop and "
       "flow nodes)"},
      {kTwoJobs + "    condition: ${a:param1} == 1\n",
       "f.flow: node \"b\": condition: \"${a:param1} == 1\" is not supported (only all_success, "
       "all_done, all_failed, one_success, one_failed; conditions on job output are not)"},
      {"nodes:\n  - {name: a, type: noop, dependsOn: [nope]}\n",
       "f.flow: node \"a\": dependsOn: no node \"nope\" in this flow"},
      {"nodes:\n  - {name: a, type: noop, dependsOn: [c]}\n  - {name: b, type: noop, dependsOn: "
       "[a]}\n  - {name: c, type: noop, dependsOn: [b]}\n",
       "f.flow: node \"a\": dependsOn: the dependencies form a cycle: a -> c -> b -> a"},
      {"nodes:\n  - {name: a, type: noop, dependsOn: [a]}\n",
       "f.flow: node \"a\": dependsOn: the dependencies form a cycle: a -> a"},
      {"nodes:\n  - {name: a, type: noop}\n  - {name: a, type: noop}\n",
       "f.flow: node \"a\": name: another node of this flow has this name"},
      {"nodes:\n  - {name: a, type: command, config: {command: \"echo ${nope}\"}}\n",
       "f.flow: node \"a\": config.command: unknown parameter ${nope}"},
      {"config: {x: \"${y}\", y: \"${x}\"}\nnodes:\n  - {name: a, type: command, config: {command: "
       "\"echo ${x}\"}}\n",
       "f.flow: node \"a\": config.command: parameter x refers to itself (used by parameter y)"},
      {"nodes:\n  - {name: a, type: command, config: {command: echo\n",
       "f.flow: line 3, column 1: end of map flow not found"},
      {"nodes:\n  - {name: a, type: command, config: {command: echo, command.1: a, command.3: "
       "b}}\n",
       "f.flow: node \"a\": config.command.3: follows no command.2"},
      {"nodes:\n  - {name: a, type: command, config: {command.1: a}}\n",
       "f.flow: node \"a\": config.command: is required"},
      {"nodes:\n  - {name: a, type: command, config: {command: \"\"}}\n",
       "f.flow: node \"a\": config.command: must not be empty"},
      {"nodes:\n  - name: a\n    type: command\n    config:\n      command:\n",
       "f.flow: node \"a\": config.command: must not be empty"},
      {"nodes:\n  - {name: a, type: command, config: {command: x, command.1: \" \"}}\n",
       "f.flow: node \"a\": config.command.1: must not be empty"},
      {"nodes:\n  - {name: a, type: command, config: {command: x, retries: 101}}\n",
       "f.flow: node \"a\": config.retries: must be a whole number from 0 to 100"},
      {"nodes:\n  - {name: a, type: command, config: {command: x, retries: "
       "99999999999999999999999}}\n",
       "f.flow: node \"a\": config.retries: must be a whole number from 0 to 100"},
      {"nodes:\n  - {name: a, type: command, config: {command: x, retry.backoff: -5}}\n",
       "f.flow: node \"a\": config.retry.backoff: must be a whole number of milliseconds from 1 "
       "to one year"},
      {"nodes:\n  - {name: a, type: noop, config: {command: x}}\n",
       "f.flow: node \"a\": config.command: unknown key (a noop node runs nothing)"},
      {"nodes:\n  - {name: a, type: noop, condition: all_done}\n",
       "f.flow: node \"a\": condition: the node runs after nothing, so it has no condition"},
      {"nodes:\n  - {name: a/b, type: noop}\n",
       "f.flow: node \"a/b\": name: may hold only letters, digits and _ - ."},
      {"nodes:\n  - {name: a, type: noop, retries: 2}\n",
       "f.flow: node \"a\": retries: unknown key"},
      {"nodes:\n  - {name: a, type: noop, nodes: []}\n", "f.flow: node \"a\": nodes: unknown key"},
      {"nodes:\n  - {name: e, type: flow, nodes: [{name: x, type: noop}], condition: all_done}\n",
       "f.flow: node \"e\": condition: not supported on an embedded flow (put it on the flow's "
       "nodes)"},
      {"nodes:\n  - {name: e, type: flow, nodes: [{name: x, type: nope}]}\n",
       "f.flow: node \"e:x\": type: \"nope\" is not supported (ferry runs command, noop and flow "
       "nodes)"},
      {"nodes:\n  - {name: e, type: flow}\n",
       "f.flow: node \"e\": nodes: must be a list of at least one node"},
      {"nodes:\n  - {type: noop}\n", "f.flow: nodes[0]: name: is required"},
      {"nodes:\n  - {name: a}\n", "f.flow: node \"a\": type: is required"},
      {"nodes: []\n", "f.flow: nodes: must be a list of at least one node"},
      {"", "f.flow: a Flow 2.0 file is a map with `nodes` (and `config`)"},
      {"nodes:\n  - {name: a, type: noop}\n  - {name: a, type: noop}\ntrigger: {}\n",
       "f.flow: trigger: unknown key (a flow has nodes and config)"},
      {"config: {a: [1]}\nnodes:\n  - {name: a, type: noop}\n",
       "f.flow: config.a: a parameter is a single value"},
      {"nodes:\n  - {name: a, type: noop}\n  name: b\n",
       "f.flow: line 3, column 3: end of map not found"},
  };
  for (const auto& [text, message] : cases) EXPECT_EQ(refusal(text), message) << text;
}

// Found by fuzz/flowfile_fuzzer: a node name holding a newline made the
// refusal two lines.
TEST(AzkabanFlow, ARefusalQuotingANewlineIsOneLine) {
  EXPECT_EQ(refusal("nodes:\n  - {name: \"a\\nb\", type: noop}\n"),
            "f.flow: node \"a\\nb\": name: may hold only letters, digits and _ - .");
}

TEST(AzkabanFlow, ARefusalIsOneLineWhateverTheTextItQuotes) {
  EXPECT_EQ(refusal("nodes:\n  - {name: a, type: \"java\\nprocess\\t\\u0001\"}\n"),
            "f.flow: node \"a\": type: \"java\\nprocess\\t\\x01\" is not supported (ferry runs "
            "command, noop and flow nodes)");
}

TEST(AzkabanFlow, DuplicateKeysAreRefused) {
  EXPECT_EQ(refusal("nodes:\n  - {name: a, type: noop, name: b}\n"),
            "f.flow: nodes[0].name: the key appears twice");
}

// ---- plain ferry flows ------------------------------------------------------------

TEST(PlainFlow, JsonAndYamlGiveTheSameBatch) {
  std::string yaml = R"(
params: {n: 5, path: /tmp}
jobs:
  - ref: a
    command: {argv: [ls, "${path}"], env: {N: "${n}"}}
    priority: -3
    timeout: 0.5
  - {ref: b, after: [a, 17], call: {function: f, args: {x: [1, 2.5, true, null, "7"]}}}
)";
  std::string json_text = R"({"params": {"n": 5, "path": "/tmp"}, "jobs": [
    {"ref": "a", "command": {"argv": ["ls", "${path}"], "env": {"N": "${n}"}}, "priority": -3,
     "timeout": 0.5},
    {"ref": "b", "after": ["a", 17], "call": {"function": "f", "args": {"x": [1, 2.5, true, null, "7"]}}}]})";
  FlowDocument from_yaml = convert(yaml, Format::plain_yaml, "p", "p.yaml");
  FlowDocument from_json = convert(json_text, Format::plain_json, "p", "p.json");
  EXPECT_EQ(from_yaml.batch_json, from_json.batch_json);
  EXPECT_EQ(from_yaml.name, "p");
  EXPECT_EQ(
      from_yaml.batch_json,
      R"({"flow":{"name":"p"},"jobs":[{"ref":"a","command":{"argv":["ls","/tmp"],"env":{"N":"5"}},)"
      R"("priority":-3,"timeout":5E-1},{"ref":"b","after":["a",17],)"
      R"("call":{"function":"f","args":{"x":[1,2.5E0,true,null,"7"]}}}]})");
  auto submission = accepted(from_yaml.batch_json);
  EXPECT_EQ(submission.jobs[1].after, (std::vector<std::uint64_t>{17}));
}

TEST(PlainFlow, RefusalsNameTheFileAndThePlace) {
  EXPECT_EQ(refusal("jobs:\n  - {command: {shell: \"echo ${x}\"}}\n", Format::plain_yaml),
            "f.flow: jobs[0].command.shell: unknown parameter ${x}");
  EXPECT_EQ(refusal("jobs: []\n", Format::plain_yaml),
            "f.flow: jobs: must be a list of at least one job");
  EXPECT_EQ(refusal("jobs: [{command: {shell: x}}]\nnodes: []\n", Format::plain_yaml),
            "f.flow: nodes: unknown key (a flow file holds jobs, flow and params)");
  EXPECT_EQ(refusal("{\"jobs\": [}", Format::plain_json).substr(0, 22), "f.flow: not valid JSON");
  EXPECT_EQ(refusal("jobs: [{command: {shell: x}, n: 1e999}]\n", Format::plain_yaml),
            "f.flow: jobs[0].n: the number 1e999 is out of range");
  // An override needs no definition in the file.
  EXPECT_EQ(
      refusal("jobs:\n  - {command: {shell: \"echo ${x}\"}}\n", Format::plain_yaml, {{"x", "1"}}),
      "");
}

// ---- directories and project zips -----------------------------------------------

TEST(FlowFiles, DirectoryAndZipHoldTheSameFlowsInPathOrder) {
  TempDir dir;
  dir.write("project/flow20.project", "azkaban-flow-version: 2.0\n");
  dir.write("project/b.flow", kTwoJobs);
  dir.write("project/sub/a.flow", "nodes:\n  - {name: x, type: noop}\n");
  dir.write("project/notes.yaml", "not: a flow\n");
  auto flows = load_flows(dir.path() / "project");
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_EQ(flows[0].name, "b");
  EXPECT_EQ(flows[1].name, "a");
  EXPECT_EQ(flows[1].source, (dir.path() / "project").string() + ":sub/a.flow");

  fs::path zip =
      write_zip(dir.path() / "project.zip", {{"flow20.project", "azkaban-flow-version: 2.0\n"},
                                             {"sub/", ""},
                                             {"sub/a.flow", "nodes:\n  - {name: x, type: noop}\n"},
                                             {"b.flow", kTwoJobs}});
  auto zipped = load_flows(zip);
  ASSERT_EQ(zipped.size(), 2u);
  EXPECT_EQ(zipped[0].source, zip.string() + ":b.flow");
  EXPECT_EQ(zipped[1].source, zip.string() + ":sub/a.flow");
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(zipped[i].batch_json, flows[i].batch_json);
}

TEST(FlowFiles, ProjectRefusalsChangeNothing) {
  TempDir dir;
  EXPECT_EQ(refusal_of_path(write_zip(dir.path() / "up.zip",
                                      {{"../evil.flow", kTwoJobs}, {"b.flow", kTwoJobs}})),
            (dir.path() / "up.zip").string() +
                ": entry \"../evil.flow\": an absolute path or '..' is refused");
  EXPECT_EQ(refusal_of_path(write_zip(dir.path() / "abs.zip", {{"/etc/x.flow", kTwoJobs}})),
            (dir.path() / "abs.zip").string() +
                ": entry \"/etc/x.flow\": an absolute path or '..' is refused");
  EXPECT_EQ(refusal_of_path(
                write_zip(dir.path() / "old.zip",
                          {{"p.project", "azkaban-flow-version: 1.0\n"}, {"b.flow", kTwoJobs}})),
            (dir.path() / "old.zip").string() +
                ":p.project: azkaban-flow-version: must be 2.0 (ferry reads Flow 2.0 projects)");
  EXPECT_EQ(refusal_of_path(write_zip(dir.path() / "two.zip",
                                      {{"x/b.flow", kTwoJobs}, {"y/b.flow", kTwoJobs}})),
            (dir.path() / "two.zip").string() + ":y/b.flow: another flow is named \"b\": " +
                (dir.path() / "two.zip").string() + ":x/b.flow");
  EXPECT_EQ(refusal_of_path(write_zip(dir.path() / "none.zip", {{"a.txt", "x"}})),
            (dir.path() / "none.zip").string() + ": holds no .flow file");
  EXPECT_EQ(
      refusal_of_path(
          write_zip(dir.path() / "bad.zip", {{"a.flow", kTwoJobs}, {"b.flow", "nodes: 1\n"}})),
      (dir.path() / "bad.zip").string() + ":b.flow: nodes: must be a list of at least one node");
  fs::path not_zip = dir.write("fake.zip", "this is no zip");
  EXPECT_EQ(refusal_of_path(not_zip).substr(0, not_zip.string().size() + 20),
            not_zip.string() + ": not a readable zip");
  EXPECT_EQ(refusal_of_path(dir.write("x.txt", "")),
            (dir.path() / "x.txt").string() +
                ": not a flow file (.flow for Azkaban Flow 2.0; .yaml, .yml or .json for a ferry "
                "flow)");
  EXPECT_EQ(refusal_of_path(dir.path() / "missing.flow"),
            (dir.path() / "missing.flow").string() + ": no such file or directory");
}

// ---- hostile input ----------------------------------------------------------------

// Whatever the text, conversion ends with a document or one line; it never
// exhausts the stack or memory.
TEST(FlowFileHostile, BoundedRefusals) {
  std::string deep_flow(200'000, '[');
  EXPECT_EQ(refusal(deep_flow), "f.flow: line 1, column 1: nested too deeply");
  std::string deep_block;
  for (int i = 0; i < 100'000; ++i) deep_block += "- ";
  EXPECT_EQ(refusal(deep_block + "x\n"), "f.flow: line 1, column 1000: nested too deeply");
  std::string deep_map;
  for (int i = 0; i < 100; ++i) deep_map += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
  EXPECT_EQ(refusal(deep_map, Format::plain_yaml),
            "f.flow: k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k....: nested "
            "deeper than 64 levels");
  EXPECT_EQ(refusal(std::string(100, '[') + std::string(100, ']'), Format::plain_json),
            "f.flow: not valid JSON: too deep");

  // Billion laughs: each level nine aliases of the one before.
  std::string laughs = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    std::string previous = "*a" + std::to_string(i - 1);
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + previous;
    for (int k = 1; k < 9; ++k) laughs += ", " + previous;
    laughs += "]\n";
  }
  EXPECT_EQ(refusal(laughs, Format::plain_yaml),
            "f.flow: holds more than 100000 values (an alias counts each time it is used)");
  // An alias inside its own anchor is a loop.
  EXPECT_EQ(refusal("jobs: &j [*j]\n", Format::plain_yaml),
            "f.flow: jobs[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0...: nested "
            "deeper than 64 levels");
  EXPECT_EQ(refusal("nodes: &n [{name: a, type: flow, nodes: *n}]\n"),
            "f.flow: nodes[0].nodes[0].nodes[0].nodes[0].nodes[0].nodes[0].nodes[...: nested "
            "deeper than 64 levels");
  // Parameters that double at each step.
  std::string doubling = "config:\n  p0: xxxxxxxxxxxxxxxx\n";
  for (int i = 1; i < 40; ++i)
    doubling += "  p" + std::to_string(i) + ": ${p" + std::to_string(i - 1) + "}${p" +
                std::to_string(i - 1) + "}\n";
  doubling += "nodes:\n  - {name: a, type: command, config: {command: \"echo ${p39}\"}}\n";
  EXPECT_EQ(refusal(doubling),
            "f.flow: node \"a\": config.command: is longer than 65536 bytes once parameters are "
            "substituted");

  EXPECT_EQ(refusal(std::string("nodes:\n  - {name: a\0, type: noop}\n", 32)),
            "f.flow: byte 19: a NUL byte is not text");
  // A NUL written as an escape is no more text than the byte.
  EXPECT_EQ(refusal("nodes:\n  - {name: a, type: command, config: {command: \"echo \\0\"}}\n"),
            "f.flow: nodes[0].config.command: a NUL character is not text");
  EXPECT_EQ(refusal(R"({"jobs": [{"command": {"shell": "a\u0000"}}]})", Format::plain_json),
            "f.flow: jobs[0].command.shell: a NUL character is not text");
  EXPECT_EQ(refusal("nodes:\n  - {name: \xff, type: noop}\n"), "f.flow: byte 18: not UTF-8 text");
  EXPECT_EQ(refusal("x: \xc0\xaf\n"), "f.flow: byte 3: not UTF-8 text");      // overlong
  EXPECT_EQ(refusal("x: \xed\xa0\x80\n"), "f.flow: byte 3: not UTF-8 text");  // surrogate
  EXPECT_EQ(refusal(std::string(1024 * 1024 + 1, ' ')), "f.flow: is larger than 1048576 bytes");
  EXPECT_EQ(refusal("nodes:\n  - {name: a, type: command, config: {command: x, retries: "
                    "1e400}}\n"),
            "f.flow: node \"a\": config.retries: must be a whole number from 0 to 100");

  // More jobs than a batch may hold.
  std::string many = "nodes:\n";
  for (int i = 0; i <= 10'000; ++i) many += "  - {name: n" + std::to_string(i) + ", type: noop}\n";
  EXPECT_EQ(refusal(many), "f.flow: node \"n10000\": the flow has more than 10000 jobs");
}

}  // namespace
}  // namespace ferry::flowfile
