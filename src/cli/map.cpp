// `ferry map`: `ferry run`'s inputs and placeholders, submitted to a server.
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
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
constexpr std::size_t kBatch = 1000;

}  // namespace

Subcommand add_map(CLI::App& app) {
  struct Flags {
    Connection connection;
    JobFlags job;
    bool shell = false, wait = false, bar = false;
    std::string key_prefix;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "map", "Submit a command once per input to a server (ferry run's inputs and placeholders)");
  command->footer(
      "Usage: ferry map [OPTIONS] COMMAND [ARGS...] ::: A B C   (or :::: FILE, or stdin)\n"
      "Prints one job id per input, in input order. With --wait it waits for all of them\n"
      "and exits like ferry run: 0 when all succeeded, else the number that did not (at most "
      "101).");
  flags->connection.add_options(*command);
  command->add_flag("--shell", flags->shell, "Run COMMAND through /bin/sh -c");
  flags->job.add_options(*command);
  command->add_option("--key-prefix", flags->key_prefix,
                      "Key each job PREFIX + its input number: run again, the same map makes "
                      "nothing twice (the jobs the first run made are given back)");
  command->add_flag("--wait", flags->wait, "Wait until all ended; print no ids");
  command->add_flag("--bar,--progress", flags->bar, "With --wait: progress and ETA on stderr");
  command->prefix_command();
  return {command, [flags, command](const std::vector<std::string>& trailing) {
            std::vector<std::string> words = command->remaining();
            words.insert(words.end(), trailing.begin(), trailing.end());
            run::CommandLine line = run::split_command_line(words);
            if (line.sources.empty() && ::isatty(STDIN_FILENO))
              throw run::UsageError(
                  "no inputs: give them after ::: or :::: FILE, or pipe them to stdin");
            run::InputRows rows(line.sources, {}, STDIN_FILENO);
            run::CommandTemplate command_template(line.command, flags->shell);
            // Bad replacement strings are reported before anything is submitted.
            command_template.render(std::vector<std::string>(rows.group_count()), 1, 0);

            std::vector<std::uint64_t> ids;
            json::array batch;
            auto flush = [&] {
              if (batch.empty()) return;
              bool keyed = !flags->key_prefix.empty();
              json::value reply = flags->connection.call(
                  "POST", "/v1/jobs", json::serialize(json::object{{"jobs", std::move(batch)}}),
                  keyed);
              for (const json::value& id : reply.at("ids").as_array()) {
                ids.push_back(id.to_number<std::uint64_t>());
                if (!flags->wait) std::cout << ids.back() << "\n";
              }
              batch = json::array();
            };
            // Inputs are read as they come and submitted a batch at a time.
            std::uint64_t seq = 0;
            for (run::Row row;;) {
              auto status = rows.next(row);
              if (status == run::InputRows::Status::end) break;
              if (status == run::InputRows::Status::need_input) {
                rows.fill();
                continue;
              }
              auto rendered = command_template.render(row.args, ++seq, 0);
              json::object job = flags->job.job(
                  json::object{{"argv", json::array(rendered.argv.begin(), rendered.argv.end())}});
              if (!flags->key_prefix.empty()) job["key"] = flags->key_prefix + std::to_string(seq);
              batch.push_back(std::move(job));
              if (batch.size() == kBatch) flush();
            }
            flush();
            if (!flags->wait) return 0;
            std::size_t unsuccessful = *wait_for(flags->connection, ids, flags->bar, std::nullopt);
            if (unsuccessful)
              std::cerr << fmt::format("ferry: {} of {} jobs did not succeed\n", unsuccessful,
                                       ids.size());
            return static_cast<int>(std::min<std::size_t>(unsuccessful, 101));
          }};
}

}  // namespace ferry::cli
