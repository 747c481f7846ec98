// ferry — run many jobs in parallel, on one machine or many.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/connection.hpp"
#include "run/inputs.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ferry: run many jobs in parallel, on one machine or many."};
  app.name("ferry");
  app.set_version_flag("--version", "ferry 0.1.0");
  app.require_subcommand(1);
  namespace cli = ferry::cli;
  std::vector<cli::Subcommand> subcommands = {
      cli::add_run(app),      cli::add_server(app), cli::add_worker(app),  cli::add_submit(app),
      cli::add_map(app),      cli::add_status(app), cli::add_wait(app),    cli::add_cancel(app),
      cli::add_retry(app),    cli::add_logs(app),   cli::add_workers(app), cli::add_queues(app),
      cli::add_check(app),    cli::add_backup(app), cli::add_demo(app),    cli::add_flow(app),
      cli::add_schedule(app), cli::add_queue(app)};
  std::vector<std::string> args(argv + 1, argv + argc);
  // `ferry run` takes GNU parallel's command line as it is (`--` included).
  if (!args.empty() && args[0] == "run") return cli::run_command({args.begin() + 1, args.end()});
  std::vector<std::string> trailing;
  if (auto dashes = std::find(args.begin(), args.end(), "--"); dashes != args.end()) {
    trailing.assign(dashes + 1, args.end());
    args.erase(dashes, args.end());
  }
  if (!args.empty() && args[0][0] != '-' &&
      std::none_of(subcommands.begin(), subcommands.end(),
                   [&](const auto& subcommand) { return subcommand.app->get_name() == args[0]; })) {
    std::cerr << "ferry: unknown command '" << args[0] << "'; see 'ferry --help'\n";
    return 2;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
    for (auto& subcommand : subcommands)
      if (subcommand.app->parsed()) return subcommand.run(trailing);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "ferry 0.1.0\n";
    return 0;
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help of a subcommand
    std::cerr << "ferry: " << error.what() << "\n"
              << "Run 'ferry --help' or 'ferry SUBCOMMAND --help' for usage.\n";
    return 2;
  } catch (const ferry::cli::ApiError& error) {
    std::cerr << "ferry: " << error.what() << "\n";
    return error.exit_status;
  } catch (const ferry::run::UsageError& error) {
    std::cerr << "ferry: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "ferry: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
