// One bad job, request or client never harms the others: poison jobs on
// real workers, reports the server cannot accept, hostile requests.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>

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

}  // namespace
}  // namespace ferry::e2e
