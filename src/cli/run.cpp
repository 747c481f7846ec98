// `ferry run`: the local parallel runner (see src/run/runner.hpp).
#include <unistd.h>

#include <cmath>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "run/runner.hpp"

namespace ferry::cli {
namespace {

constexpr const char* kRunDescription =
    R"(Run a command once per input, in parallel, on this machine.

  ferry run [OPTIONS] COMMAND [ARGS...] ::: A B C          arguments given inline
  ferry run [OPTIONS] COMMAND [ARGS...] :::: FILE          one argument per line (- is stdin)
  ferry run [OPTIONS] COMMAND [ARGS...] < FILE             one argument per line
  ferry run [OPTIONS] < COMMANDS                           each line is a shell command

Several ::: or :::: groups run every combination (the first varies slowest).
Placeholders in COMMAND: {} the arguments, {1} {2}... one group's argument,
{.} without extension, {/} basename, {//} dirname, {/.} basename without
extension, {#} the job number, {%} the slot. With no argument placeholder the
arguments are appended. Each job also sees FERRY_SEQ and FERRY_SLOT.

Without --shell every word of COMMAND is one argument of the program: inputs
are never split or interpreted by a shell. With --shell, COMMAND is a shell
script run by /bin/sh -c and inputs are quoted into it.

Exit status: 0 when every job succeeded; otherwise the number of jobs that
did not succeed (failed, or never ran), at most 101; 2 for a usage error.
Ctrl-C once: start no new jobs, let running ones finish; twice: kill them.)";

std::chrono::milliseconds to_milliseconds(double seconds) {
  return std::chrono::milliseconds(std::llround(seconds * 1000));
}

}  // namespace

Subcommand add_run(CLI::App& app) {
  struct Flags {
    std::string jobs;
    double retry_delay = 0;
    double timeout = 0;
    double kill_grace = 2;
    std::string halt = "never";
    run::RunOptions options;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("run", "Run a command for many inputs in parallel, here");
  command->footer(kRunDescription);
  command->prefix_command();  // everything from the first non-option word on is the job's
  command->add_option("-j,--jobs", flags->jobs,
                      "Jobs at once: N, 0 (one per input), N% or +N/-N of the cores "
                      "[default: cores]");
  command->add_flag("--shell", flags->options.shell, "Run COMMAND through /bin/sh -c");
  command
      ->add_option("--retries", flags->options.retries, "Run a failed job again up to N more times")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--retry-delay", flags->retry_delay,
                   "Seconds before the first retry; doubles for each further one [default: 0]")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--timeout", flags->timeout,
                   "Seconds an attempt may run before its process group is terminated")
      ->check(CLI::PositiveNumber);
  command
      ->add_option("--kill-grace", flags->kill_grace,
                   "Seconds between SIGTERM and SIGKILL when stopping a job [default: 2]")
      ->check(CLI::NonNegativeNumber);
  command->add_flag("-k,--keep-order", flags->options.keep_order,
                    "Print outputs in input order (default: as jobs finish)");
  command->add_option("--joblog", flags->options.joblog,
                      "Append one row per attempt to FILE (GNU parallel's format)");
  command->add_flag("--resume", flags->options.resume,
                    "Skip jobs that succeeded according to --joblog");
  command->add_option("--halt", flags->halt,
                      "Stop early: soon,fail=N (let running jobs finish) or now,fail=N (kill "
                      "them); N may be a percent like 10%");
  command->add_flag("--bar,--progress", flags->options.bar,
                    "Show a progress bar with ETA on stderr (when it is a terminal)");
  command->add_flag("--dry-run", flags->options.dry_run, "Print the commands, run nothing");

  return {command, [flags, command](const std::vector<std::string>& trailing) {
            run::RunOptions& options = flags->options;
            long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
            options.jobs = flags->jobs.empty()
                               ? static_cast<int>(cores)
                               : run::parse_jobs(flags->jobs, static_cast<int>(cores));
            options.retry_delay = to_milliseconds(flags->retry_delay);
            options.timeout = to_milliseconds(flags->timeout);
            options.kill_grace = to_milliseconds(flags->kill_grace);
            options.halt = run::parse_halt(flags->halt);
            // prefix_command() passes an unknown option on as if it began the
            // command; `--` is the way to run a program whose name starts with '-'.
            std::vector<std::string> words = command->remaining();
            if (!words.empty() && words[0].size() > 1 && words[0][0] == '-' && words[0] != "-")
              throw run::UsageError("unknown option '" + words[0] + "' (see ferry run --help)");
            words.insert(words.end(), trailing.begin(), trailing.end());
            options.command_line = run::split_command_line(words);
            if (options.command_line.sources.empty() && ::isatty(STDIN_FILENO))
              throw run::UsageError(
                  "no inputs: give them after ::: or :::: FILE, or pipe them to stdin");
            return run::run(options, std::cin);
          }};
}

}  // namespace ferry::cli
