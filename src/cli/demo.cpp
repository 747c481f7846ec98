// `ferry demo`: what ferry is for, in a few seconds. It starts a server on a
// free loopback port with a database in a temporary directory, two `ferry
// worker`s for commands and, in this process, a ferry::Worker serving the
// function `square`; submits one flow (build, then tests and calls fanned out
// after it, some tests failing once and retried, then a report after them
// all); prints each job's end as the server's event stream of the flow tells
// it; and stops and removes everything it started. Exit status: 0 when every
// job succeeded, 1 when not, 130 after Ctrl-C. With --keep, all of it runs on
// until Ctrl-C, to look around with the CLI (and the dashboard, when the
// server serves one).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "cli/commands.hpp"
#include "client/api.hpp"
#include "exec/process_set.hpp"
#include "exec/signal_watch.hpp"
#include "ferry/worker.hpp"
#include "server/api_limits.hpp"

namespace ferry::cli {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Interrupted {};                    // Ctrl-C, SIGTERM or SIGHUP
struct DemoFailed : std::runtime_error {  // something of the demo's own broke
  using std::runtime_error::runtime_error;
};

constexpr int kTests = 8;  // after build, each 0.1-0.4 s; every 3rd fails once
constexpr int kCalls = 8;  // square(1) ... square(8) on this process's threads, after build
constexpr std::chrono::seconds kPatience{90};

std::string last_lines(const std::filesystem::path& file, std::size_t count) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string text;
  for (std::size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    text += "  " + lines[i] + "\n";
  return text;
}

class Demo {
 public:
  explicit Demo(bool keep) : keep_(keep) {
    std::string pattern = std::filesystem::temp_directory_path() / "ferry-demo-XXXXXX";
    if (!::mkdtemp(pattern.data()))
      throw DemoFailed(fmt::format("cannot make a directory like {}", pattern));
    scratch_ = pattern;
    self_ = std::filesystem::read_symlink("/proc/self/exe");
  }

  ~Demo() {
    stop_everything();
    std::error_code ignored;
    std::filesystem::remove_all(scratch_, ignored);
  }

  int run() {
    started_ = Clock::now();
    start_server();
    for (int n = 1; n <= 2; ++n)
      start_process({self_, "worker", "--server", url_, "--slots", "4", "--id",
                     fmt::format("demo-worker-{}", n)},
                    fmt::format("worker-{}.log", n));
    start_call_worker();
    std::cout << fmt::format(
        "ferry demo: a server at {} (its database in {}),\n"
        "two `ferry worker`s of 4 slots for commands, and this process serving the function "
        "`square`\n"
        "with ferry::Worker, as a C++ or Python program of yours would.\n",
        url_, scratch_.string());
    dashboard_ = serves_dashboard();
    if (dashboard_) std::cout << fmt::format("Dashboard: {}/\n", url_);
    std::cout << "\n";

    std::cout << fmt::format(
        "One flow, submitted as one batch whose jobs name each other by ref:\n"
        "  build -> test-1 ... test-{} (commands; every 3rd fails once and is retried)\n"
        "        -> square(1) ... square({}) (calls)\n"
        "        -> report, after all of them\n\n",
        kTests, kCalls);
    std::vector<json::object> jobs;
    std::vector<std::string> everything_before_report;
    jobs.push_back(
        command_job("build", fmt::format("mkdir -p '{}/items' && echo built", scratch_.string())));
    for (int n = 1; n <= kTests; ++n) {
      jobs.push_back(test_job(n));
      everything_before_report.push_back(fmt::format("test-{}", n));
    }
    for (int n = 1; n <= kCalls; ++n) {
      jobs.push_back(square_job(n));
      everything_before_report.push_back(fmt::format("square-{}", n));
    }
    json::object report = command_job(
        "report", fmt::format("echo \"$(ls '{}/items' | wc -l) tests passed\"", scratch_.string()));
    report["after"] = json::array(everything_before_report.begin(), everything_before_report.end());
    jobs.push_back(std::move(report));
    bool all_succeeded = run_flow(jobs);

    double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    std::cout << fmt::format(
        "\nferry demo: flow {} {}: {} jobs, {} succeeded ({} after a retry), {} did not, in "
        "{:.1f} s; the squares sum to {}.\n",
        flow_, flow_state(), ended_, succeeded_, retried_, ended_ - succeeded_, seconds,
        square_sum_);
    if (keep_) wait_for_interrupt();
    std::cout << "By hand: `ferry server --db ferry.db`, `ferry worker` on each machine, then "
                 "`ferry submit`, `ferry map`,\n"
                 "`ferry wait`, `ferry status`; from programs, ferry::Client and ferry::Worker "
                 "(C++) or ferry.Client\n"
                 "and ferry.Worker (Python, clients/python). See `ferry --help` and the README.\n";
    return all_succeeded ? 0 : 1;
  }

 private:
  void start_server() {
    std::filesystem::path address = scratch_ / "address";
    server_ = start_process({self_, "server", "--listen", "127.0.0.1:0", "--db",
                             (scratch_ / "ferry.db").string(), "--address-file", address.string()},
                            "server.log");
    // Bounded: 20 s for a server to start on a loaded machine.
    for (int i = 0; i < 200 && url_.empty(); ++i) {
      std::ifstream(address) >> url_;
      if (!url_.empty()) break;
      for (const auto& finished : processes_.wait(Clock::now() + milliseconds(100), signals_.fd()))
        if (finished.id == server_)
          throw DemoFailed("the server did not start:\n" + last_lines(scratch_ / "server.log", 5));
      if (!signals_.take().empty()) throw Interrupted();
    }
    if (url_.empty()) throw DemoFailed("the server did not start within 20 s");
    http_.emplace(url_, "");
    http_->interrupt_on(signals_.fd());
  }

  exec::ProcessSet::Id start_process(std::vector<std::string> argv, const std::string& log) {
    int fd = ::open((scratch_ / log).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw DemoFailed(fmt::format("cannot write {}", (scratch_ / log).string()));
    exec::Command command;
    command.argv = std::move(argv);
    command.stdout_fd = fd;
    command.stderr_fd = fd;
    auto id = processes_.start(command);
    ::close(fd);
    started_processes_.push_back(id);
    return id;
  }

  // Calls are served here, on two threads, as a user's program would.
  void start_call_worker() {
    call_worker_.emplace(url_, "", WorkerOptions{.threads = 2, .id = "demo-calls"});
    call_worker_->add("square", [](const json::value& n) -> json::value {
      auto value = n.to_number<long long>();
      std::this_thread::sleep_for(milliseconds(100 + 25 * (value % 5)));  // pretend to work
      return value * value;
    });
    call_thread_ = std::thread([this] {
      try {
        call_worker_->run(false);
      } catch (const std::exception& problem) {
        std::cerr << "ferry demo: the call worker stopped: " << problem.what() << "\n";
      }
    });
  }

  static json::object command_job(const std::string& name, const std::string& script) {
    return json::object{
        {"command", json::object{{"shell", script}}}, {"name", name}, {"ref", name}};
  }

  json::object test_job(int n) {
    std::string name = fmt::format("test-{}", n);
    std::string script = fmt::format(
        "sleep 0.{}; if [ {} -eq 0 ] && mkdir '{}/failed-{}' 2>/dev/null; then echo 'failing "
        "once' >&2; exit 1; fi; echo {} > '{}/items/{}'",
        n % 4 + 1, n % 3, scratch_.string(), n, n, scratch_.string(), n);
    json::object job = command_job(name, script);
    job["after"] = json::array{"build"};
    job["retries"] = 1;
    job["retry_delay"] = 0.2;
    return job;
  }

  static json::object square_job(int n) {
    return json::object{{"call", json::object{{"function", "square"}, {"args", n}}},
                        {"name", fmt::format("square({})", n)},
                        {"ref", fmt::format("square-{}", n)},
                        {"after", json::array{"build"}}};
  }

  // Submits the jobs as one flow, then prints their ends as they come; true
  // when all succeeded.
  bool run_flow(const std::vector<json::object>& jobs) {
    json::array batch(jobs.begin(), jobs.end());
    json::value reply;
    try {
      reply = client::call_api(
          *http_, "POST", "/v1/jobs",
          json::serialize(json::object{{"jobs", std::move(batch)},
                                       {"flow", json::object{{"name", "ferry demo"}}}}));
    } catch (const client::Interrupted&) {
      throw Interrupted();
    } catch (const std::exception& problem) {
      throw DemoFailed(fmt::format("submitting failed: {}", problem.what()));
    }
    flow_ = reply.at("flow").to_number<std::uint64_t>();
    std::map<std::uint64_t, std::string> names;
    for (std::size_t i = 0; i < jobs.size(); ++i)
      names[reply.at("ids").at(i).to_number<std::uint64_t>()] =
          std::string(jobs[i].at("name").as_string());
    std::cout << fmt::format("Flow {}: jobs {} to {}\n", flow_, names.begin()->first,
                             names.rbegin()->first);
    return follow(names, fmt::format("/v1/events?results=true&flow={}", flow_));
  }

  // "succeeded", "failed"...: the flow's state as the server sums it up.
  std::string flow_state() {
    try {
      json::value flow = client::call_api(*http_, "GET", fmt::format("/v1/flows/{}", flow_));
      return std::string(flow.at("state").as_string());
    } catch (const client::Interrupted&) {
      throw Interrupted();
    } catch (const std::exception& problem) {
      return fmt::format("(its state could not be read: {})", problem.what());
    }
  }

  // The dashboard comes with servers built with it: shown when there.
  bool serves_dashboard() {
    try {
      return http_->request("GET", "/", "", std::chrono::seconds(10)).status == 200;
    } catch (const client::Interrupted&) {
      throw Interrupted();
    } catch (const client::ConnectionError&) {
      return false;
    }
  }

  bool follow(const std::map<std::uint64_t, std::string>& names, const std::string& target) {
    std::set<std::uint64_t> pending;
    for (const auto& [id, name] : names) pending.insert(id);
    std::set<std::pair<std::uint64_t, std::int64_t>> retries_shown;  // (job, attempts)
    bool all_succeeded = true;
    auto give_up = Clock::now() + kPatience;
    auto on_event = [&](std::string_view data) {
      json::object event = json::parse(data, {}, server::api_parse_options()).as_object();
      auto id = event.at("id").to_number<std::uint64_t>();
      std::string state(event.at("state").as_string());
      auto attempts = event.at("attempts").to_number<std::int64_t>();
      std::string reason(event.at("reason").as_string());
      if (!pending.count(id)) return !pending.empty();
      std::string when = fmt::format("{:5.2f}s", seconds_since_start());
      const std::string& name = names.at(id);
      if (state == "waiting" && attempts > 0 && retries_shown.insert({id, attempts}).second) {
        std::cout << fmt::format("  {}  job {:<3} {:<11} attempt {} {}; retried\n", when, id, name,
                                 attempts, last_attempt_end(id));
      } else if (state == "succeeded" || state == "failed" || state == "cancelled") {
        pending.erase(id);
        ++ended_;
        bool ok = state == "succeeded";
        succeeded_ += ok;
        retried_ += ok && attempts > 1;
        all_succeeded &= ok;
        std::string detail;
        if (const json::value* result = event.if_contains("result"); result && !result->is_null()) {
          detail = "= " + json::serialize(*result);
          if (result->is_number()) square_sum_ += result->to_number<long long>();
        } else if (std::string out(event.at("stdout").as_string()); !out.empty()) {
          detail = out.substr(0, out.find('\n'));
        }
        std::cout << fmt::format(
            "  {}  job {:<3} {:<11} {}{}{}\n", when, id, name, state,
            attempts > 1 ? fmt::format(" (attempt {})", attempts) : "",
            ok ? (detail.empty() ? "" : "  " + detail) : fmt::format(": {}", reason));
      }
      std::cout << std::flush;
      return !pending.empty();
    };
    // Short streams, so that Ctrl-C is seen within half a second; each one
    // starts again from the jobs' current states (seen ones are skipped).
    while (!pending.empty()) {
      if (!signals_.take().empty()) throw Interrupted();
      if (Clock::now() > give_up)
        throw DemoFailed(
            fmt::format("{} jobs did not end within {} s", pending.size(), kPatience.count()));
      try {
        client::Response refusal =
            http_->events(target, on_event, Clock::now() + milliseconds(500));
        if (refusal.status != 200)
          throw DemoFailed(fmt::format("the server refused the event stream: {}", refusal.body));
      } catch (const client::DeadlineReached&) {
      } catch (const client::ConnectionError& problem) {
        throw DemoFailed(fmt::format("the event stream broke: {}\n{}", problem.what(),
                                     last_lines(scratch_ / "server.log", 5)));
      }
    }
    return all_succeeded;
  }

  // "failed (exit 1: failing once)": how the job's last attempt ended.
  std::string last_attempt_end(std::uint64_t id) {
    try {
      json::value job = client::call_api(*http_, "GET", fmt::format("/v1/jobs/{}", id));
      const json::object& attempt = job.at("attempts").as_array().back().as_object();
      std::string err(attempt.at("stderr").as_string());
      return fmt::format("{} ({}{})", attempt.at("end").as_string(),
                         attempt.at("reason").as_string(),
                         err.empty() ? "" : ": " + err.substr(0, err.find('\n')));
    } catch (const client::Interrupted&) {
      throw Interrupted();
    } catch (const std::exception&) {
      return "failed";
    }
  }

  double seconds_since_start() const {
    return std::chrono::duration<double>(Clock::now() - started_).count();
  }

  void wait_for_interrupt() {
    std::cout << fmt::format(
                     "\nStill running (--keep); in another terminal:\n"
                     "  export FERRY_SERVER={}\n"
                     "  ferry status; ferry submit -- echo hello; ferry workers\n"
                     "{}Ctrl-C stops it all and removes {}.\n",
                     url_, dashboard_ ? fmt::format("and the dashboard at {}/. ", url_) : "",
                     scratch_.string())
              << std::flush;
    while (signals_.take().empty()) processes_.wait(std::nullopt, signals_.fd());
  }

  // The call worker, then the command workers (SIGTERM: they finish what
  // runs), then the server; anything still running after 10 s is killed.
  void stop_everything() {
    if (call_worker_) call_worker_->stop();
    if (call_thread_.joinable()) call_thread_.join();
    for (auto id : started_processes_)
      if (id != server_) processes_.terminate(id, std::chrono::seconds(5));
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (processes_.size() > 1 && Clock::now() < deadline) processes_.wait(deadline);
    if (processes_.size() > 0) processes_.terminate(server_, std::chrono::seconds(5));
    while (processes_.size() > 0 && Clock::now() < deadline) processes_.wait(deadline);
    // ~ProcessSet kills whatever is left.
  }

  bool keep_;
  std::filesystem::path scratch_;
  std::filesystem::path self_;
  exec::SignalWatch signals_;  // before any thread: they inherit the blocked signals
  exec::ProcessSet processes_;
  std::vector<exec::ProcessSet::Id> started_processes_;
  exec::ProcessSet::Id server_ = 0;
  std::string url_;
  std::optional<client::HttpClient> http_;
  std::optional<Worker> call_worker_;
  std::thread call_thread_;
  Clock::time_point started_;
  bool dashboard_ = false;
  std::uint64_t flow_ = 0;
  int ended_ = 0, succeeded_ = 0, retried_ = 0;
  long long square_sum_ = 0;
};

}  // namespace

Subcommand add_demo(CLI::App& app) {
  auto keep = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "demo",
      "See ferry at work in seconds: a server with a temporary database, two workers, and a "
      "small flow of commands and calls shown as they end; everything is removed afterwards");
  command->add_flag("--keep", *keep,
                    "Leave the server and workers running until Ctrl-C, to look around with the "
                    "CLI (and the dashboard)");
  return {command, [keep](const std::vector<std::string>&) {
            try {
              Demo demo(*keep);
              return demo.run();
            } catch (const Interrupted&) {
              std::cout << "\nferry demo: interrupted; everything it started is stopped and "
                           "removed\n";
              return 130;
            } catch (const DemoFailed& problem) {
              std::cerr << "ferry demo: " << problem.what() << "\n";
              return 1;
            }
          }};
}

}  // namespace ferry::cli
