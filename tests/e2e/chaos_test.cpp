// The server killed at random moments while a submitter and workers run,
// with poison jobs mixed in and retention removing ended jobs: every
// acknowledged job ends, recorded once, and every worker is still there at
// the end.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <ferry/worker.hpp>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "client/http_client.hpp"
#include "ferry_process.hpp"
#include "server/api_limits.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// What each kind of job must end as.
struct Kind {
  std::string job;
  std::string state;
  int exit_code;              // of the final attempt; -1: a call (no exit code)
  bool removed_soon = false;  // kept briefly: retention may remove it before it is checked
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> all = {
      {R"({"command":{"argv":["sleep","0.01"]}})", "succeeded", 0},
      {R"({"command":{"argv":["sleep","0.01"]}})", "succeeded", 0},
      {R"({"command":{"argv":["sleep","0.01"]}})", "succeeded", 0},
      {R"({"command":{"argv":["/nonexistent/program"]}})", "failed", 127},
      {R"({"command":{"shell":"printf 'x\\000y'"}})", "succeeded", 0},
      {R"({"call":{"function":"echo","args":)" + std::string(32, '[') + std::string(32, ']') + "}}",
       "succeeded", -1},
      {R"({"command":{"argv":["true"]},"keep":0.2})", "succeeded", 0, true},
  };
  return all;
}

TEST(Chaos, TheServerKilledAtRandomUnderLoadLosesNothingAndNoWorkerDies) {
  TempDir dir;
  std::vector<std::string> lease_timeout = {"--lease-timeout", "2", "--keep-finished", "1h"};
  auto server = std::make_unique<Server>(dir, "sekrit", lease_timeout);
  std::string listen = "127.0.0.1:" + server->port();
  std::string url = server->url();
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (const char* name : {"w1", "w2", "w3"})
    workers.push_back(std::make_unique<WorkerProcess>(dir, *server, name, 4));
  ferry::Worker caller(url, "sekrit", {.threads = 2, .id = "calls"});
  caller.add("echo", [](const json::value& args) { return args; });
  std::thread calls([&] { caller.run(false); });
  std::atomic<bool> submitting{true};
  std::thread submitter;
  // However the test ends, the threads are stopped and joined first.
  struct Joined {
    std::function<void()> stop;
    ~Joined() { stop(); }
  } joined{[&] {
    submitting = false;
    if (submitter.joinable()) submitter.join();
    caller.stop();
    if (calls.joinable()) calls.join();
  }};

  // Submits batches of every kind until told to stop; keeps what was acknowledged.
  std::mutex mutex;
  std::map<std::uint64_t, std::size_t> acknowledged;  // id -> kind
  submitter = std::thread([&] {
    client::HttpClient http(url, "sekrit");
    std::string batch = R"({"jobs":[)";
    for (std::size_t i = 0; i < kinds().size(); ++i) batch += (i ? "," : "") + kinds()[i].job;
    batch += "]}";
    for (int sent = 0; submitting && sent < 400; ++sent) {
      std::this_thread::sleep_for(20ms);  // a steady stream, not a flood
      try {
        client::Response response = http.request("POST", "/v1/jobs", batch, 5s);
        if (response.status != 201) continue;
        json::array ids = json::parse(response.body).at("ids").as_array();
        std::lock_guard lock(mutex);
        for (std::size_t i = 0; i < ids.size(); ++i)
          acknowledged[ids[i].to_number<std::uint64_t>()] = i;
      } catch (const std::exception&) {
        // The server is down: try again.
      }
    }
  });

  std::mt19937 random(20261127);
  for (int round = 0; round < 20; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + random() % 350));
    server->stop(SIGKILL);
    server.reset();
    server = std::make_unique<Server>(dir, "sekrit", lease_timeout, listen);
  }
  submitting = false;
  submitter.join();

  std::size_t submitted = 0;
  {
    std::lock_guard lock(mutex);
    submitted = acknowledged.size();
  }
  ASSERT_GT(submitted, 0u);
  ASSERT_TRUE(eventually(
      [&] {
        std::string stats = server->request("GET", "/v1/stats").body;
        json::object jobs = json::parse(stats).at("jobs").as_object();
        return jobs.at("waiting").as_int64() + jobs.at("queued").as_int64() +
                   jobs.at("running").as_int64() ==
               0;
      },
      120))
      << server->request("GET", "/v1/stats").body;

  std::size_t removed = 0;
  for (const auto& [id, kind] : acknowledged) {
    Response got = server->request("GET", "/v1/jobs/" + std::to_string(id));
    if (got.status == 404 && kinds()[kind].removed_soon) {  // ended, and removed
      ++removed;
      continue;
    }
    ASSERT_EQ(got.status, 200) << "job " << id << " was acknowledged and is gone";
    json::object job = json::parse(got.body, {}, server::api_parse_options()).as_object();
    ASSERT_EQ(job.at("state").as_string(), kinds()[kind].state) << got.body;
    const json::array& attempts = job.at("attempts").as_array();
    std::size_t ended = 0;
    for (const json::value& attempt : attempts)
      if (attempt.at("end") == "succeeded" || attempt.at("end") == "failed") ++ended;
    ASSERT_EQ(ended, 1u) << "recorded more than once: " << got.body;
    if (kinds()[kind].exit_code >= 0) {
      ASSERT_EQ(attempts.back().at("exit_code").as_int64(), kinds()[kind].exit_code) << got.body;
    }
  }

  EXPECT_GT(removed, 0u);  // retention ran all along
  joined.stop();
  for (auto& worker : workers) {
    exec::Result stopped = worker->stop(SIGTERM);
    EXPECT_EQ(stopped.end, exec::End::exited);
    EXPECT_EQ(stopped.exit_code, 0) << read_file(dir / "worker-w1.log");
  }
}

}  // namespace
}  // namespace ferry::e2e
