// Queue controls end to end: a real server, two workers with many slots,
// the `ferry queue` commands. Limits are checked from the server's own
// start and end times of attempts: a job counts as running from its lease
// to its recorded end, the span the server's limits count.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;

struct Span {
  std::int64_t started = 0, ended = 0;
  std::string key;
};

exec::Result ferry_client(const Server& server, const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.end(), {"--server", server.url(), "--token", "sekrit"});
  return run_ferry(args, dir);
}

std::vector<std::uint64_t> submit(const Server& server, int count, const std::string& job) {
  Response reply = server.request("POST", "/v1/jobs", jobs_body(count, job));
  EXPECT_EQ(reply.status, 201) << reply.body;
  return ids_in(reply.body);
}

json::object job_of(const Server& server, std::uint64_t id) {
  return json::parse(server.request("GET", fmt::format("/v1/jobs/{}", id)).body).as_object();
}

bool all_succeeded(const Server& server, const std::vector<std::uint64_t>& ids) {
  return std::all_of(ids.begin(), ids.end(), [&](std::uint64_t id) {
    return job_of(server, id).at("state") == "succeeded";
  });
}

// Each attempt of the jobs, as the server recorded it.
std::vector<Span> spans_of(const Server& server, const std::vector<std::uint64_t>& ids) {
  std::vector<Span> spans;
  for (std::uint64_t id : ids) {
    json::object job = job_of(server, id);
    std::string key;
    if (const json::value* given = job.at("spec").as_object().if_contains("concurrency_key"))
      key = given->as_string();
    for (const json::value& attempt : job.at("attempts").as_array())
      spans.push_back(
          {attempt.at("started_ms").as_int64(), attempt.at("ended_ms").as_int64(), key});
  }
  return spans;
}

// The most spans running at one instant (a span holds [started, ended)).
std::size_t most_at_once(const std::vector<Span>& spans) {
  std::vector<std::pair<std::int64_t, int>> edges;
  for (const Span& span : spans) edges.insert(edges.end(), {{span.started, 1}, {span.ended, -1}});
  std::sort(edges.begin(), edges.end());  // at one instant, ends (-1) before starts
  std::size_t most = 0;
  long running = 0;
  for (auto [when, change] : edges) {
    running += change;
    most = std::max(most, static_cast<std::size_t>(running));
  }
  return most;
}

TEST(QueueControls, MaxRunningHoldsAcrossTwoWorkersWithManySlots) {
  TempDir dir;
  Server server(dir);
  WorkerProcess one(dir, server, "w1", 8), two(dir, server, "w2", 8);
  exec::Result set = ferry_client(server, dir, {"queue", "set", "api", "--max-running", "3"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_NE(set.out.find("3 running at most"), std::string::npos) << set.out;
  auto ids = submit(server, 12, R"({"queue": "api", "command": {"shell": "sleep 0.3"}})");
  ASSERT_TRUE(eventually([&] { return all_succeeded(server, ids); }, 60));
  // Limited, not merely slow: three ran at once, never more.
  EXPECT_EQ(most_at_once(spans_of(server, ids)), 3u);
}

TEST(QueueControls, ARateStartsNoFasterThanItsTokenBucket) {
  TempDir dir;
  Server server(dir);
  WorkerProcess one(dir, server, "w1", 8), two(dir, server, "w2", 8);
  ASSERT_EQ(ferry_client(server, dir, {"queue", "set", "paced", "--rate", "5/s", "--burst", "2"})
                .exit_code,
            0);
  auto ids = submit(server, 12, R"({"queue": "paced", "command": {"argv": ["true"]}})");
  ASSERT_TRUE(eventually([&] { return all_succeeded(server, ids); }, 60));
  std::vector<std::int64_t> starts;
  for (const Span& span : spans_of(server, ids)) starts.push_back(span.started);
  std::sort(starts.begin(), starts.end());
  // Between any two starts, at most the burst plus the tokens earned then
  // (5 a second: one per 200 ms).
  for (std::size_t i = 0; i < starts.size(); ++i)
    for (std::size_t j = i; j < starts.size(); ++j)
      EXPECT_LE(static_cast<std::int64_t>(j - i + 1), 2 + (starts[j] - starts[i]) / 200)
          << "starts " << i << " to " << j << " within " << starts[j] - starts[i] << " ms";
}

TEST(QueueControls, AConcurrencyKeyRunsOneJobPerKeyAtATime) {
  TempDir dir;
  Server server(dir);
  WorkerProcess one(dir, server, "w1", 8), two(dir, server, "w2", 8);
  std::vector<std::uint64_t> ids;
  for (const char* customer : {"alice", "bob"}) {
    auto made = submit(server, 4,
                       fmt::format(R"({{"queue": "per-customer", "concurrency_key": "{}",
                                       "command": {{"shell": "sleep 0.2"}}}})",
                                   customer));
    ids.insert(ids.end(), made.begin(), made.end());
  }
  ASSERT_TRUE(eventually([&] { return all_succeeded(server, ids); }, 60));
  std::vector<Span> spans = spans_of(server, ids);
  std::map<std::string, std::vector<Span>> by_key;
  for (const Span& span : spans) by_key[span.key].push_back(span);
  ASSERT_EQ(by_key.size(), 2u);
  for (const auto& [key, own] : by_key) EXPECT_EQ(most_at_once(own), 1u) << key;
  EXPECT_EQ(most_at_once(spans), 2u);  // the two customers ran side by side
}

TEST(QueueControls, APausedQueueStartsNothingUntilResumedAndSurvivesARestart) {
  TempDir dir;
  auto server = std::make_unique<Server>(dir);
  std::string listen = "127.0.0.1:" + server->port();
  WorkerProcess worker(dir, *server, "w", 8);
  std::string marker = dir / "long-started";
  auto running = submit(*server, 1,
                        fmt::format(R"({{"queue": "batch", "command": {{"shell":
                                        "touch {} && sleep 1"}}}})",
                                    marker));
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(marker); }));
  exec::Result paused = ferry_client(*server, dir, {"queue", "pause", "batch"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_NE(paused.out.find("queue batch: paused"), std::string::npos) << paused.out;
  auto held = submit(*server, 3, R"({"queue": "batch", "command": {"argv": ["true"]}})");
  auto other = submit(*server, 1, R"({"command": {"argv": ["true"]}})");
  // The running job finishes, other queues go on; nothing of the paused one starts.
  ASSERT_TRUE(eventually([&] { return all_succeeded(*server, running); }));
  ASSERT_TRUE(eventually([&] { return all_succeeded(*server, other); }));
  for (std::uint64_t id : held) EXPECT_EQ(job_of(*server, id).at("state"), "queued");
  // Durable: a server killed and started again keeps the queue paused.
  server->stop(SIGKILL);
  server = std::make_unique<Server>(dir, "sekrit", Strings{}, listen);
  exec::Result shown = ferry_client(*server, dir, {"queue", "show", "batch", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out).at("paused"), true) << shown.out;
  for (std::uint64_t id : held) EXPECT_EQ(job_of(*server, id).at("state"), "queued");
  exec::Result listed = ferry_client(*server, dir, {"queues"});
  EXPECT_NE(listed.out.find("paused"), std::string::npos) << listed.out;
  exec::Result status = ferry_client(*server, dir, {"status", std::to_string(held[0])});
  EXPECT_NE(status.out.find("queued"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("(held: its queue is paused)"), std::string::npos) << status.out;
  ASSERT_EQ(ferry_client(*server, dir, {"queue", "resume", "batch"}).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return all_succeeded(*server, held); }));
}

TEST(QueueControls, BadSettingsAreRefusedAndChangeNothing) {
  TempDir dir;
  Server server(dir);
  ASSERT_EQ(server.request("PATCH", "/v1/queues/q", R"({"max_running": 4})").status, 200);
  for (auto [body, detail] : std::vector<std::pair<const char*, const char*>>{
           {R"({"max_running": 0})", "max_running: must be from 1 to 1000000"},
           {R"({"rate": "fast"})", "rate: must be like 50/s, 10/m or 100/h"},
           {R"({"rate": "0/s"})", "rate: must start from 1 to 1000000 jobs per period"},
           {R"({"max_runing": 2})", "max_runing: is not a known field"},
           {R"({"paused": "yes", "max_running": 9})", "paused: must be true or false"},
           {R"({"rate": 5})", "\"rate: must be a string\""}}) {
    Response refused = server.request("PATCH", "/v1/queues/q", body);
    EXPECT_EQ(refused.status, 400) << body;
    EXPECT_NE(refused.body.find(detail), std::string::npos) << refused.body;
  }
  EXPECT_EQ(server.request("PATCH", "/v1/queues/no%20such", "{}").status, 400);
  // A parameter would be ignored: refused, like anywhere it is not known.
  for (const char* target : {"/v1/queues?x=1", "/v1/queues/q?x=1", "/v1/stats?x=1"}) {
    Response refused = server.request("GET", target);
    EXPECT_EQ(refused.status, 400) << target;
    EXPECT_NE(refused.body.find("takes no query parameters"), std::string::npos) << refused.body;
  }
  EXPECT_EQ(server.request("PATCH", "/v1/queues/q?paused=true", R"({"max_running": 5})").status,
            400);
  // A name that is no name is refused, not cut at its '?' into another queue's.
  exec::Result odd = ferry_client(server, dir, {"queue", "pause", "q?x=1"});
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.err.find("queue: may hold only letters"), std::string::npos) << odd.err;
  odd = ferry_client(server, dir, {"queue", "show", "a b"});
  EXPECT_NE(odd.err.find("queue: may hold only letters"), std::string::npos) << odd.err;
  odd = ferry_client(server, dir, {"queue", "set", "q", "--concurrency-limit", "0"});
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.err.find("not in range 1 to 1000000"), std::string::npos) << odd.err;
  odd = ferry_client(server, dir, {"submit", "--concurrency-key", "", "--", "true"});
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.err.find("must not be empty"), std::string::npos) << odd.err;
  EXPECT_EQ(server.request("DELETE", "/v1/queues/q").status, 405);
  json::value queue = json::parse(server.request("GET", "/v1/queues/q").body);
  EXPECT_EQ(queue.at("max_running"), 4);
  EXPECT_EQ(queue.at("paused"), false);
  exec::Result bad = ferry_client(server, dir, {"queue", "set", "q", "--max-running", "lots"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--max-running"), std::string::npos) << bad.err;
  exec::Result lifted = ferry_client(server, dir, {"queue", "set", "q", "--max-running", "none"});
  EXPECT_EQ(lifted.exit_code, 0) << lifted.err;
  EXPECT_EQ(json::parse(server.request("GET", "/v1/queues/q").body).at("max_running"), nullptr);
}

}  // namespace
}  // namespace ferry::e2e
