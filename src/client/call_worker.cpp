// ferry::Worker: leases call jobs of its functions and runs them on threads.
// The lease loop runs on the caller's thread; results come back from the
// pool threads through a queue and go out with the next lease request.
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "client/api.hpp"
#include "exec/signal_watch.hpp"
#include "ferry/error.hpp"
#include "ferry/worker.hpp"
#include "server/api_limits.hpp"

namespace ferry {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

// "returned", or why the server would refuse the result (checked here, so
// that one result can never make a whole report unreadable).
std::string checked_result(const json::value& result) {
  if (server::value_depth(result) > server::kMaxValueDepth)
    return fmt::format("the result nests deeper than {} levels", server::kMaxValueDepth);
  if (std::size_t size = json::serialize(result).size(); size > server::kMaxResultBytes)
    return fmt::format("the result is {} bytes of JSON, more than {}", size,
                       server::kMaxResultBytes);
  return "returned";
}

struct Task {
  std::uint64_t job;
  std::uint64_t token;
  const Worker::Function* function;
  json::value args;
};

}  // namespace

struct Worker::Impl {
  client::HttpClient http;
  WorkerOptions options;
  std::string id;
  int threads = 1;
  std::map<std::string, Function> functions;

  std::mutex mutex;
  std::condition_variable work_ready;     // for the pool threads
  std::condition_variable results_ready;  // for the lease loop
  std::deque<Task> queue;
  std::map<std::uint64_t, std::uint64_t> in_flight;  // token -> job, queued or running
  std::vector<json::value> finished;                 // not yet sent
  bool stopping = false;
  bool pool_done = false;
  double call_time_ns = 0;  // a moving average; 0 until a call finished

  void serve_tasks() {
    std::unique_lock lock(mutex);
    for (;;) {
      work_ready.wait(lock, [&] { return !queue.empty() || pool_done; });
      if (queue.empty()) return;
      Task task = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      json::object report{{"job", task.job}, {"token", task.token}};
      auto started = std::chrono::steady_clock::now();
      try {
        json::value result = (*task.function)(task.args);
        report["reason"] = checked_result(result);
        report["succeeded"] = report["reason"] == "returned";
        if (report["succeeded"] == true) report["result"] = std::move(result);
      } catch (const std::exception& problem) {
        report["succeeded"] = false;
        report["reason"] = problem.what();
      } catch (...) {
        report["succeeded"] = false;
        report["reason"] = "the function threw an exception that is not a std::exception";
      }
      double took =
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - started)
              .count();
      lock.lock();
      call_time_ns = call_time_ns == 0 ? took : 0.9 * call_time_ns + 0.1 * took;
      in_flight.erase(task.token);
      finished.push_back(std::move(report));
      results_ready.notify_one();
    }
  }

  // The lease request: results to report, heartbeats, room for new work.
  // Called with the lock held.
  std::string request(const std::vector<json::value>& undelivered, bool idle) {
    // Enough queued that a thread never waits for a round trip between calls:
    // deep for calls of microseconds, twice the threads for slow ones.
    int per_thread = 2;
    if (call_time_ns > 0)
      per_thread = static_cast<int>(std::clamp(1'000'000.0 / call_time_ns, 2.0, 256.0));
    int room =
        stopping ? 0 : std::max(0, per_thread * threads - static_cast<int>(in_flight.size()));
    json::array heartbeats;
    for (const auto& [token, job] : in_flight)
      heartbeats.push_back(json::object{{"job", job}, {"token", token}});
    std::vector<std::string> labels = options.labels;
    for (const auto& [name, function] : functions) labels.push_back("function:" + name);
    return json::serialize(
        json::object{{"worker", id},
                     {"free_slots", room},
                     {"queues", json::array(options.queues.begin(), options.queues.end())},
                     {"labels", json::array(labels.begin(), labels.end())},
                     {"commands", false},
                     {"wait", idle ? 2 : 0},
                     {"completions", json::array(undelivered.begin(), undelivered.end())},
                     {"heartbeats", std::move(heartbeats)}});
  }

  void take(const json::object& reply, std::vector<json::value>& undelivered) {
    // Refused reports are dropped, not sent again: they never would be taken.
    if (const json::value* rejected = reply.if_contains("rejected");
        rejected && rejected->is_array()) {
      std::vector<bool> drop(undelivered.size());
      for (const json::value& item : rejected->as_array())
        if (const json::value* index =
                item.is_object() ? item.as_object().if_contains("index") : nullptr;
            index && index->is_number() && index->to_number<std::size_t>() < drop.size()) {
          drop[index->to_number<std::size_t>()] = true;
          std::cerr << "ferry::Worker: the server refused a result: " << json::serialize(item)
                    << std::endl;
        }
      std::size_t next = 0;
      std::erase_if(undelivered, [&](const json::value&) { return drop[next++]; });
    }
    for (const json::value& token : reply.at("acknowledged").as_array()) {
      auto acknowledged = token.to_number<std::uint64_t>();
      std::erase_if(undelivered, [&](const json::value& report) {
        return report.at("token").to_number<std::uint64_t>() == acknowledged;
      });
    }
    std::lock_guard lock(mutex);
    for (const json::value& item : reply.at("jobs").as_array()) {
      const json::object& job = item.as_object();
      auto job_id = job.at("id").to_number<std::uint64_t>();
      auto token = job.at("token").to_number<std::uint64_t>();
      const json::object& spec = job.at("spec").as_object();
      const json::object* call = spec.contains("call") ? &spec.at("call").as_object() : nullptr;
      auto function =
          call ? functions.find(std::string(call->at("function").as_string())) : functions.end();
      if (function == functions.end()) {  // the server should not send it; say so
        finished.push_back(json::object{{"job", job_id},
                                        {"token", token},
                                        {"succeeded", false},
                                        {"reason", "this worker serves no such function"}});
        continue;
      }
      in_flight[token] = job_id;
      queue.push_back({job_id, token, &function->second, call->at("args")});
    }
    work_ready.notify_all();
  }
};

Worker::Worker(std::string server, std::string token, WorkerOptions options) {
  try {
    impl_.reset(new Impl{client::HttpClient(client::server_or_default(std::move(server)),
                                            client::token_or_default(std::move(token))),
                         std::move(options)});
  } catch (const std::invalid_argument& problem) {
    throw Error(problem.what());
  }
  Impl& impl = *impl_;
  impl.id = impl.options.id;
  if (impl.id.empty()) {
    char host[256] = "worker";
    ::gethostname(host, sizeof host - 1);
    impl.id = fmt::format("{}-{}", host, ::getpid());
  }
  impl.threads = impl.options.threads > 0 ? impl.options.threads
                                          : static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
}

Worker::~Worker() = default;

void Worker::add(const std::string& name, Function function) {
  impl_->functions[name] = std::move(function);
}

void Worker::stop() {
  std::lock_guard lock(impl_->mutex);
  impl_->stopping = true;
  impl_->results_ready.notify_all();
}

void Worker::run(bool handle_signals) {
  Impl& impl = *impl_;
  if (impl.functions.empty()) throw Error("the worker has no functions: add() some before run()");
  std::optional<exec::SignalWatch> signals;  // before the threads: they inherit the mask
  if (handle_signals) signals.emplace();
  std::vector<std::thread> pool;
  for (int i = 0; i < impl.threads; ++i) pool.emplace_back([&impl] { impl.serve_tasks(); });

  std::vector<json::value> undelivered;
  milliseconds backoff{100};
  std::optional<Error> fatal;
  for (;;) {
    if (signals && !signals->take().empty()) stop();
    std::string body;
    {
      std::unique_lock lock(impl.mutex);
      for (json::value& report : impl.finished) undelivered.push_back(std::move(report));
      impl.finished.clear();
      if (impl.stopping && impl.in_flight.empty() && undelivered.empty()) break;
      bool idle = impl.in_flight.empty() && undelivered.empty() && !impl.stopping;
      body = impl.request(undelivered, idle);
    }
    client::Response response;
    try {
      response = impl.http.request("POST", "/v1/lease", body, std::chrono::seconds(20));
    } catch (const client::ConnectionError&) {
      response.status = 0;
    }
    if (response.status == 401) {
      fatal = Error(fmt::format("the server at {} refused the token", impl.http.url()));
      stop();
      break;
    }
    if (response.status == 400 && !undelivered.empty()) {
      // Never taken, so never sent again: their jobs run again once their leases expire.
      std::cerr << "ferry::Worker: the server refused our report, dropping " << undelivered.size()
                << " results: " << response.body << std::endl;
      undelivered.clear();
      continue;
    }
    boost::system::error_code bad_json;
    json::value reply = json::parse(response.body, bad_json, {}, server::api_parse_options());
    bool answered = response.status == 200 && !bad_json && reply.is_object();
    if (answered) {
      try {
        impl.take(reply.as_object(), undelivered);
      } catch (const std::exception&) {
        answered = false;  // not a lease answer: a proxy's page, say
      }
    }
    if (!answered) {
      std::this_thread::sleep_for(backoff);  // keep results; try again
      backoff = std::min(backoff * 2, milliseconds(5000));
      continue;
    }
    backoff = milliseconds(100);
    std::unique_lock lock(impl.mutex);
    if (!impl.in_flight.empty() && impl.finished.empty())
      impl.results_ready.wait_for(lock, milliseconds(1000),
                                  [&] { return !impl.finished.empty() || impl.stopping; });
  }
  {
    std::lock_guard lock(impl.mutex);
    impl.pool_done = true;
    impl.queue.clear();  // only after a refusal: otherwise everything ran
  }
  impl.work_ready.notify_all();
  for (std::thread& thread : pool) thread.join();
  if (fatal) throw *fatal;
}

}  // namespace ferry
