#include "worker/worker.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <iostream>
#include <unordered_map>

#include "client/http_client.hpp"
#include "exec/process_set.hpp"
#include "exec/signal_watch.hpp"
#include "server/api_limits.hpp"
#include "server/job_spec.hpp"
#include "server/output_text.hpp"

namespace ferry::worker {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void log(const std::string& line) { std::cerr << "ferry worker: " << line << std::endl; }

// Output as the API's text: the rule of server/output_text.hpp, then the tail.
std::string output_tail(const std::string& bytes, std::size_t limit) {
  return std::string(server::text_tail(server::output_text(bytes), limit));
}

json::object completion(std::uint64_t job, std::uint64_t token, const exec::Result& result,
                        std::size_t tail) {
  json::object report{{"job", job},
                      {"token", token},
                      {"succeeded", result.succeeded()},
                      {"reason", exec::describe(result)},
                      {"stdout", output_tail(result.out, tail)},
                      {"stderr", output_tail(result.err, tail)},
                      {"cpu_us", (result.user_cpu + result.system_cpu).count()},
                      {"max_rss_kb", result.max_rss_kb}};
  if (result.end == exec::End::exited || result.end == exec::End::failed_to_start)
    report["exit_code"] = result.exit_code;
  if (result.signal) report["signal"] = result.signal;
  return report;
}

json::object refusal(std::uint64_t job, std::uint64_t token, const std::string& why) {
  return json::object{{"job", job}, {"token", token}, {"succeeded", false}, {"reason", why}};
}

class Worker {
 public:
  explicit Worker(const WorkerConfig& config)
      : config_(config), http_(config.server, config.token) {
    id_ = config.id;
    if (id_.empty()) {
      char host[256] = "worker";
      ::gethostname(host, sizeof host - 1);
      id_ = fmt::format("{}-{}", host, ::getpid());
    }
    slots_ = config.slots > 0 ? config.slots : static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  }

  int run() {
    log(fmt::format("{} serving {} with {} slots", id_, http_.url(), slots_));
    http_.interrupt_on(signals_.fd());
    milliseconds backoff{100};
    bool unreachable = false;
    for (;;) {
      for (int signal : signals_.take()) on_signal(signal);
      if (draining() && running_.empty()) {
        if (undelivered_.empty()) {
          log("all results delivered; exiting");
          return 0;
        }
        if (Clock::now() >= give_up_) {
          log(
              fmt::format("{} results could not be delivered; their jobs will run again when "
                          "their leases expire; exiting",
                          undelivered_.size()));
          return 1;
        }
      }
      client::Response response;
      try {
        response = http_.request("POST", "/v1/lease", lease_request(),
                                 wait_for_work() + std::chrono::seconds(15));
      } catch (const client::Interrupted&) {
        continue;  // a signal: seen at the top of the loop
      } catch (const client::ConnectionError& problem) {
        if (!unreachable) log(fmt::format("{}; retrying", problem.what()));
        unreachable = true;
        supervise(Clock::now() + backoff);
        backoff = std::min(backoff * 2, milliseconds(5000));
        continue;
      }
      if (unreachable) log("the server answers again");
      unreachable = false;
      if (response.status == 401) {
        log("the server refused the token; give the right one with --token or FERRY_TOKEN");
        return 1;
      }
      if (response.status == 400 && !undelivered_.empty()) {
        // The server will never take this request: sending it again would
        // stop every heartbeat and every new job with it.
        log(
            fmt::format("the server refused our report ({}); dropping {} results, whose jobs will "
                        "run again when their leases expire",
                        response.body, undelivered_.size()));
        undelivered_.clear();
        continue;
      }
      if (response.status != 200 || !handle(response.body)) {
        if (response.status != 200)
          log(fmt::format("the server answered {}: {}", response.status, response.body));
        supervise(Clock::now() + backoff);
        backoff = std::min(backoff * 2, milliseconds(5000));
        continue;
      }
      backoff = milliseconds(100);
      if (!running_.empty()) supervise(Clock::now() + config_.heartbeat);
    }
  }

 private:
  struct Running {
    std::uint64_t job;
    std::uint64_t token;
  };

  bool draining() const { return stops_ > 0; }

  milliseconds wait_for_work() const {
    bool idle = running_.empty() && undelivered_.empty() && !draining();
    return idle ? config_.poll_wait : milliseconds(0);
  }

  std::string lease_request() const {
    int free = draining() ? 0 : slots_ - static_cast<int>(running_.size());
    json::array heartbeats;
    for (const auto& [id, job] : running_)
      heartbeats.push_back(json::object{{"job", job.job}, {"token", job.token}});
    json::array completions(undelivered_.begin(), undelivered_.end());
    return json::serialize(
        json::object{{"worker", id_},
                     {"free_slots", std::max(free, 0)},
                     {"queues", json::array(config_.queues.begin(), config_.queues.end())},
                     {"labels", json::array(config_.labels.begin(), config_.labels.end())},
                     {"wait", static_cast<double>(wait_for_work().count()) / 1000.0},
                     {"completions", std::move(completions)},
                     {"heartbeats", std::move(heartbeats)}});
  }

  // Acts on a lease answer; false (and a line in the log) when it is not one
  // (a proxy's page, say): the request is then tried again.
  bool handle(const std::string& body) {
    json::object reply;
    try {
      boost::system::error_code bad_json;
      json::value value = json::parse(body, bad_json, {}, server::api_parse_options());
      if (bad_json || !value.is_object()) throw std::runtime_error("not a JSON object");
      reply = std::move(value.as_object());
      for (const char* key : {"jobs", "acknowledged", "stop"})
        if (!reply.contains(key) || !reply.at(key).is_array())
          throw std::runtime_error(fmt::format("no array '{}'", key));
    } catch (const std::exception& problem) {
      log(fmt::format("the server's answer is not a lease answer ({}): {}", problem.what(),
                      body.substr(0, 200)));
      return false;
    }
    // Refused reports are dropped, not sent again: they never would be taken.
    if (const json::value* rejected = reply.if_contains("rejected");
        rejected && rejected->is_array()) {
      std::vector<bool> drop(undelivered_.size());
      for (const json::value& item : rejected->as_array()) {
        const json::value* index =
            item.is_object() ? item.as_object().if_contains("index") : nullptr;
        if (!index || !index->is_number()) continue;
        auto at = index->to_number<std::size_t>();
        if (at >= drop.size()) continue;
        drop[at] = true;
        log(fmt::format(
            "the server refused the result of job {}: {}",
            json::serialize(undelivered_[at].at("job")),
            json::serialize(item.as_object().if_contains("error") ? item.at("error")
                                                                  : json::value(nullptr))));
      }
      std::size_t next = 0;
      std::erase_if(undelivered_, [&](const json::value&) { return drop[next++]; });
    }
    for (const json::value& token : reply.at("acknowledged").as_array()) {
      if (!token.is_number()) continue;
      auto acknowledged = token.to_number<std::uint64_t>();
      std::erase_if(undelivered_, [&](const json::value& report) {
        return report.at("token").to_number<std::uint64_t>() == acknowledged;
      });
    }
    // By token: the job may run here twice, its old attempt (to stop) and a
    // new lease of it (to keep), after a server restart.
    const json::value* tokens = reply.if_contains("stop_tokens");
    for (std::size_t i = 0; i < reply.at("stop").as_array().size(); ++i) {
      const json::value& stopped = reply.at("stop").as_array()[i];
      const json::value* token = tokens && tokens->is_array() && i < tokens->as_array().size()
                                     ? &tokens->as_array()[i]
                                     : nullptr;
      if (!stopped.is_number()) continue;
      auto job = stopped.to_number<std::uint64_t>();
      for (const auto& [id, running] : running_)
        if (running.job == job &&
            (!token || !token->is_number() || token->to_number<std::uint64_t>() == running.token)) {
          log(fmt::format("job {} was taken back by the server; stopping it", job));
          processes_.terminate(id, config_.kill_grace);
        }
    }
    for (const json::value& item : reply.at("jobs").as_array()) {
      std::uint64_t id = 0, token = 0;
      try {
        const json::object& job = item.as_object();
        id = job.at("id").to_number<std::uint64_t>();
        token = job.at("token").to_number<std::uint64_t>();
        server::JobSpec spec = server::parse_job_spec(json::serialize(job.at("spec")));
        if (!std::holds_alternative<server::CommandSpec>(spec.work)) {
          undelivered_.push_back(refusal(id, token, "this worker runs commands, not calls"));
          continue;
        }
        running_[processes_.start(command_for(spec, config_.kill_grace, config_.output_tail))] = {
            id, token};
      } catch (const std::exception& problem) {
        if (id && token)
          undelivered_.push_back(
              refusal(id, token, fmt::format("cannot run it: {}", problem.what())));
        else
          log(fmt::format("the server sent a job we cannot read: {}", problem.what()));
      }
    }
    return true;
  }

  // Waits for processes until `deadline` (or a signal), collecting results.
  void supervise(Clock::time_point deadline) {
    for (auto& finished : processes_.wait(deadline, signals_.fd())) {
      auto node = running_.extract(finished.id);
      if (node.empty()) continue;
      undelivered_.push_back(
          completion(node.mapped().job, node.mapped().token, finished.result, config_.output_tail));
    }
  }

  // The first signal drains: no new jobs, the running ones finish and their
  // results are delivered (trying for at most kDeliveryPatience once nothing
  // runs). A second one terminates the running jobs at once (SIGTERM, then
  // SIGKILL after the grace) and gives their results one last chance.
  void on_signal(int) {
    if (++stops_ == 1) {
      log(
          fmt::format("stopping: taking no new jobs; {} running will finish (signal again to "
                      "terminate them)",
                      running_.size()));
      give_up_ = Clock::now() + kDeliveryPatience;
    } else {
      log("terminating the running jobs");
      processes_.terminate_all(config_.kill_grace);
      give_up_ = Clock::now() + config_.kill_grace + std::chrono::seconds(2);
    }
  }
  static constexpr std::chrono::seconds kDeliveryPatience{30};

  const WorkerConfig& config_;
  client::HttpClient http_;
  std::string id_;
  int slots_ = 1;
  exec::SignalWatch signals_;
  exec::ProcessSet processes_;
  std::unordered_map<exec::ProcessSet::Id, Running> running_;
  std::vector<json::value> undelivered_;  // completions the server has not acknowledged
  int stops_ = 0;
  Clock::time_point give_up_;  // draining: when undelivered results are given up
};

}  // namespace

int run_worker(const WorkerConfig& config) {
  Worker worker(config);
  return worker.run();
}

exec::Command command_for(const server::JobSpec& spec, std::chrono::milliseconds kill_grace,
                          std::size_t output_limit) {
  const auto& work = std::get<server::CommandSpec>(spec.work);
  exec::Command command;
  command.argv =
      work.argv.empty() ? std::vector<std::string>{"/bin/sh", "-c", work.shell} : work.argv;
  for (const auto& [name, value] : work.env) command.env.push_back(name + "=" + value);
  command.cwd = work.cwd;
  command.stdin_data = work.stdin_data;
  command.timeout = spec.timeout;
  command.kill_grace = kill_grace;
  command.output_limit = output_limit;
  return command;
}

}  // namespace ferry::worker
