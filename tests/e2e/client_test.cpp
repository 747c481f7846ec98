// ferry::Client and ferry::Worker against a real server process.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <ferry/client.hpp>
#include <ferry/worker.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

TEST(FerryClientAndWorker, CallsRunOnTheWorkersThreadsAndComeBack) {
  TempDir dir;
  Server server(dir);
  ferry::Worker worker(server.url(), "sekrit", {.threads = 2, .id = "squares"});
  worker.add("square", [](const json::value& n) -> json::value {
    return n.to_number<std::int64_t>() * n.to_number<std::int64_t>();
  });
  worker.add("boom", [](const json::value&) -> json::value {
    throw std::runtime_error("boom: not today");
  });
  std::thread serving([&] { worker.run(false); });

  ferry::Client client(server.url(), "sekrit");
  std::vector<json::value> args;
  for (int i = 0; i < 10; ++i) args.emplace_back(i);
  std::vector<std::uint64_t> ids = client.call_many("square", args);
  ASSERT_EQ(ids.size(), 10u);
  std::map<std::uint64_t, std::int64_t> squares;
  client.wait_all(
      ids,
      [&](const JobResult& result) { squares[result.id] = result.value.to_number<std::int64_t>(); },
      30s);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(squares[ids[i]], i * i);

  JobResult failed = client.wait(client.call("boom"), 30s);
  EXPECT_EQ(failed.state, "failed");
  EXPECT_EQ(failed.reason, "boom: not today");

  // No worker serves it: it waits, and so does whoever waits for it.
  EXPECT_THROW(client.wait(client.call("nobody", 1), 300ms), ferry::TimeoutError);

  worker.stop();
  serving.join();

  ferry::Client wrong(server.url(), "not-the-token");
  EXPECT_THROW(wrong.call("square", 2), ferry::Error);
  EXPECT_THROW(ferry::Client("ftp://nowhere"), ferry::Error);
}

}  // namespace
}  // namespace ferry::e2e

namespace ferry::e2e {
namespace {

TEST(FerryClientAndWorker, AFlowOfCallsRunsInOrderAndIsMadeOnceByItsKey) {
  TempDir dir;
  Server server(dir);
  std::mutex lock;
  std::vector<std::int64_t> seen;
  ferry::Worker worker(server.url(), "sekrit", {.threads = 2, .id = "steps"});
  worker.add("step", [&](const json::value& n) -> json::value {
    std::lock_guard hold(lock);
    seen.push_back(n.to_number<std::int64_t>());
    return n;
  });
  std::thread serving([&] { worker.run(false); });
  ferry::Client client(server.url(), "sekrit");
  json::object batch = json::parse(R"({"flow": {"name": "steps", "key": "once"}, "jobs": [
    {"ref": "third", "after": ["second"], "call": {"function": "step", "args": 3}},
    {"ref": "first", "call": {"function": "step", "args": 1}},
    {"ref": "second", "after": ["first"], "call": {"function": "step", "args": 2}}]})")
                           .as_object();
  Flow flow = client.submit_flow(batch);
  EXPECT_GT(flow.id, 0u);
  ASSERT_EQ(flow.ids.size(), 3u);
  client.wait_all(
      flow.ids, [](const JobResult& result) { EXPECT_TRUE(result.succeeded()); }, 30s);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3}));
  Flow again = client.submit_flow(batch);
  EXPECT_EQ(again.id, flow.id);
  EXPECT_EQ(again.ids, flow.ids);
  batch["jobs"].as_array()[0].as_object()["after"] = json::array{"nowhere"};
  EXPECT_THROW(client.submit_flow(batch), ferry::Error);
  worker.stop();
  serving.join();
}

}  // namespace
}  // namespace ferry::e2e
