// Several servers on one PostgreSQL database (a throwaway one the test
// starts), with workers, a C++ client and worker, and the CLI following the
// leader: the leader killed at random, paused past its lease, and cut off
// from the database. Every acknowledged job ends succeeded, recorded once; a
// server that lost the leadership commits nothing. Takeover times are
// measured and printed, never asserted: this machine is shared.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <ferry/client.hpp>
#include <ferry/worker.hpp>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "client/http_client.hpp"
#include "ferry_process.hpp"
#include "server/api_limits.hpp"
#include "server_process.hpp"
#include "throwaway_postgres.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ferry::testing::ThrowawayPostgres;

double millis_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string fresh_database(ThrowawayPostgres& postgres) {
  static int counter = 0;
  return postgres.create_database("f" + std::to_string(::getpid()) + "_" +
                                  std::to_string(++counter));
}

// "leader", "standby", or "" when it does not answer.
std::string role_of(const std::string& url) {
  try {
    client::HttpClient http(url, "");
    client::Response health = http.request("GET", "/healthz", "", 2s);
    if (health.status != 200) return "";
    return std::string(json::parse(health.body).at("role").as_string());
  } catch (const std::exception&) {
    return "";
  }
}

// Which of `urls` leads, waiting for one (at most `seconds`).
std::optional<std::size_t> leader_among(const std::vector<std::string>& urls, double seconds = 30) {
  std::optional<std::size_t> found;
  eventually(
      [&] {
        for (std::size_t i = 0; i < urls.size(); ++i)
          if (role_of(urls[i]) == "leader") return bool(found = i);
        return false;
      },
      seconds);
  return found;
}

// Everything ferry stored, as one digest: equal digests, equal contents.
std::string database_digest(const std::string& url) {
  return ferry::testing::query(
             url,
             "SELECT md5(coalesce(string_agg(row, '|' ORDER BY row), '')) FROM ("
             "SELECT j::text AS row FROM jobs j UNION ALL SELECT a::text FROM attempts a "
             "UNION ALL SELECT s::text FROM server s) everything")
      .at(0);
}

void print_takeovers(const std::string& what, std::vector<double> millis) {
  if (millis.empty()) return;
  std::sort(millis.begin(), millis.end());
  std::cout << "takeover " << what << ": p50 " << millis[millis.size() / 2] << " ms, max "
            << millis.back() << " ms over " << millis.size()
            << " rounds (load: " << read_file("/proc/loadavg").substr(0, 14) << ")" << std::endl;
}

// Every job in `acknowledged` ended succeeded, with exactly one attempt that
// ended (succeeded or failed): recorded once.
void expect_each_succeeded_once(const std::string& servers,
                                const std::vector<std::uint64_t>& acknowledged) {
  ferry::Client client(servers, "sekrit");
  std::map<std::uint64_t, std::string> ends;
  client.wait_all(
      acknowledged, [&](const ferry::JobResult& result) { ends[result.id] = result.state; },
      std::chrono::seconds(180));
  client::HttpClient http(servers, "sekrit");
  for (std::uint64_t id : acknowledged) {
    ASSERT_EQ(ends[id], "succeeded") << "job " << id;
    client::Response got = http.request("GET", "/v1/jobs/" + std::to_string(id), "");
    ASSERT_EQ(got.status, 200) << "job " << id << " was acknowledged and is gone: " << got.body;
    json::object job = json::parse(got.body, {}, server::api_parse_options()).as_object();
    std::size_t ended = 0;
    for (const json::value& attempt : job.at("attempts").as_array())
      if (attempt.at("end") == "succeeded" || attempt.at("end") == "failed") ++ended;
    ASSERT_EQ(ended, 1u) << "recorded other than once: " << got.body;
  }
}

// Submits keyed jobs through ferry::Client until stopped: commands and
// calls, one after another. A submit that failed is sent again with the
// same key, so it is made at most once whatever happened to the first.
class Submitter {
 public:
  // With `calls`, every other job is a call of `echo` (CallWorker serves it).
  explicit Submitter(std::string servers, bool calls = true)
      : servers_(std::move(servers)), calls_(calls) {
    thread_ = std::thread([this] { run(); });
  }
  ~Submitter() { stop(); }
  void stop() {
    going_ = false;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::uint64_t> acknowledged() {
    std::lock_guard lock(mutex_);
    return acknowledged_;
  }

 private:
  void run() {
    ferry::Client client(servers_, "sekrit");
    for (int sent = 0; going_ && sent < 5000;) {
      std::this_thread::sleep_for(15ms);  // a steady stream
      ferry::JobOptions options;
      options.key = "job-" + std::to_string(sent);
      try {
        std::uint64_t id = calls_ && sent % 2 ? client.call("echo", sent, options)
                                              : client.command({"sleep", "0.02"}, options);
        std::lock_guard lock(mutex_);
        acknowledged_.push_back(id);
        ++sent;
      } catch (const ferry::Error&) {
        // No leader found in time: the same key again.
      }
    }
  }
  std::string servers_;
  bool calls_;
  std::atomic<bool> going_{true};
  std::mutex mutex_;
  std::vector<std::uint64_t> acknowledged_;
  std::thread thread_;
};

// A ferry::Worker serving `echo` on a thread of the test.
class CallWorker {
 public:
  explicit CallWorker(const std::string& servers)
      : worker_(servers, "sekrit", {.threads = 2, .id = "calls"}) {
    worker_.add("echo", [](const json::value& args) { return args; });
    thread_ = std::thread([this] { worker_.run(false); });
  }
  ~CallWorker() {
    worker_.stop();
    thread_.join();
  }

 private:
  ferry::Worker worker_;
  std::thread thread_;
};

class Failover : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = ThrowawayPostgres::unavailable()) GTEST_SKIP() << *why;
  }
};

TEST_F(Failover, TheLeaderKilledTenTimesAtRandomLosesNoAcknowledgedJob) {
  ThrowawayPostgres& postgres = ferry::testing::shared_postgres();
  std::vector<std::string> database = {"--db", fresh_database(postgres)};
  TempDir dirs[2], work;
  std::unique_ptr<Server> servers[2];
  servers[0] = std::make_unique<Server>(dirs[0], "sekrit", database);
  ASSERT_TRUE(leader_among({servers[0]->url()}));
  servers[1] = std::make_unique<Server>(dirs[1], "sekrit", database);
  std::vector<std::string> urls = {servers[0]->url(), servers[1]->url()};
  std::string listen[2] = {"127.0.0.1:" + servers[0]->port(), "127.0.0.1:" + servers[1]->port()};
  std::string list = urls[0] + "," + urls[1];

  WorkerProcess worker1(work, list, "w1", 4), worker2(work, list, "w2", 4);
  auto calls = std::make_unique<CallWorker>(list);
  Submitter submitter(list);

  std::mt19937 random(20261127);
  std::vector<double> takeovers;
  for (int round = 0; round < 10; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 1200));
    std::optional<std::size_t> leader = leader_among(urls);
    ASSERT_TRUE(leader) << "nobody leads";
    std::size_t other = 1 - *leader;
    servers[*leader]->stop(SIGKILL);
    auto killed = Clock::now();
    ASSERT_TRUE(eventually([&] { return role_of(urls[other]) == "leader"; }, 60))
        << read_file(dirs[other] / "server.log");
    takeovers.push_back(millis_since(killed));
    if (round == 0) {
      // The command line finds the new leader too (the dead one is first).
      exec::Result submitted = run_ferry(
          {"submit", "--server", list, "--token", "sekrit", "--key", "cli", "--", "true"}, work);
      EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
    }
    servers[*leader] = std::make_unique<Server>(dirs[*leader], "sekrit", database, listen[*leader]);
  }
  submitter.stop();
  std::vector<std::uint64_t> acknowledged = submitter.acknowledged();
  std::cout << acknowledged.size() << " jobs acknowledged over 10 kills of the leader" << std::endl;
  ASSERT_GT(acknowledged.size(), 50u);
  expect_each_succeeded_once(list, acknowledged);
  print_takeovers("after SIGKILL of the leader", takeovers);

  calls.reset();
  for (WorkerProcess* worker : {&worker1, &worker2}) {
    exec::Result stopped = worker->stop(SIGTERM);
    EXPECT_EQ(stopped.exit_code, 0) << read_file(work / "worker-w1.log");
  }
}

TEST_F(Failover, AStalledLeaderCommitsNothingAfterAStandbyTookOver) {
  ThrowawayPostgres& postgres = ferry::testing::shared_postgres();
  std::string url = fresh_database(postgres);
  std::vector<std::string> database = {"--db", url};
  TempDir dirs[2], work;
  Server first(dirs[0], "sekrit", database);
  ASSERT_TRUE(leader_among({first.url()}));
  Server second(dirs[1], "sekrit", database);
  ASSERT_EQ(first.request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").status, 201);
  client::HttpClient follower(first.url() + "," + second.url(), "sekrit");
  ASSERT_EQ(follower.request("GET", "/v1/stats", "").status, 200);  // kept alive, on the leader

  // Paused: its process keeps its connections, its lease runs out.
  ASSERT_EQ(::kill(first.pid(), SIGSTOP), 0);
  auto stopped = Clock::now();
  // Requests wait for it meanwhile: they are what it would commit on waking.
  exec::ProcessSet waiting;
  for (int i = 0; i < 3; ++i) {
    exec::Command curl;
    curl.argv = {"curl",
                 "-s",
                 "-m",
                 "60",
                 "-o",
                 "/dev/null",
                 "-w",
                 "%{http_code}",
                 "-H",
                 "Authorization: Bearer sekrit",
                 "--data-binary",
                 R"({"name":"from the stalled leader","command":{"argv":["true"]}})",
                 first.url() + "/v1/jobs"};
    waiting.start(curl);
  }
  ASSERT_TRUE(eventually([&] { return role_of(second.url()) == "leader"; }, 60))
      << read_file(dirs[1] / "server.log");
  print_takeovers("after SIGSTOP of the leader", {millis_since(stopped)});
  // A client of the stalled leader hears nothing from it, and goes on to
  // the one that took over rather than back to it.
  EXPECT_THROW(follower.request("GET", "/v1/stats", "", 2s), client::ConnectionError);
  EXPECT_EQ(follower.request("GET", "/v1/stats", "", 10s).status, 200);
  EXPECT_EQ(follower.url(), second.url());
  ASSERT_EQ(second.request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").status, 201);
  std::string before = database_digest(url);

  ASSERT_EQ(::kill(first.pid(), SIGCONT), 0);
  std::size_t answered = 0;
  for (auto deadline = Clock::now() + 90s; answered < 3 && Clock::now() < deadline;)
    for (auto& finished : waiting.wait(Clock::now() + 1s)) {
      ++answered;
      EXPECT_NE(finished.result.out, "201") << "the stalled leader acknowledged a submit";
    }
  EXPECT_EQ(answered, 3u);
  // It started again, a standby naming the leader once it looked (at first,
  // just started, it knows none).
  ASSERT_TRUE(eventually([&] { return role_of(first.url()) == "standby"; }, 30));
  Response refused;
  EXPECT_TRUE(eventually(
      [&] {
        refused = first.request("GET", "/v1/stats");
        return refused.body.find(R"("leader":")" + second.url()) != std::string::npos;
      },
      30))
      << refused.body;
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(database_digest(url), before) << "the stalled leader wrote after the takeover";
  EXPECT_TRUE(
      ferry::testing::query(url, "SELECT id FROM jobs WHERE spec LIKE '%stalled leader%'").empty());
  EXPECT_NE(read_file(dirs[0] / "server.log").find("stepping aside"), std::string::npos);
}

// The leader cut off from the database, but not from its clients, by
// network namespaces: it steps aside, a standby takes over, clients follow.
// Needs root and `ip netns`; skipped where the machine does not allow them.
class Partition {
 public:
  Partition() {
    int n = static_cast<int>(::getpid() % 200) + 20;
    name_ = "ferry-part-" + std::to_string(n);
    client_net_ = "10.231." + std::to_string(n);
    database_net_ = "10.232." + std::to_string(n);
    std::string c = std::to_string(n);
    std::vector<std::vector<std::string>> setup = {
        {"ip", "netns", "add", name_},
        {"ip", "link", "add", "fcr" + c, "type", "veth", "peer", "name", "fcn" + c},
        {"ip", "link", "add", "fdr" + c, "type", "veth", "peer", "name", "fdn" + c},
        {"ip", "link", "set", "fcn" + c, "netns", name_},
        {"ip", "link", "set", "fdn" + c, "netns", name_},
        {"ip", "addr", "add", client_net_ + ".1/24", "dev", "fcr" + c},
        {"ip", "addr", "add", database_net_ + ".1/24", "dev", "fdr" + c},
        {"ip", "link", "set", "fcr" + c, "up"},
        {"ip", "link", "set", "fdr" + c, "up"},
        {"ip", "netns", "exec", name_, "ip", "addr", "add", client_net_ + ".2/24", "dev",
         "fcn" + c},
        {"ip", "netns", "exec", name_, "ip", "addr", "add", database_net_ + ".2/24", "dev",
         "fdn" + c},
        {"ip", "netns", "exec", name_, "ip", "link", "set", "fcn" + c, "up"},
        {"ip", "netns", "exec", name_, "ip", "link", "set", "fdn" + c, "up"},
        {"ip", "netns", "exec", name_, "ip", "link", "set", "lo", "up"}};
    database_link_ = "fdr" + c;
    for (const auto& step : setup) {
      exec::Command command;
      command.argv = step;
      exec::Result result = run_to_end(command);
      if (result.exit_code != 0) {
        problem_ = "cannot make network namespaces here (" + result.err + ")";
        return;
      }
    }
  }
  ~Partition() {
    // The namespace's ends of the pairs go with it, and their peers too.
    exec::Command remove;
    remove.argv = {"ip", "netns", "delete", name_};
    run_to_end(remove);
  }
  const std::string& problem() const { return problem_; }
  // Runs a program inside the namespace.
  std::vector<std::string> inside() const { return {"ip", "netns", "exec", name_}; }
  std::string server_address() const { return client_net_ + ".2"; }
  std::string database_address() const { return database_net_ + ".1"; }
  void cut(bool cut) const {
    exec::Command link;
    link.argv = {"ip", "link", "set", database_link_, cut ? "down" : "up"};
    run_to_end(link);
  }

 private:
  std::string name_, client_net_, database_net_, database_link_, problem_;
};

TEST_F(Failover, ALeaderCutOffFromTheDatabaseStepsAsideAndClientsFollowTheNextOne) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
  Partition partition;
  if (!partition.problem().empty()) GTEST_SKIP() << partition.problem();
  // A PostgreSQL of this test's own, also listening where the namespace reaches it.
  ThrowawayPostgres postgres({.listen = {"127.0.0.1", partition.database_address()}});
  std::string name = "partition";
  postgres.create_database(name);
  TempDir dirs[2], work;
  Server cut_off(dirs[0], "sekrit", {"--db", postgres.url(name, partition.database_address())},
                 partition.server_address() + ":0", "", partition.inside());
  ASSERT_TRUE(leader_among({cut_off.url()}));
  Server other(dirs[1], "sekrit", {"--db", postgres.url(name)});
  std::string list = cut_off.url() + "," + other.url();
  WorkerProcess worker(work, list, "w1", 4);
  Submitter submitter(list, /*calls=*/false);
  std::this_thread::sleep_for(1s);

  partition.cut(true);
  auto cut = Clock::now();
  ASSERT_TRUE(eventually([&] { return role_of(other.url()) == "leader"; }, 60))
      << read_file(dirs[1] / "server.log");
  print_takeovers("after the leader was cut off from the database", {millis_since(cut)});
  // Cut off, it stands by, and can name no leader.
  ASSERT_TRUE(eventually([&] { return role_of(cut_off.url()) == "standby"; }, 60))
      << read_file(dirs[0] / "server.log");
  std::this_thread::sleep_for(2s);  // the clients carry on, on the new leader
  partition.cut(false);
  // Reconnected, it names the leader.
  EXPECT_TRUE(eventually(
      [&] {
        return cut_off.request("GET", "/v1/stats").body.find(R"("leader":")" + other.url()) !=
               std::string::npos;
      },
      60));
  submitter.stop();
  std::vector<std::uint64_t> acknowledged = submitter.acknowledged();
  ASSERT_GT(acknowledged.size(), 10u);
  expect_each_succeeded_once(list, acknowledged);
}

}  // namespace
}  // namespace ferry::e2e
