// One bad job, request or client never harms the others: poison jobs on
// real workers, reports the server cannot accept, hostile requests.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <ferry/client.hpp>
#include <ferry/worker.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;

json::object job_of(const Server& server, std::uint64_t id) {
  Response got = server.request("GET", "/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(got.status, 200) << got.body;
  return json::parse(got.body).as_object();
}

const json::object& last_attempt(const json::object& job) {
  return job.at("attempts").as_array().back().as_object();
}

// Jobs that cannot start, or print what JSON text cannot hold, end with a
// clear record; the workers go on serving and still stop on SIGTERM.
TEST(Robustness, PoisonJobsNeverJamTheWorkers) {
  TempDir dir;
  Server server(dir);
  WorkerProcess first(dir, server, "w1", 2);
  WorkerProcess second(dir, server, "w2", 2);
  std::string huge_argument(60'000, 'a');
  std::string too_large_for_exec = R"({"command":{"argv":["true")";
  for (int i = 0; i < 40; ++i) too_large_for_exec += ",\"" + huge_argument + "\"";
  too_large_for_exec += "]}}";
  std::vector<std::string> poison = {
      R"({"command":{"argv":["/nonexistent/program"]}})",
      R"({"command":{"argv":["true"],"cwd":"/nonexistent/directory"}})",
      R"({"command":{"shell":"printf 'x\\000y'"}})",
      R"({"command":{"shell":"printf 'a\\377b\\300'; printf 'e\\000' >&2"}})",
      too_large_for_exec,
  };
  std::vector<std::uint64_t> poisoned;
  for (const std::string& job : poison) {
    Response submitted = server.request("POST", "/v1/jobs", job);
    ASSERT_EQ(submitted.status, 201) << submitted.body.substr(0, 200);
    poisoned.push_back(ids_in(submitted.body).at(0));
  }
  ASSERT_EQ(
      server.request("POST", "/v1/jobs", jobs_body(20, R"({"command":{"argv":["echo","ok"]}})"))
          .status,
      201);
  ASSERT_TRUE(eventually(
      [&] { return count_of(server, "succeeded") + count_of(server, "failed") == 25; }, 60))
      << server.request("GET", "/v1/stats").body << read_file(dir / "worker-w1.log");
  EXPECT_EQ(count_of(server, "succeeded"), 22);

  json::object missing = job_of(server, poisoned[0]);
  EXPECT_EQ(missing.at("state").as_string(), "failed");
  EXPECT_EQ(last_attempt(missing).at("exit_code").as_int64(), 127);
  EXPECT_NE(std::string(last_attempt(missing).at("reason").as_string())
                .find("cannot run '/nonexistent/program': No such file or directory"),
            std::string::npos)
      << missing;
  json::object no_directory = job_of(server, poisoned[1]);
  EXPECT_EQ(no_directory.at("state").as_string(), "failed");
  EXPECT_NE(std::string(last_attempt(no_directory).at("reason").as_string())
                .find("/nonexistent/directory"),
            std::string::npos)
      << no_directory;
  // Output is UTF-8 text: NUL and bytes that are not UTF-8 become U+FFFD.
  json::object nul = job_of(server, poisoned[2]);
  EXPECT_EQ(nul.at("state").as_string(), "succeeded");
  EXPECT_EQ(last_attempt(nul).at("stdout").as_string(), "x\xEF\xBF\xBDy");
  json::object binary = job_of(server, poisoned[3]);
  EXPECT_EQ(last_attempt(binary).at("stdout").as_string(),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(last_attempt(binary).at("stderr").as_string(), "e\xEF\xBF\xBD");
  json::object too_large = job_of(server, poisoned[4]);
  EXPECT_EQ(too_large.at("state").as_string(), "failed");
  EXPECT_NE(std::string(last_attempt(too_large).at("reason").as_string()).find("too long"),
            std::string::npos)
      << last_attempt(too_large).at("reason");

  EXPECT_EQ(count_of(server, "stale_completions"), 0);
  for (WorkerProcess* worker : {&first, &second}) {
    exec::Result stopped = worker->stop(SIGTERM);
    EXPECT_EQ(stopped.end, exec::End::exited);
    EXPECT_EQ(stopped.exit_code, 0);
  }
}

// A report the server cannot accept is refused alone: the request's other
// reports are recorded, and the refused attempt ends as failed, saying why.
TEST(Robustness, AReportTheServerCannotAcceptIsRefusedAlone) {
  TempDir dir;
  Server server(dir);
  auto ids = ids_in(
      server.request("POST", "/v1/jobs", jobs_body(2, R"({"command":{"argv":["true"]}})")).body);
  ASSERT_EQ(ids.size(), 2u);
  Response leased = server.request("POST", "/v1/lease", R"({"worker":"hand","free_slots":2})");
  ASSERT_EQ(leased.status, 200) << leased.body;
  json::array jobs = json::parse(leased.body).at("jobs").as_array();
  ASSERT_EQ(jobs.size(), 2u);
  auto token = [&](int i) { return json::serialize(jobs[i].at("token")); };
  auto job = [&](int i) { return json::serialize(jobs[i].at("id")); };
  std::string report = R"({"worker":"hand","completions":[)"
                       R"({"job":)" +
                       job(0) + R"(,"token":)" + token(0) +
                       R"(,"succeeded":true,"cpu_us":-1},)"
                       R"("not a report",)"
                       R"({"job":)" +
                       job(1) + R"(,"token":)" + token(1) +
                       R"(,"succeeded":true,"cpu_us":0,"max_rss_kb":0,"stdout":"a\u0000b"}]})";
  Response answered = server.request("POST", "/v1/lease", report);
  ASSERT_EQ(answered.status, 200) << answered.body;
  json::object reply = json::parse(answered.body).as_object();
  json::array rejected = reply.at("rejected").as_array();
  ASSERT_EQ(rejected.size(), 2u) << answered.body;
  EXPECT_EQ(rejected[0].at("index").as_int64(), 0);
  EXPECT_EQ(json::serialize(rejected[0].at("token")), token(0));
  EXPECT_EQ(rejected[0].at("error").as_string(),
            "completions[0].cpu_us: must be a whole number from 0 up");
  EXPECT_EQ(rejected[1].at("index").as_int64(), 1);
  EXPECT_EQ(reply.at("acknowledged").as_array().size(), 2u) << answered.body;

  json::object refused = job_of(server, jobs[0].at("id").to_number<std::uint64_t>());
  EXPECT_EQ(refused.at("state").as_string(), "failed");
  EXPECT_EQ(last_attempt(refused).at("reason").as_string(),
            "the worker's report was refused: completions[0].cpu_us: must be a whole number "
            "from 0 up");
  json::object recorded = job_of(server, jobs[1].at("id").to_number<std::uint64_t>());
  EXPECT_EQ(recorded.at("state").as_string(), "succeeded");
  EXPECT_EQ(last_attempt(recorded).at("stdout").as_string(),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(count_of(server, "stale_completions"), 0);
}

std::string nested(int depth) {
  return std::string(depth - 1, '[') + "1" + std::string(depth - 1, ']');
}

// One depth limit, checked at submit; whatever was accepted, every reader
// reads: the server's views, the CLI, a library worker and its result.
TEST(Robustness, DeepJsonIsRefusedAtSubmitAndWhatWasAcceptedIsReadEverywhere) {
  TempDir dir;
  Server server(dir);
  auto call = [](const std::string& args) {
    return R"({"call":{"function":"echo","args":)" + args + "}}";
  };
  Response too_deep = server.request("POST", "/v1/jobs", call(nested(33)));
  EXPECT_EQ(too_deep.status, 400) << too_deep.body;
  EXPECT_NE(too_deep.body.find("call.args: must not nest deeper than 32 levels"), std::string::npos)
      << too_deep.body;
  Response far_too_deep = server.request("POST", "/v1/jobs", call(nested(100)));
  EXPECT_EQ(far_too_deep.status, 400) << far_too_deep.body;
  EXPECT_NE(far_too_deep.body.find("nests deeper than 64 levels"), std::string::npos)
      << far_too_deep.body;
  EXPECT_EQ(server.request("GET", "/healthz").status, 200);

  Response accepted = server.request("POST", "/v1/jobs", call(nested(32)));
  ASSERT_EQ(accepted.status, 201) << accepted.body;
  std::uint64_t id = ids_in(accepted.body).at(0);
  EXPECT_EQ(server.request("GET", "/v1/jobs/" + std::to_string(id)).status, 200);
  EXPECT_EQ(server.request("GET", "/v1/jobs").status, 200);
  auto status = run_ferry(
      {"status", "--server", server.url(), "--token", "sekrit", "--json", std::to_string(id)}, dir);
  EXPECT_EQ(status.exit_code, 0) << status.err;

  ferry::Worker worker(server.url(), "sekrit", {.threads = 1, .id = "echo"});
  worker.add("echo", [](const json::value& args) { return args; });
  worker.add("deeper", [](const json::value& args) { return json::array{args}; });
  std::thread serving([&] { worker.run(false); });
  ferry::Client client(server.url(), "sekrit");
  ferry::JobResult echoed = client.wait(id, std::chrono::seconds(30));
  EXPECT_EQ(echoed.state, "succeeded") << echoed.reason;
  EXPECT_EQ(json::serialize(echoed.value), nested(32));
  // A result deeper than the limit fails its job, and only its job.
  ferry::JobResult deeper =
      client.wait(client.call("deeper", json::parse(nested(32))), std::chrono::seconds(30));
  EXPECT_EQ(deeper.state, "failed");
  EXPECT_EQ(deeper.reason, "the result nests deeper than 32 levels");
  worker.stop();
  serving.join();
}

// Event stream ids at the top of the range: a clear refusal, at once.
TEST(Robustness, EventIdsAtTheEndOfTheRangeAreRefusedAtOnce) {
  TempDir dir;
  Server server(dir);
  ASSERT_EQ(server.request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").status, 201);
  Response single = server.request("GET", "/v1/events?ids=18446744073709551615");
  EXPECT_EQ(single.status, 404) << single.body;
  EXPECT_NE(single.body.find("no job 18446744073709551615"), std::string::npos) << single.body;
  Response range =
      server.request("GET", "/v1/events?ids=18446744073709551610-18446744073709551615");
  EXPECT_EQ(range.status, 404) << range.body;
  Response overflow = server.request("GET", "/v1/events?ids=1-18446744073709551616");
  EXPECT_EQ(overflow.status, 400) << overflow.body;
  Response everything = server.request("GET", "/v1/events?ids=1-18446744073709551615");
  EXPECT_EQ(everything.status, 404) << everything.body;
  EXPECT_EQ(server.request("GET", "/healthz").status, 200);
}

// A server refuses, with one clear line, a database it cannot trust: one
// damaged, or one another server is using.
TEST(Robustness, AServerRefusesADamagedDatabaseOrOneInUse) {
  TempDir dir;
  {
    Server server(dir);
    ASSERT_EQ(server
                  .request("POST", "/v1/jobs",
                           jobs_body(5000, R"({"command":{"argv":["echo","a fairly long argument )"
                                           R"(so that the jobs table spans many pages"]}})"))
                  .status,
              201);
    exec::Command second =
        ferry_command({"server", "--listen", "127.0.0.1:0", "--db", dir / "ferry.db"}, dir);
    exec::Result refused = run_to_end(second);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_EQ(refused.err,
              "ferry: database '" + dir / "ferry.db" + "' is in use by another ferry server\n");
    server.stop(SIGTERM);
  }
  auto checked = run_ferry({"check", "--db", dir / "ferry.db"}, dir);
  EXPECT_EQ(checked.exit_code, 0) << checked.out;
  EXPECT_EQ(checked.out, dir / "ferry.db" + ": ok\n");
  {
    auto size = std::filesystem::file_size(dir / "ferry.db");
    std::fstream damage(dir / "ferry.db", std::ios::in | std::ios::out | std::ios::binary);
    damage.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    std::string garbage(4096, '\x55');
    damage.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  exec::Result refused =
      run_ferry({"server", "--listen", "127.0.0.1:0", "--db", dir / "ferry.db"}, dir);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(lines_of(refused.err).size(), 1u) << refused.err;
  EXPECT_NE(refused.err.find("is damaged"), std::string::npos) << refused.err;
  auto damaged = run_ferry({"check", "--db", dir / "ferry.db"}, dir);
  EXPECT_EQ(damaged.exit_code, 1);
  EXPECT_NE(damaged.out.find(dir / "ferry.db: "), std::string::npos) << damaged.out;
}

}  // namespace
}  // namespace ferry::e2e
