// The subcommands of `ferry`. Each adds itself to the CLI11 app and returns
// what to run once the command line parsed; that returns the exit status.
// `trailing` holds the words after a `--` (CLI11 would not pass them on to
// a subcommand's remaining words).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace ferry::cli {

struct Subcommand {
  CLI::App* app;
  std::function<int(const std::vector<std::string>& trailing)> run;
};

Subcommand add_run(CLI::App& app);
// `ferry run ARGS...`, which parses its own command line (GNU parallel's).
int run_command(const std::vector<std::string>& args);
Subcommand add_demo(CLI::App& app);
Subcommand add_server(CLI::App& app);
Subcommand add_worker(CLI::App& app);
Subcommand add_submit(CLI::App& app);
Subcommand add_map(CLI::App& app);
Subcommand add_status(CLI::App& app);
Subcommand add_wait(CLI::App& app);
Subcommand add_cancel(CLI::App& app);
Subcommand add_retry(CLI::App& app);
Subcommand add_logs(CLI::App& app);
Subcommand add_workers(CLI::App& app);
Subcommand add_queues(CLI::App& app);
Subcommand add_check(CLI::App& app);
Subcommand add_backup(CLI::App& app);
Subcommand add_flow(CLI::App& app);

// The token from --token, --token-file or FERRY_TOKEN, in that order.
std::string resolve_token(const std::string& token, const std::string& token_file);

}  // namespace ferry::cli
