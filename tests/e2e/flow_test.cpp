// Flows end to end: a real server, real workers, the `ferry flow` commands.
// Order is checked from the server's own start and end times of attempts: a
// job's first attempt never starts before every job it runs after ended.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;

// A diamond and a tail: a -> b, c -> d -> e.
std::string diamond(const std::string& name, const std::string& command) {
  auto job = [&](const char* ref, const char* after) {
    return fmt::format(R"({{"ref": "{}", "after": [{}], "command": {{"shell": "{}"}}}})", ref,
                       after, command);
  };
  return fmt::format(R"({{"flow": {{"name": "{}"}}, "jobs": [{}, {}, {}, {}, {}]}})", name,
                     job("a", ""), job("b", R"("a")"), job("c", R"("a")"), job("d", R"("b", "c")"),
                     job("e", R"("d")"));
}

json::object flow_view(const Server& server, std::uint64_t flow) {
  Response reply = server.request("GET", fmt::format("/v1/flows/{}", flow));
  EXPECT_EQ(reply.status, 200) << reply.body;
  return json::parse(reply.body).as_object();
}

std::uint64_t flow_of(const Response& submitted) {
  EXPECT_EQ(submitted.status, 201) << submitted.body;
  return json::parse(submitted.body).at("flow").to_number<std::uint64_t>();
}

// Every job of the flow, from GET /v1/jobs/{id}.
std::map<std::string, json::object> jobs_by_ref(const Server& server, std::uint64_t flow) {
  std::map<std::string, json::object> jobs;
  json::object view = flow_view(server, flow);
  for (const json::value& job : view.at("jobs").as_array()) {
    Response one = server.request("GET", fmt::format("/v1/jobs/{}", job.at("id").as_int64()));
    jobs[std::string(job.at("ref").as_string())] = json::parse(one.body).as_object();
  }
  return jobs;
}

std::int64_t first_start(const json::object& job) {
  return job.at("attempts").as_array().at(0).at("started_ms").as_int64();
}
std::int64_t last_end(const json::object& job) {
  return job.at("attempts").as_array().back().at("ended_ms").as_int64();
}

// No job's first attempt started before its dependencies' last attempts ended.
void expect_diamond_order(const std::map<std::string, json::object>& jobs) {
  for (auto [job, dependency] : std::vector<std::pair<const char*, const char*>>{
           {"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}, {"e", "d"}})
    EXPECT_GE(first_start(jobs.at(job)), last_end(jobs.at(dependency)))
        << job << " started before " << dependency << " ended";
}

exec::Result ferry_client(const Server& server, const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin() + 2, {"--server", server.url(), "--token", "sekrit"});
  return run_ferry(args, dir);
}

TEST(Flows, DiamondsRunInDependencyOrderOnTwoWorkers) {
  TempDir dir;
  Server server(dir);
  WorkerProcess one(dir, server, "w1", 4), two(dir, server, "w2", 4);
  std::vector<std::uint64_t> flows;
  for (int i = 0; i < 10; ++i)
    flows.push_back(flow_of(
        server.request("POST", "/v1/jobs", diamond(fmt::format("diamond-{}", i), "sleep 0.02"))));
  std::vector<std::string> wait = {"flow", "wait"};
  for (std::uint64_t flow : flows) wait.push_back(std::to_string(flow));
  exec::Result waited = ferry_client(server, dir, wait);
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  for (std::uint64_t flow : flows) {
    json::object view = flow_view(server, flow);
    EXPECT_EQ(view.at("state"), "succeeded");
    EXPECT_EQ(view.at("counts").at("succeeded"), 5);
    expect_diamond_order(jobs_by_ref(server, flow));
  }
  Response listed = server.request("GET", "/v1/flows?limit=3");
  EXPECT_EQ(json::parse(listed.body).at("flows").as_array().size(), 3u);
}

TEST(Flows, AFailureSkipsWhatFollowsAndARetryResumesIt) {
  TempDir dir;
  Server server(dir);
  WorkerProcess worker(dir, server, "w", 4);
  std::string marker = dir / "failed-once";
  std::uint64_t flow = flow_of(server.request("POST", "/v1/jobs",
                                              fmt::format(R"({{"jobs": [
    {{"ref": "build", "command": {{"argv": ["true"]}}}},
    {{"ref": "test", "after": ["build"],
      "command": {{"shell": "test -e {0} || {{ touch {0}; exit 3; }}"}}}},
    {{"ref": "deploy", "after": ["test"], "command": {{"argv": ["true"]}}}},
    {{"ref": "cleanup", "after": ["test"], "after_policy": "end", "command": {{"argv": ["true"]}}}},
    {{"ref": "alert", "after": ["test"], "after_policy": "failure", "command": {{"argv": ["true"]}}}}]}})",
                                                          marker)));
  exec::Result waited = ferry_client(server, dir, {"flow", "wait", std::to_string(flow)});
  EXPECT_EQ(waited.exit_code, 1) << waited.out << waited.err;
  EXPECT_NE(waited.out.find("failed"), std::string::npos) << waited.out;
  auto jobs = jobs_by_ref(server, flow);
  EXPECT_EQ(jobs["test"].at("state"), "failed");
  EXPECT_EQ(jobs["deploy"].at("state"), "cancelled");
  EXPECT_EQ(jobs["deploy"].at("reason").as_string(),
            fmt::format("dependency {} failed", jobs["test"].at("id").as_int64()));
  EXPECT_TRUE(jobs["deploy"].at("attempts").as_array().empty());
  EXPECT_EQ(jobs["deploy"].at("skipped"), true);
  EXPECT_EQ(jobs["deploy"].at("flow"), flow);
  EXPECT_EQ(jobs["test"].at("skipped"), false);
  EXPECT_EQ(jobs["cleanup"].at("state"), "succeeded");
  EXPECT_EQ(jobs["alert"].at("state"), "succeeded");

  exec::Result retried = ferry_client(server, dir, {"flow", "retry", std::to_string(flow)});
  EXPECT_EQ(retried.exit_code, 0) << retried.out << retried.err;
  EXPECT_EQ(retried.out, fmt::format("flow {}: 1 jobs retried\n", flow));
  waited = ferry_client(server, dir, {"flow", "wait", std::to_string(flow)});
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  jobs = jobs_by_ref(server, flow);
  EXPECT_EQ(jobs["test"].at("attempts").as_array().size(), 2u);
  EXPECT_EQ(jobs["deploy"].at("state"), "succeeded");
  EXPECT_GE(first_start(jobs["deploy"]), last_end(jobs["test"]));
  EXPECT_EQ(jobs["cleanup"].at("attempts").as_array().size(), 1u);  // it had run: not again
  exec::Result status = ferry_client(server, dir, {"flow", "status", std::to_string(flow)});
  EXPECT_EQ(status.out.rfind(fmt::format("flow {:<6} succeeded", flow), 0), 0u) << status.out;
  EXPECT_NE(status.out.find("deploy"), std::string::npos);
}

TEST(Flows, ABadFlowIsRefusedWholeAndNothingIsMade) {
  TempDir dir;
  Server server(dir);
  for (auto [body, error] : std::vector<std::pair<std::string, std::string>>{
           {R"({"jobs": [{"ref": "a", "after": ["b"], "command": {"argv": ["x"]}},
                         {"ref": "b", "after": ["a"], "command": {"argv": ["y"]}}]})",
            "cycle"},
           {R"({"jobs": [{"ref": "a", "after": ["nope"], "command": {"argv": ["x"]}}]})", "nope"},
           {R"({"jobs": [{"ref": "a", "command": {"argv": ["x"]}},
                         {"ref": "a", "command": {"argv": ["y"]}}]})",
            "a"},
           {R"({"jobs": [{"after": [12345], "command": {"argv": ["x"]}}]})", "12345"}}) {
    Response refused = server.request("POST", "/v1/jobs", body);
    EXPECT_EQ(refused.status, 400) << body;
    EXPECT_NE(refused.body.find(error), std::string::npos) << refused.body;
  }
  EXPECT_EQ(count_of(server, "queued") + count_of(server, "waiting"), 0);
  EXPECT_EQ(json::parse(server.request("GET", "/v1/flows").body).at("flows").as_array().size(), 0u);
}

TEST(Flows, CancellingAFlowStopsWhatRunsAndSkipsWhatWaits) {
  TempDir dir;
  Server server(dir);
  WorkerProcess worker(dir, server, "w", 2);
  std::uint64_t flow = flow_of(server.request("POST", "/v1/jobs", R"({"jobs": [
    {"ref": "long", "command": {"argv": ["sleep", "60"]}},
    {"ref": "next", "after": ["long"], "command": {"argv": ["true"]}}]})"));
  ASSERT_TRUE(eventually([&] { return count_of(server, "running") == 1; }));
  exec::Result cancelled = ferry_client(server, dir, {"flow", "cancel", std::to_string(flow)});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.out << cancelled.err;
  exec::Result waited = ferry_client(server, dir, {"flow", "wait", std::to_string(flow)});
  EXPECT_EQ(waited.exit_code, 1);
  json::object view = flow_view(server, flow);
  EXPECT_EQ(view.at("state"), "cancelled");
  EXPECT_EQ(view.at("jobs").at(1).at("reason").as_string(),
            fmt::format("dependency {} cancelled", view.at("jobs").at(0).at("id").as_int64()));
  // The worker stopped the sleep: it is free for the next job at once.
  Response quick = server.request("POST", "/v1/jobs", R"({"command": {"argv": ["true"]}})");
  exec::Result done = ferry_client(
      server, dir, {"wait", std::to_string(ids_in(quick.body).at(0)), "--timeout", "30"});
  EXPECT_EQ(done.exit_code, 0);
}

TEST(Flows, AServerKilledMidFlowFinishesEveryFlowInOrderAfterARestart) {
  TempDir dir;
  auto server = std::make_unique<Server>(dir, "sekrit", Strings{"--lease-timeout", "2"});
  std::string listen = "127.0.0.1:" + server->port();
  WorkerProcess one(dir, *server, "w1", 4), two(dir, *server, "w2", 4);
  std::vector<std::uint64_t> flows;
  for (int i = 0; i < 20; ++i)
    flows.push_back(flow_of(
        server->request("POST", "/v1/jobs", diamond(fmt::format("diamond-{}", i), "sleep 0.05"))));
  ASSERT_TRUE(eventually([&] { return count_of(*server, "succeeded") >= 15; }));
  server->stop(SIGKILL);
  server = std::make_unique<Server>(dir, "sekrit", Strings{"--lease-timeout", "2"}, listen);
  std::vector<std::string> wait = {"flow", "wait", "--timeout", "120"};
  for (std::uint64_t flow : flows) wait.push_back(std::to_string(flow));
  exec::Result waited = ferry_client(*server, dir, wait);
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  for (std::uint64_t flow : flows) {
    auto jobs = jobs_by_ref(*server, flow);
    for (const auto& [ref, job] : jobs) EXPECT_EQ(job.at("state"), "succeeded") << ref;
    expect_diamond_order(jobs);
  }
}

std::string example(const std::string& name) {
  return std::string(FERRY_SOURCE_DIR) + "/examples/flows/" + name;
}

TEST(FlowsHere, TheExampleFlowsRunWithoutAServer) {
  TempDir dir;
  for (auto [file, out] : std::vector<std::pair<std::string, std::string>>{
           {"basic.flow", "This is an echoed text.\n"}, {"embedded.flow", "prop is value\n"}}) {
    exec::Result ran = run_ferry({"flow", "run", example(file)}, dir);
    EXPECT_EQ(ran.exit_code, 0) << file << ran.err;
    EXPECT_EQ(ran.out, out) << file;
  }
  exec::Result ran =
      run_ferry({"flow", "run", example("depends_on.flow"), "-p", "greeting=hi"}, dir);
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out.rfind("hi\n", 0), 0u) << ran.out;  // jobA runs first: jobB runs `ls -l` too
  // jobB fails: jobC (one_failed) and jobD (all_done) run; the flow failed.
  ran = run_ferry({"flow", "run", example("conditional.flow")}, dir);
  EXPECT_EQ(ran.exit_code, 1);
  EXPECT_NE(ran.out.find("one of jobA and jobB failed"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("jobA and jobB ended"), std::string::npos) << ran.out;
  EXPECT_NE(ran.err.find("ferry: flow conditional failed"), std::string::npos) << ran.err;
}

TEST(FlowsHere, JobsStartOnlyOnceWhatTheyRunAfterEnded) {
  TempDir dir;
  std::string log = dir / "log";
  std::ofstream(dir / "diamond.json")
      << diamond("here", fmt::format("echo start-$0 >> {0}; sleep 0.05; echo end-$0 >> {0}", log));
  // $0 of `sh -c` is empty here: name each job by what it writes instead.
  std::string flow = read_file(dir / "diamond.json");
  for (const char* ref : {"a", "b", "c", "d", "e"}) {
    std::string job = fmt::format(R"("ref": "{}")", ref);
    std::size_t at = flow.find(job);
    std::size_t command = flow.find("$0", at);
    while (command != std::string::npos && command < flow.find("}}", at)) {
      flow.replace(command, 2, ref);
      command = flow.find("$0", command);
    }
  }
  std::ofstream(dir / "diamond.json") << flow;
  exec::Result ran = run_ferry({"flow", "run", "-j", "4", dir / "diamond.json"}, dir);
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  std::vector<std::string> lines = lines_of(read_file(log));
  auto at = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) - lines.begin();
  };
  ASSERT_EQ(lines.size(), 10u) << read_file(log);
  for (auto [job, dependency] : std::vector<std::pair<std::string, std::string>>{
           {"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}, {"e", "d"}})
    EXPECT_GT(at("start-" + job), at("end-" + dependency)) << read_file(log);
  EXPECT_LT(at("start-c"), at("end-b"));  // b and c ran side by side
}

TEST(FlowsHere, AFlowThatCannotRunHereIsRefusedBeforeAnythingStarts) {
  TempDir dir;
  std::ofstream(dir / "calls.json") << R"({"jobs": [
    {"ref": "a", "command": {"shell": "touch ran"}},
    {"ref": "b", "after": ["a"], "call": {"function": "square", "args": [3]}}]})";
  exec::Result ran = run_ferry({"flow", "run", dir / "calls.json"}, dir);
  EXPECT_EQ(ran.exit_code, 2);
  EXPECT_EQ(ran.err,
            "ferry: calls: b: calls square: a flow run here runs commands only (submit "
            "it to a server)\n");
  std::ofstream(dir / "bad.flow") << "nodes:\n  - name: a\n    type: javaprocess\n";
  ran = run_ferry({"flow", "run", dir / "bad.flow"}, dir);
  EXPECT_EQ(ran.exit_code, 2);
  EXPECT_EQ(lines_of(ran.err).size(), 1u) << ran.err;
  EXPECT_NE(ran.err.find("javaprocess"), std::string::npos) << ran.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "ran"));
}

TEST(Flows, FlowFilesAreSubmittedWithParametersAndAKeyOnce) {
  TempDir dir;
  Server server(dir);
  WorkerProcess worker(dir, server, "w", 4);
  std::ofstream(dir / "bad.flow") << "nodes:\n  - name: a\n    type: command\n    dependsOn: [b]\n";
  exec::Result refused = ferry_client(server, dir, {"flow", "submit", dir / "bad.flow"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("\"a\""), std::string::npos) << refused.err;
  std::vector<std::string> submit = {"flow",      "submit",         example("depends_on.flow"),
                                     "--param",   "greeting=hello", "--key",
                                     "nightly-1", "--wait"};
  exec::Result first = ferry_client(server, dir, submit);
  EXPECT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(first.out.rfind("flow 1      depends_on  (3 jobs: 1-3)\n", 0), 0u) << first.out;
  exec::Result again = ferry_client(server, dir, submit);
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.out.find("made before with this key"), std::string::npos) << again.out;
  EXPECT_EQ(json::parse(server.request("GET", "/v1/flows").body).at("flows").as_array().size(), 1u);
  auto jobs = jobs_by_ref(server, 1);
  EXPECT_EQ(jobs["jobA"].at("attempts").at(0).at("stdout"), "hello\n");
  // A directory: each .flow in it, in order of their names.
  exec::Result all = ferry_client(server, dir, {"flow", "submit", example(""), "--wait"});
  EXPECT_EQ(all.exit_code, 1) << all.out << all.err;  // conditional.flow fails on purpose
  EXPECT_NE(all.out.find("basic"), std::string::npos);
  EXPECT_NE(all.out.find("embedded"), std::string::npos);
  exec::Result list = ferry_client(server, dir, {"flow", "list"});
  EXPECT_EQ(lines_of(list.out).size(), 5u) << list.out;
}

}  // namespace
}  // namespace ferry::e2e
