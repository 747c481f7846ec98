// The client commands on a server's jobs: submit, status, wait, cancel.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/connection.hpp"
#include "run/command_template.hpp"
#include "run/inputs.hpp"

namespace ferry::cli {
namespace {

namespace json = boost::json;

// `value` for a URL: every byte but letters, digits and `keep` as %XX.
std::string percent_encoded(std::string_view value, std::string_view keep = "-_.") {
  std::string out;
  for (unsigned char c : value)
    out += std::isalnum(c) || keep.find(static_cast<char>(c)) != std::string_view::npos
               ? std::string(1, static_cast<char>(c))
               : fmt::format("%{:02X}", c);
  return out;
}

// "paused, 10 running at most, 50/s (burst 100), 2 per concurrency key".
std::string queue_limits(const json::object& queue) {
  std::string limits = queue.at("paused").as_bool() ? "paused" : "active";
  if (!queue.at("max_running").is_null())
    limits += fmt::format(", {} running at most", text(queue.at("max_running")));
  if (!queue.at("rate").is_null()) {
    limits += ", " + text(queue.at("rate"));
    if (queue.at("burst").to_number<std::uint64_t>() > 0)
      limits += fmt::format(" (burst {})", text(queue.at("burst")));
  }
  if (queue.at("concurrency_limit") != 1)
    limits += fmt::format(", {} per concurrency key", text(queue.at("concurrency_limit")));
  return limits;
}

// One line for a person: "7  succeeded  attempts 1  echo hi".
std::string summary(const json::object& job) {
  const json::object& spec = job.at("spec").as_object();
  std::string what;
  if (spec.contains("command")) {
    const json::object& command = spec.at("command").as_object();
    if (command.contains("shell")) {
      what = text(command.at("shell"));
    } else {
      for (const json::value& arg : command.at("argv").as_array())
        what += (what.empty() ? "" : " ") + run::shell_quote(text(arg));
    }
  } else {
    const json::object& call = spec.at("call").as_object();
    what = fmt::format("{}({})", text(call.at("function")), json::serialize(call.at("args")));
  }
  std::string name = text(job.at("name"));
  // A listing gives the number of attempts; a single job, all of them.
  const json::value& attempts = job.at("attempts");
  std::size_t attempt_count =
      attempts.is_array() ? attempts.as_array().size() : attempts.to_number<std::size_t>();
  std::string line =
      fmt::format("{:<6} {:<10} attempts {:<3} {}", job.at("id").as_int64(), text(job.at("state")),
                  attempt_count, name.empty() ? what : name + ": " + what);
  std::string reason = text(job.at("reason"));
  if (const json::value* held = job.if_contains("held"); held && held->is_string())
    reason = "held: " + text(*held);
  return reason.empty() ? line : line + "  (" + reason + ")";
}

CLI::Option* add_ids(CLI::App& command, std::vector<std::uint64_t>& ids) {
  return command.add_option("ids", ids, "Job ids")->required()->check(CLI::PositiveNumber);
}

}  // namespace

Subcommand add_submit(CLI::App& app) {
  struct Flags {
    Connection connection;
    JobFlags job;
    bool shell = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command =
      app.add_subcommand("submit", "Submit a command to a server; prints its job id");
  command->footer("Usage: ferry submit [OPTIONS] -- COMMAND [ARGS...]");
  flags->connection.add_options(*command);
  flags->job.add_options(*command);
  command->add_option("--key", flags->job.options.key,
                      "Submit it at most once: with a key a kept job has, that job's id is "
                      "printed and nothing new is made (safe to run again)");
  command->add_flag("--shell", flags->shell, "Run COMMAND through /bin/sh -c");
  command->prefix_command();
  return {command, [flags, command](const std::vector<std::string>& trailing) {
            std::vector<std::string> words = command->remaining();
            words.insert(words.end(), trailing.begin(), trailing.end());
            if (words.empty())
              throw run::UsageError("submit needs a command: ferry submit [OPTIONS] -- COMMAND");
            json::object work = command_work(words, flags->shell);
            json::object job = flags->job.job(std::move(work));
            bool keyed = !flags->job.options.key.empty();
            json::value reply =
                flags->connection.call("POST", "/v1/jobs", json::serialize(job), keyed);
            std::cout << reply.at("ids").as_array().at(0).as_int64() << "\n";
            return 0;
          }};
}

Subcommand add_status(CLI::App& app) {
  struct Flags {
    Connection connection;
    std::vector<std::uint64_t> ids;
    bool json = false;
    std::string state, queue, text;
    int limit = 20;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command =
      app.add_subcommand("status", "Show jobs of a server: the given ids, or the newest ones");
  flags->connection.add_options(*command);
  command->add_option("ids", flags->ids, "Job ids [default: list the newest]")
      ->check(CLI::PositiveNumber);
  command->add_flag("--json", flags->json, "JSON: one object per job, with every attempt");
  command->add_option("--state", flags->state, "List only jobs in this state");
  command->add_option("--queue", flags->queue, "List only jobs of this queue");
  command->add_option("--text", flags->text, "List only jobs whose name or spec contains TEXT");
  command->add_option("--limit", flags->limit, "List at most this many [default: 20]")
      ->check(CLI::Range(1, 1000));
  return {command, [flags](const std::vector<std::string>&) {
            if (flags->ids.empty()) {
              std::string query = fmt::format("/v1/jobs?limit={}", flags->limit);
              auto add = [&](const char* key, const std::string& value) {
                if (!value.empty()) query += fmt::format("&{}={}", key, percent_encoded(value));
              };
              add("state", flags->state);
              add("queue", flags->queue);
              add("text", flags->text);
              json::value page = flags->connection.call("GET", query);
              if (flags->json) {
                std::cout << json::serialize(page) << "\n";
                return 0;
              }
              for (const json::value& job : page.at("jobs").as_array())
                std::cout << summary(job.as_object()) << "\n";
              return 0;
            }
            for (std::uint64_t id : flags->ids) {
              json::value job = flags->connection.call("GET", fmt::format("/v1/jobs/{}", id));
              std::cout << (flags->json ? json::serialize(job) : summary(job.as_object())) << "\n";
            }
            return 0;
          }};
}

Subcommand add_wait(CLI::App& app) {
  struct Flags {
    Connection connection;
    std::vector<std::uint64_t> ids;
    double timeout = 0;
    bool json = false, progress = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "wait", "Wait until jobs end; exit 0 when all succeeded, 1 when not, 124 on --timeout");
  flags->connection.add_options(*command);
  add_ids(*command, flags->ids);
  command->add_option("--timeout", flags->timeout, "Give up after this many seconds")
      ->check(CLI::PositiveNumber);
  command->add_flag("--json", flags->json,
                    "JSON lines: each job's final state, output and result as it ends");
  command->add_flag("--progress,--bar", flags->progress, "Progress and ETA on stderr");
  return {command, [flags](const std::vector<std::string>&) {
            std::optional<std::chrono::steady_clock::time_point> deadline;
            if (flags->timeout > 0)
              deadline = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(static_cast<long long>(flags->timeout * 1000));
            auto print = [&](const json::object& event) {
              if (flags->json) {
                std::cout << json::serialize(event) << "\n";
                return;
              }
              std::string line =
                  fmt::format("{:<6} {:<10} attempts {}", event.at("id").as_int64(),
                              text(event.at("state")), event.at("attempts").as_int64());
              std::string reason = text(event.at("reason"));
              std::cout << (reason.empty() ? line : line + "  (" + reason + ")") << "\n";
            };
            auto unsuccessful =
                wait_for(flags->connection, flags->ids, flags->progress, deadline, print);
            if (!unsuccessful) {
              std::cerr << fmt::format("ferry: not all jobs ended within {}s\n", flags->timeout);
              return 124;
            }
            return *unsuccessful == 0 ? 0 : 1;
          }};
}

namespace {

// `ferry cancel` and `ferry retry`: the same call on many ids.
Subcommand per_job_command(CLI::App& app, const std::string& name, const std::string& help,
                           const std::string& endpoint, const std::string& done) {
  struct Flags {
    Connection connection;
    std::vector<std::uint64_t> ids;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(name, help);
  flags->connection.add_options(*command);
  add_ids(*command, flags->ids);
  return {command, [flags, endpoint, done](const std::vector<std::string>&) {
            json::value reply = flags->connection.call(
                "POST", endpoint,
                json::serialize(
                    json::object{{"ids", json::array(flags->ids.begin(), flags->ids.end())}}));
            bool all = true;
            for (const json::value& result : reply.at("results").as_array()) {
              bool ok = result.at(done).as_bool();
              all = all && ok;
              std::cout << result.at("id").as_int64() << " "
                        << (ok ? done : text(result.at("detail"))) << "\n";
            }
            return all ? 0 : 1;
          }};
}

}  // namespace

Subcommand add_cancel(CLI::App& app) {
  return per_job_command(app, "cancel", "Cancel jobs; running ones are stopped", "/v1/cancel",
                         "cancelled");
}

Subcommand add_retry(CLI::App& app) {
  return per_job_command(app, "retry",
                         "Run failed or cancelled jobs again, each with its retries anew",
                         "/v1/retry", "retried");
}

Subcommand add_logs(CLI::App& app) {
  struct Flags {
    Connection connection;
    std::uint64_t id = 0;
    int attempt = 0;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "logs", "Print what a job wrote: stdout to stdout, stderr to stderr (the last 64 KiB)");
  flags->connection.add_options(*command);
  command->add_option("id", flags->id, "Job id")->required()->check(CLI::PositiveNumber);
  command->add_option("--attempt", flags->attempt, "Which attempt [default: the last]")
      ->check(CLI::PositiveNumber);
  command->add_flag("--json", flags->json,
                    "The attempt as JSON: stdout, stderr, exit code, result, times");
  return {
      command, [flags](const std::vector<std::string>&) {
        json::value job = flags->connection.call("GET", fmt::format("/v1/jobs/{}", flags->id));
        const json::array& attempts = job.at("attempts").as_array();
        if (attempts.empty()) {
          std::cerr << fmt::format("ferry: job {} has not run yet ({})\n", flags->id,
                                   text(job.at("state")));
          return 1;
        }
        std::size_t index =
            flags->attempt > 0 ? static_cast<std::size_t>(flags->attempt) - 1 : attempts.size() - 1;
        if (index >= attempts.size()) {
          std::cerr << fmt::format("ferry: job {} has {} attempts\n", flags->id, attempts.size());
          return 1;
        }
        const json::object& attempt = attempts[index].as_object();
        if (flags->json) {
          std::cout << json::serialize(attempt) << "\n";
          return 0;
        }
        if (const json::value* out = attempt.if_contains("stdout")) std::cout << text(*out);
        if (const json::value* err = attempt.if_contains("stderr")) std::cerr << text(*err);
        return 0;
      }};
}

Subcommand add_workers(CLI::App& app) {
  struct Flags {
    Connection connection;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("workers", "List the workers a server has heard from");
  flags->connection.add_options(*command);
  command->add_flag("--json", flags->json, "The server's JSON answer");
  return {command, [flags](const std::vector<std::string>&) {
            json::value reply = flags->connection.call("GET", "/v1/workers");
            if (flags->json) {
              std::cout << json::serialize(reply) << "\n";
              return 0;
            }
            auto names = [](const json::value& list) {
              std::string joined;
              for (const json::value& name : list.as_array())
                joined += (joined.empty() ? "" : ",") + text(name);
              return joined.empty() ? std::string("-") : joined;
            };
            std::cout << fmt::format("{:<28} {:>10} {:>10}  {:<16} {}\n", "WORKER", "FREE SLOTS",
                                     "SEEN (S)", "QUEUES", "LABELS");
            for (const json::value& worker : reply.at("workers").as_array())
              std::cout << fmt::format("{:<28} {:>10} {:>10.1f}  {:<16} {}\n",
                                       text(worker.at("id")),
                                       worker.at("free_slots").to_number<int>(),
                                       worker.at("seconds_since_seen").to_number<double>(),
                                       names(worker.at("queues")), names(worker.at("labels")));
            return 0;
          }};
}

Subcommand add_queue(CLI::App& app) {
  struct Flags {
    Connection connection;
    std::string name, max_running, rate;
    std::optional<std::int64_t> burst, concurrency_limit;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "queue", "Show or change a queue's settings: pause, resume, limits (at once, durably)");
  command->require_subcommand(1);
  auto verb = [&](const char* name, const char* help) {
    CLI::App* sub = command->add_subcommand(name, help);
    flags->connection.add_options(*sub);
    sub->add_option("name", flags->name, "The queue")->required();
    sub->add_flag("--json", flags->json, "The server's JSON answer");
    return sub;
  };
  verb("show", "A queue's settings and jobs");
  verb("pause", "Start no more of its jobs (those running go on)");
  verb("resume", "Start its jobs again");
  CLI::App* set = verb("set", "Change its limits (\"none\" lifts one)");
  set->footer("Example: ferry queue set api --max-running 10 --rate 50/s --burst 100");
  set->add_option("--max-running", flags->max_running,
                  "At most N of its jobs run at a time, across all workers, or none");
  set->add_option("--rate", flags->rate,
                  "At most N jobs start per second, minute or hour (50/s, 10/m, 100/h), or none");
  set->add_option("--burst", flags->burst,
                  "How many may start at once after a quiet time [default: N of the rate]")
      ->check(CLI::Range(0, 1'000'000));
  set->add_option("--concurrency-limit", flags->concurrency_limit,
                  "At most N running jobs share one concurrency key [default: 1]")
      ->check(CLI::Range(1, 1'000'000));
  return {command, [flags, command](const std::vector<std::string>&) {
            std::string action = command->get_subcommands().front()->get_name();
            // Escaped, a name that is no name reaches the server, which says why.
            std::string target = "/v1/queues/" + percent_encoded(flags->name, "-_.:");
            json::value reply;
            if (action == "show") {
              reply = flags->connection.call("GET", target);
            } else {
              json::object patch;
              if (action != "set") patch["paused"] = action == "pause";
              auto limit = [](const std::string& given) {
                return given == "none" ? json::value(nullptr) : json::value(given);
              };
              if (!flags->max_running.empty()) {
                json::value max = limit(flags->max_running);
                if (max.is_string()) {
                  std::uint32_t n = 0;
                  auto [end, error] =
                      std::from_chars(flags->max_running.data(),
                                      flags->max_running.data() + flags->max_running.size(), n);
                  if (error != std::errc{} ||
                      end != flags->max_running.data() + flags->max_running.size() || n == 0)
                    throw ApiError("--max-running: a whole number from 1, or none", 2);
                  max = n;
                }
                patch["max_running"] = max;
              }
              if (!flags->rate.empty()) patch["rate"] = limit(flags->rate);
              if (flags->burst) patch["burst"] = *flags->burst;
              if (flags->concurrency_limit) patch["concurrency_limit"] = *flags->concurrency_limit;
              if (patch.empty()) throw ApiError("ferry queue set: give a limit to change", 2);
              reply = flags->connection.call("PATCH", target, json::serialize(patch));
            }
            if (flags->json) {
              std::cout << json::serialize(reply) << "\n";
              return 0;
            }
            const json::object& queue = reply.as_object();
            std::cout << fmt::format("queue {}: {}\n", text(queue.at("name")), queue_limits(queue));
            std::string jobs;
            for (const char* state :
                 {"waiting", "queued", "running", "succeeded", "failed", "cancelled"})
              jobs += fmt::format("{}{} {}", jobs.empty() ? "" : ", ",
                                  text(queue.at("jobs").at(state)), state);
            std::cout << fmt::format("  jobs: {}\n", jobs);
            return 0;
          }};
}

Subcommand add_queues(CLI::App& app) {
  struct Flags {
    Connection connection;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command =
      app.add_subcommand("queues", "List a server's queues with their jobs by state");
  flags->connection.add_options(*command);
  command->add_flag("--json", flags->json, "The server's JSON answer");
  return {command, [flags](const std::vector<std::string>&) {
            json::value reply = flags->connection.call("GET", "/v1/queues");
            if (flags->json) {
              std::cout << json::serialize(reply) << "\n";
              return 0;
            }
            const char* states[] = {"waiting",   "queued", "running",
                                    "succeeded", "failed", "cancelled"};
            std::cout << fmt::format("{:<24}", "QUEUE");
            for (const char* state : states) std::cout << fmt::format(" {:>10}", state);
            std::cout << "  LIMITS\n";
            for (const json::value& queue : reply.at("queues").as_array()) {
              std::cout << fmt::format("{:<24}", text(queue.at("name")));
              for (const char* state : states)
                std::cout << fmt::format(" {:>10}",
                                         queue.at("jobs").at(state).to_number<std::uint64_t>());
              std::cout << "  " << queue_limits(queue.as_object()) << "\n";
            }
            return 0;
          }};
}

}  // namespace ferry::cli
