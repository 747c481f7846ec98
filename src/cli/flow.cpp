// `ferry flow ...`: submit flow files to a server and follow, cancel and
// retry the flows made; `ferry flow run` runs one here, without a server.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>

#include "cli/commands.hpp"
#include "cli/connection.hpp"
#include "cli/flow_local.hpp"
#include "flowfile/flowfile.hpp"
#include "run/inputs.hpp"

namespace ferry::cli {
namespace {

namespace json = boost::json;

std::string text(const json::value& value) {
  return value.is_string() ? std::string(value.as_string()) : json::serialize(value);
}

// "k=v" pairs of --param.
std::map<std::string, std::string> params_of(const std::vector<std::string>& given) {
  std::map<std::string, std::string> params;
  for (const std::string& pair : given) {
    std::size_t equals = pair.find('=');
    if (equals == std::string::npos || equals == 0)
      throw run::UsageError(fmt::format("--param {}: must be NAME=VALUE", pair));
    params[pair.substr(0, equals)] = pair.substr(equals + 1);
  }
  return params;
}

void add_params(CLI::App& command, std::vector<std::string>& params) {
  command.add_option("--param,-p", params,
                     "NAME=VALUE: a flow parameter (${NAME} in the file), over the file's own");
}

// "12  running     build: succeeded 3, running 1, waiting 2".
std::string flow_line(const json::object& flow) {
  std::string counts;
  for (const auto& [state, count] : flow.at("counts").as_object())
    if (count.to_number<std::uint64_t>() > 0)
      counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", std::string(state),
                            count.to_number<std::uint64_t>());
  return fmt::format("flow {:<6} {:<10} {}  ({})", flow.at("id").as_int64(), text(flow.at("state")),
                     text(flow.at("name")), counts.empty() ? "no jobs kept" : counts);
}

std::string job_line(const json::object& job) {
  std::string label = text(job.at("ref"));
  if (label.empty()) label = text(job.at("name"));
  std::string line = fmt::format("  {:<8} {:<10} attempts {:<3} {}", job.at("id").as_int64(),
                                 text(job.at("state")), job.at("attempts").as_int64(), label);
  std::string reason = text(job.at("reason"));
  return reason.empty() ? line : line + "  (" + reason + ")";
}

std::vector<std::uint64_t> job_ids(const json::object& flow) {
  std::vector<std::uint64_t> ids;
  for (const json::value& job : flow.at("jobs").as_array())
    ids.push_back(job.at("id").to_number<std::uint64_t>());
  return ids;
}

// Waits until every job of the flows ended; prints each job as it ends and
// each flow's final line. 0 when all succeeded, 1 when not, 124 when the
// deadline came first.
int wait_flows(Connection& connection, const std::vector<std::uint64_t>& flows, bool as_json,
               std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::vector<std::uint64_t> ids;
  for (std::uint64_t flow : flows) {
    json::value view = connection.call("GET", fmt::format("/v1/flows/{}", flow));
    for (std::uint64_t id : job_ids(view.as_object())) ids.push_back(id);
  }
  bool ended = connection.follow(
      ids,
      [&](const json::object& event) {
        if (as_json) return;
        std::string line = fmt::format("  {:<8} {:<10} attempts {}", event.at("id").as_int64(),
                                       text(event.at("state")), event.at("attempts").as_int64());
        std::string reason = text(event.at("reason"));
        std::cout << (reason.empty() ? line : line + "  (" + reason + ")") << std::endl;
      },
      deadline);
  if (!ended) {
    std::cerr << "ferry: not every flow ended in time\n";
    return 124;
  }
  bool all = true;
  for (std::uint64_t flow : flows) {
    json::value view = connection.call("GET", fmt::format("/v1/flows/{}", flow));
    all = all && view.at("state").as_string() == "succeeded";
    std::cout << (as_json ? json::serialize(view) : flow_line(view.as_object())) << std::endl;
  }
  return all ? 0 : 1;
}

// The flows of the files, in order; a file that is not a flow is a usage
// error (exit 2), and nothing is submitted or run.
std::vector<flowfile::FlowDocument> load(const std::vector<std::string>& files,
                                         const std::vector<std::string>& params) {
  std::vector<flowfile::FlowDocument> documents;
  try {
    for (const std::string& file : files)
      for (flowfile::FlowDocument& document : flowfile::load_flows(file, params_of(params)))
        documents.push_back(std::move(document));
  } catch (const flowfile::FlowError& error) {
    throw run::UsageError(error.what());
  }
  return documents;
}

std::optional<std::chrono::steady_clock::time_point> deadline_of(double seconds) {
  if (seconds <= 0) return std::nullopt;
  return std::chrono::steady_clock::now() +
         std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

}  // namespace

Subcommand add_flow(CLI::App& app) {
  struct Flags {
    Connection connection;
    std::vector<std::string> files, params;
    std::vector<std::uint64_t> ids;
    std::string key;
    bool wait = false, json = false;
    double timeout = 0;
    int limit = 20;
    int jobs = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* flow = app.add_subcommand(
      "flow", "Flows: jobs that run after others, from a flow file (docs/flows.md)");
  flow->require_subcommand(1);

  CLI::App* submit = flow->add_subcommand(
      "submit", "Submit flow files (a file, a directory or a project zip): prints each flow's id");
  flags->connection.add_options(*submit);
  submit->add_option("files", flags->files, "Flow files")->required();
  add_params(*submit, flags->params);
  submit->add_option("--key", flags->key,
                     "Make the flow at most once: a flow with this key that is kept is given "
                     "instead (with several flows, each gets KEY/NAME)");
  submit->add_flag("--wait", flags->wait, "Then wait until the flows ended (as `ferry flow wait`)");
  submit->add_flag("--json", flags->json, "JSON: the server's answer for each flow");

  CLI::App* status = flow->add_subcommand("status", "Show flows and the state of their jobs");
  flags->connection.add_options(*status);
  status->add_option("ids", flags->ids, "Flow ids")->required()->check(CLI::PositiveNumber);
  status->add_flag("--json", flags->json, "The server's JSON answer, one line per flow");

  CLI::App* wait = flow->add_subcommand(
      "wait", "Wait until flows end; exit 0 when they succeeded, 1 when not, 124 on --timeout");
  flags->connection.add_options(*wait);
  wait->add_option("ids", flags->ids, "Flow ids")->required()->check(CLI::PositiveNumber);
  wait->add_option("--timeout", flags->timeout, "Give up after this many seconds")
      ->check(CLI::PositiveNumber);
  wait->add_flag("--json", flags->json, "JSON: each flow's final view");

  CLI::App* cancel = flow->add_subcommand("cancel", "Cancel every job of flows that has not ended");
  CLI::App* retry = flow->add_subcommand(
      "retry", "Run the failed and cancelled jobs of flows again; what they held back follows");
  for (CLI::App* command : {cancel, retry}) {
    flags->connection.add_options(*command);
    command->add_option("ids", flags->ids, "Flow ids")->required()->check(CLI::PositiveNumber);
  }

  CLI::App* list = flow->add_subcommand("list", "List the newest flows of a server");
  flags->connection.add_options(*list);
  list->add_option("--limit", flags->limit, "At most this many [default: 20]")
      ->check(CLI::Range(1, 1000));
  list->add_flag("--json", flags->json, "The server's JSON answer");

  CLI::App* run = flow->add_subcommand(
      "run", "Run a flow file here, without a server: jobs start as their dependencies allow");
  run->add_option("files", flags->files, "Flow files")->required();
  add_params(*run, flags->params);
  run->add_option("-j,--jobs", flags->jobs, "Jobs at once [default: one per core]")
      ->check(CLI::PositiveNumber);

  return {
      flow,
      [flags, submit, status, wait, cancel, retry, list, run](const std::vector<std::string>&) {
        Connection& connection = flags->connection;
        if (run->parsed()) {
          int worst = 0;
          for (const flowfile::FlowDocument& document : load(flags->files, flags->params))
            if (worst < 128) worst = std::max(worst, run_flow_here(document, flags->jobs));
          return worst;
        }
        if (submit->parsed()) {
          std::vector<flowfile::FlowDocument> documents = load(flags->files, flags->params);
          std::vector<std::uint64_t> made;
          for (const flowfile::FlowDocument& document : documents) {
            json::object batch = json::parse(document.batch_json).as_object();
            json::value& flow_field = batch["flow"];
            if (!flow_field.is_object()) flow_field.emplace_object();
            json::object& about = flow_field.as_object();
            if (!about.contains("name")) about["name"] = document.name;
            if (!flags->key.empty())
              about["key"] = documents.size() == 1 ? flags->key : flags->key + "/" + document.name;
            bool keyed = about.contains("key");
            json::value reply = connection.call("POST", "/v1/jobs", json::serialize(batch), keyed);
            std::uint64_t id = reply.at("flow").to_number<std::uint64_t>();
            made.push_back(id);
            const json::array& ids = reply.at("ids").as_array();
            if (flags->json)
              std::cout << json::serialize(reply) << std::endl;
            else
              std::cout << fmt::format("flow {:<6} {}  ({} jobs: {}-{}{})", id, document.name,
                                       ids.size(), ids.front().as_int64(), ids.back().as_int64(),
                                       reply.at("existing").as_array().empty()
                                           ? ""
                                           : ", made before with this key")
                        << std::endl;
          }
          if (!flags->wait) return 0;
          return wait_flows(connection, made, flags->json, std::nullopt);
        }
        if (wait->parsed())
          return wait_flows(connection, flags->ids, flags->json, deadline_of(flags->timeout));
        if (status->parsed()) {
          for (std::uint64_t id : flags->ids) {
            json::value view = connection.call("GET", fmt::format("/v1/flows/{}", id));
            if (flags->json) {
              std::cout << json::serialize(view) << "\n";
              continue;
            }
            std::cout << flow_line(view.as_object()) << "\n";
            for (const json::value& job : view.at("jobs").as_array())
              std::cout << job_line(job.as_object()) << "\n";
          }
          return 0;
        }
        if (cancel->parsed() || retry->parsed()) {
          bool cancelling = cancel->parsed();
          const char* done = cancelling ? "cancelled" : "retried";
          bool all = true;
          for (std::uint64_t id : flags->ids) {
            json::value reply = connection.call(
                "POST", fmt::format("/v1/flows/{}/{}", id, cancelling ? "cancel" : "retry"));
            std::size_t acted = 0;
            for (const json::value& result : reply.at("results").as_array()) {
              if (result.at(done).as_bool()) {
                ++acted;
              } else {
                all = false;
                std::cout << fmt::format("flow {}: job {}: {}\n", id, result.at("id").as_int64(),
                                         text(result.at("detail")));
              }
            }
            std::cout << fmt::format("flow {}: {} jobs {}\n", id, acted, done);
          }
          return all ? 0 : 1;
        }
        // list
        json::value page = connection.call("GET", fmt::format("/v1/flows?limit={}", flags->limit));
        if (flags->json) {
          std::cout << json::serialize(page) << "\n";
          return 0;
        }
        for (const json::value& view : page.at("flows").as_array())
          std::cout << flow_line(view.as_object()) << "\n";
        return 0;
      }};
}

}  // namespace ferry::cli
