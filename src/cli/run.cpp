// `ferry run`: the local parallel runner (see src/run/runner.hpp). It parses
// its own command line (src/run/options.hpp): GNU parallel's options and
// spellings, which a general parser cannot take as they are.
#include <unistd.h>

#include <iostream>

#include "cli/commands.hpp"
#include "run/runner.hpp"

namespace ferry::cli {

Subcommand add_run(CLI::App& app) {
  // Listed in `ferry --help`; main() hands `ferry run ...` to run_command().
  CLI::App* command = app.add_subcommand(
      "run", "Run a command for many inputs in parallel, here (GNU parallel's options)");
  command->prefix_command();
  return {command, [](const std::vector<std::string>& trailing) { return run_command(trailing); }};
}

int run_command(const std::vector<std::string>& args) {
  try {
    long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    run::RunOptions options = run::parse_run_options(args, static_cast<int>(cores));
    if (options.help) {
      std::cout << run::run_help();
      return 0;
    }
    if (options.command_line.sources.empty() && ::isatty(STDIN_FILENO))
      throw run::UsageError("no inputs: give them after ::: or :::: FILE, or pipe them to stdin");
    return run::run(options, STDIN_FILENO);
  } catch (const run::UsageError& error) {
    std::cerr << "ferry: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "ferry: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace ferry::cli
