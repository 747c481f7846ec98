// `ferry schedule ...`: jobs and flows a server submits by itself, by a
// cron expression or every N seconds.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <ctime>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/connection.hpp"
#include "run/inputs.hpp"

namespace ferry::cli {
namespace {

namespace json = boost::json;

// "2026-11-28 02:00 UTC" for a time in Unix milliseconds.
std::string when(const json::value& unix_ms) {
  if (!unix_ms.is_int64()) return "never";
  std::time_t seconds = static_cast<std::time_t>(unix_ms.as_int64() / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return out;
}

std::string what(const json::object& schedule) {
  if (const json::value* flow = schedule.if_contains("flow")) {
    std::string name =
        text(flow->at("flow").as_object().contains("name") ? flow->at("flow").at("name")
                                                           : json::value(schedule.at("name")));
    return fmt::format("flow {} ({} jobs)", name, flow->at("jobs").as_array().size());
  }
  const json::object& job = schedule.at("job").as_object();
  if (const json::value* command = job.if_contains("command")) {
    if (const json::value* shell = command->as_object().if_contains("shell")) return text(*shell);
    std::string words;
    for (const json::value& word : command->at("argv").as_array())
      words += (words.empty() ? "" : " ") + text(word);
    return words;
  }
  return fmt::format("{}()", text(job.at("call").at("function")));
}

std::string line_of(const json::object& schedule) {
  std::string timing =
      schedule.contains("cron")
          ? fmt::format("cron {} ({})", text(schedule.at("cron")), text(schedule.at("tz")))
          : fmt::format("every {}s", text(schedule.at("every")));
  return fmt::format("{:<20} {:<34} next {:<24} {}{}", text(schedule.at("name")), timing,
                     schedule.at("paused").as_bool() ? "paused" : when(schedule.at("next_ms")),
                     what(schedule), schedule.contains("skip_missed") ? "  (skips missed)" : "");
}

}  // namespace

Subcommand add_schedule(CLI::App& app) {
  struct Flags {
    Connection connection;
    JobFlags job;
    std::string name, cron, tz, flow;
    double every = 0;
    bool skip_missed = false, shell = false, json = false;
    std::vector<std::string> params;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* schedule = app.add_subcommand(
      "schedule", "Schedules: a job or a flow the server submits by itself, by cron or interval");
  schedule->require_subcommand(1);

  CLI::App* add = schedule->add_subcommand(
      "add", "Add a schedule: ferry schedule add NAME --cron EXPR [OPTIONS] -- COMMAND");
  add->footer(
      "Usage: ferry schedule add NAME (--cron EXPR [--tz ZONE] | --every SECONDS) "
      "[OPTIONS] (-- COMMAND [ARGS...] | --flow FILE)");
  flags->connection.add_options(*add);
  add->add_option("name", flags->name, "The schedule's name")->required();
  add->add_option("--cron", flags->cron,
                  "When: minute hour day-of-month month day-of-week, or @daily, @hourly, ...");
  add->add_option("--tz", flags->tz, "The time zone of --cron [default: UTC]");
  add->add_option("--every", flags->every, "Or every this many seconds")
      ->check(CLI::Range(1.0, 365 * 86400.0));
  add->add_flag("--skip-missed", flags->skip_missed,
                "After the server was down, skip the runs missed instead of one run at once");
  add->add_option("--flow", flags->flow, "Submit this flow file (docs/flows.md) each time");
  add->add_option("--param,-p", flags->params, "NAME=VALUE: a parameter of --flow");
  add->add_flag("--shell", flags->shell, "Run COMMAND through /bin/sh -c");
  flags->job.add_options(*add);
  add->prefix_command();

  CLI::App* list = schedule->add_subcommand("list", "List a server's schedules");
  flags->connection.add_options(*list);
  list->add_flag("--json", flags->json, "The server's JSON answer");

  struct Action {
    CLI::App* app;
    std::string method, suffix, done;
  };
  std::vector<Action> actions;
  for (auto [name, help, method, suffix, done] :
       std::vector<std::tuple<const char*, const char*, const char*, const char*, const char*>>{
           {"pause", "Pause a schedule: it submits nothing until resumed", "POST", "/pause",
            "paused"},
           {"resume", "Resume a schedule: it fires next at its next time from now", "POST",
            "/resume", "resumed"},
           {"remove", "Remove a schedule (what it submitted stays)", "DELETE", "", "removed"},
           {"run-now", "Submit a schedule's work now, besides its times", "POST", "/run", ""}}) {
    CLI::App* command = schedule->add_subcommand(name, help);
    flags->connection.add_options(*command);
    command->add_option("name", flags->name, "The schedule's name")->required();
    actions.push_back({command, method, suffix, done});
  }

  return {
      schedule, [flags, add, list, actions](const std::vector<std::string>& trailing) {
        Connection& connection = flags->connection;
        if (list->parsed()) {
          json::value reply = connection.call("GET", "/v1/schedules");
          if (flags->json) {
            std::cout << json::serialize(reply) << "\n";
            return 0;
          }
          for (const json::value& item : reply.at("schedules").as_array())
            std::cout << line_of(item.as_object()) << "\n";
          return 0;
        }
        for (const Action& action : actions) {
          if (!action.app->parsed()) continue;
          json::value reply = connection.call(
              action.method, fmt::format("/v1/schedules/{}{}", flags->name, action.suffix));
          if (action.done.empty())  // run-now
            std::cout << fmt::format("{}: submitted {}\n", flags->name,
                                     reply.as_object().contains("flow")
                                         ? fmt::format("flow {}", reply.at("flow").as_int64())
                                         : fmt::format("job {}", reply.at("ids").at(0).as_int64()));
          else
            std::cout << fmt::format("{}: {}\n", flags->name, action.done);
          return 0;
        }
        // add
        std::vector<std::string> words = add->remaining();
        words.insert(words.end(), trailing.begin(), trailing.end());
        if (flags->cron.empty() == (flags->every == 0))
          throw run::UsageError("schedule add needs one of --cron and --every");
        if (words.empty() == flags->flow.empty())
          throw run::UsageError(
              "schedule add needs a command (-- COMMAND) or a flow (--flow FILE), not both");
        json::object spec{{"name", flags->name}};
        if (!flags->cron.empty()) {
          spec["cron"] = flags->cron;
          if (!flags->tz.empty()) spec["tz"] = flags->tz;
        } else {
          spec["every"] = flags->every;
        }
        if (flags->skip_missed) spec["skip_missed"] = true;
        if (!flags->flow.empty()) {
          std::vector<flowfile::FlowDocument> flows = load_flow_files({flags->flow}, flags->params);
          if (flows.size() != 1)
            throw run::UsageError(fmt::format("--flow {}: holds {} flows; a schedule takes one",
                                              flags->flow, flows.size()));
          json::object batch = json::parse(flows[0].batch_json).as_object();
          json::value& about = batch["flow"];
          if (!about.is_object()) about.emplace_object();
          if (!about.as_object().contains("name")) about.as_object()["name"] = flows[0].name;
          spec["flow"] = std::move(batch);
        } else {
          json::object work = command_work(words, flags->shell);
          spec["job"] = flags->job.job(std::move(work));
        }
        json::value reply = connection.call("POST", "/v1/schedules", json::serialize(spec));
        std::cout << line_of(reply.as_object()) << "\n";
        return 0;
      }};
}

}  // namespace ferry::cli
