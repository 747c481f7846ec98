// ferry::Client — submit jobs to a ferry server and collect their results.
//
// The "task manager" side of the classic pair: name a function that workers
// serve (see ferry/worker.hpp), send JSON arguments, get JSON results back.
//
//   ferry::Client client("http://queue-host:7077", token);
//   auto id = client.call("square", 7);
//   ferry::JobResult result = client.wait(id, std::chrono::seconds(10));
//   if (result.succeeded()) std::cout << result.value << "\n";  // 49
//
// The server and token default to FERRY_SERVER and FERRY_TOKEN. Jobs are
// durable once call() returns: the server committed them. With a key
// (JobOptions::key), a call whose answer was lost on the way is sent again
// and gives the job the first one made: exactly-once submission. Errors
// reaching the server, or refusals (bad token, bad request), throw
// ferry::Error with one clear sentence.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/error.hpp"

namespace ferry {

struct JobOptions {
  std::string queue;  // empty: "default"
  std::string name;
  int priority = 0;
  int retries = 0;
  double retry_delay = 1;  // seconds before the first retry; doubles after
  double timeout = 0;      // seconds per attempt; 0: none
  double delay = 0;        // seconds before it may run
  std::vector<std::string> labels;
  // Makes the submit idempotent: a job with this key exists at most once
  // while the server keeps it, and a submit whose jobs all have keys is
  // sent again after a dropped connection without making anything twice.
  // In call_many, job i gets the key "KEY/i".
  std::string key;
  std::optional<double> keep;  // seconds the server keeps it once ended (0: for ever)
};

struct JobResult {
  std::uint64_t id = 0;
  std::string state;         // succeeded, failed or cancelled
  boost::json::value value;  // what the function returned (calls)
  std::string reason;        // why it failed: the exception's message, "exit 3", ...
  std::string stdout_tail;   // for commands
  std::string stderr_tail;
  bool succeeded() const { return state == "succeeded"; }
};

// What a flow's submit made: the flow and its jobs, in the batch's order.
struct Flow {
  std::uint64_t id = 0;
  std::vector<std::uint64_t> ids;
};

class Client {
 public:
  explicit Client(std::string server = {}, std::string token = {});
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  // A call of `function` with `args`; returns its job id.
  std::uint64_t call(const std::string& function, boost::json::value args = nullptr,
                     const JobOptions& options = {});
  // Many calls of one function in one request (up to 10,000).
  std::vector<std::uint64_t> call_many(const std::string& function,
                                       const std::vector<boost::json::value>& args,
                                       const JobOptions& options = {});
  // A command (argv, searched in PATH on the worker).
  std::uint64_t command(const std::vector<std::string>& argv, const JobOptions& options = {});
  // Jobs that run after one another: the API's batch document as it is,
  // {"flow": {"name": ..., "key": ...}, "jobs": [...]}, its jobs naming each
  // other by "ref" in "after" (docs/flows.md). With a key it is made once.
  Flow submit_flow(const boost::json::object& batch);

  // Waits until the job ended; throws ferry::TimeoutError past `timeout`.
  JobResult wait(std::uint64_t id, std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Waits for all of them; results in the order they finish, each handed to
  // `on_result` as it comes. Throws ferry::TimeoutError past `timeout`.
  void wait_all(const std::vector<std::uint64_t>& ids,
                const std::function<void(const JobResult&)>& on_result,
                std::optional<std::chrono::milliseconds> timeout = std::nullopt);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry
