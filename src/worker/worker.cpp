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
#include "server/job_spec.hpp"

namespace ferry::worker {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void log(const std::string& line) { std::cerr << "ferry worker: " << line << std::endl; }

// Output is bytes; JSON strings are UTF-8. Invalid sequences become U+FFFD,
// and the tail is cut back to at most `limit` bytes on a character boundary.
std::string utf8_tail(const std::string& bytes, std::size_t limit) {
  std::string text;
  text.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    auto byte = static_cast<unsigned char>(bytes[i]);
    std::size_t length = byte < 0x80           ? 1
                         : (byte >> 5) == 0x6  ? 2
                         : (byte >> 4) == 0xE  ? 3
                         : (byte >> 3) == 0x1E ? 4
                                               : 0;
    bool valid = length > 0 && i + length <= bytes.size();
    for (std::size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 0x2;
    if (valid) {
      text.append(bytes, i, length);
      i += length;
    } else {
      text += "\xEF\xBF\xBD";
      ++i;
    }
  }
  if (text.size() <= limit) return text;
  std::size_t start = text.size() - limit;
  while (start < text.size() && (static_cast<unsigned char>(text[start]) >> 6) == 0x2) ++start;
  return text.substr(start);
}

exec::Command command_for(const server::JobSpec& spec, const WorkerConfig& config) {
  const auto& work = std::get<server::CommandSpec>(spec.work);
  exec::Command command;
  command.argv =
      work.argv.empty() ? std::vector<std::string>{"/bin/sh", "-c", work.shell} : work.argv;
  for (const auto& [name, value] : work.env) command.env.push_back(name + "=" + value);
  command.cwd = work.cwd;
  command.stdin_data = work.stdin_data;
  command.timeout = spec.timeout;
  command.kill_grace = config.kill_grace;
  command.output_limit = config.output_tail;
  return command;
}

json::object completion(std::uint64_t job, std::uint64_t token, const exec::Result& result,
                        std::size_t tail) {
  json::object report{{"job", job},
                      {"token", token},
                      {"succeeded", result.succeeded()},
                      {"reason", exec::describe(result)},
                      {"stdout", utf8_tail(result.out, tail)},
                      {"stderr", utf8_tail(result.err, tail)},
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
    milliseconds backoff{100};
    bool unreachable = false;
    for (;;) {
      for (int signal : signals_.take()) on_signal(signal);
      if (stops_ > 0 && running_.empty() && undelivered_.empty()) {
        log("all results delivered; exiting");
        return 0;
      }
      client::Response response;
      try {
        response = http_.request("POST", "/v1/lease", lease_request(),
                                 wait_for_work() + std::chrono::seconds(15));
      } catch (const client::ConnectionError& problem) {
        if (!unreachable) log(fmt::format("{}; retrying", problem.what()));
        unreachable = true;
        supervise(Clock::now() + backoff);
        backoff = std::min(backoff * 2, milliseconds(5000));
        continue;
      }
      if (unreachable) log("the server answers again");
      unreachable = false;
      backoff = milliseconds(100);
      if (response.status == 401) {
        log("the server refused the token; give the right one with --token or FERRY_TOKEN");
        return 1;
      }
      if (response.status != 200) {
        log(fmt::format("the server answered {}: {}", response.status, response.body));
        supervise(Clock::now() + milliseconds(1000));
        continue;
      }
      handle(json::parse(response.body).as_object());
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

  void handle(const json::object& reply) {
    for (const json::value& token : reply.at("acknowledged").as_array()) {
      std::uint64_t acknowledged = token.to_number<std::uint64_t>();
      std::erase_if(undelivered_, [&](const json::value& report) {
        return report.at("token").to_number<std::uint64_t>() == acknowledged;
      });
    }
    for (const json::value& stopped : reply.at("stop").as_array()) {
      std::uint64_t job = stopped.to_number<std::uint64_t>();
      for (const auto& [id, running] : running_)
        if (running.job == job) {
          log(fmt::format("job {} was taken back by the server; stopping it", job));
          processes_.terminate(id, config_.kill_grace);
        }
    }
    for (const json::value& item : reply.at("jobs").as_array()) {
      const json::object& job = item.as_object();
      auto id = job.at("id").to_number<std::uint64_t>();
      auto token = job.at("token").to_number<std::uint64_t>();
      try {
        server::JobSpec spec = server::parse_job_spec(json::serialize(job.at("spec")));
        if (!std::holds_alternative<server::CommandSpec>(spec.work)) {
          undelivered_.push_back(refusal(id, token, "this worker runs commands, not calls"));
          continue;
        }
        running_[processes_.start(command_for(spec, config_))] = {id, token};
      } catch (const std::exception& problem) {
        undelivered_.push_back(
            refusal(id, token, fmt::format("cannot run it: {}", problem.what())));
      }
    }
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

  void on_signal(int) {
    if (++stops_ == 1) {
      log(
          fmt::format("stopping: taking no new jobs; {} running will finish (signal again to "
                      "terminate them)",
                      running_.size()));
    } else {
      log("terminating the running jobs");
      processes_.terminate_all(config_.kill_grace);
    }
  }

  const WorkerConfig& config_;
  client::HttpClient http_;
  std::string id_;
  int slots_ = 1;
  exec::SignalWatch signals_;
  exec::ProcessSet processes_;
  std::unordered_map<exec::ProcessSet::Id, Running> running_;
  std::vector<json::value> undelivered_;  // completions the server has not acknowledged
  int stops_ = 0;
};

}  // namespace

int run_worker(const WorkerConfig& config) {
  Worker worker(config);
  return worker.run();
}

}  // namespace ferry::worker
