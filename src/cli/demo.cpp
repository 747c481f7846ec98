// `ferry demo`: `ferry run` on a built-in workload, to see it work in seconds.
#include <fmt/format.h>

#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "run/runner.hpp"

namespace ferry::cli {

Subcommand add_demo(CLI::App& app) {
  auto jobs = std::make_shared<int>(8);
  auto count = std::make_shared<int>(120);
  CLI::App* command = app.add_subcommand(
      "demo",
      "Run a built-in workload through `ferry run`: short jobs, some fail once and are "
      "retried, with a progress bar and a joblog");
  command->add_option("-j,--jobs", *jobs, "Jobs at once")->check(CLI::PositiveNumber);
  command->add_option("-n,--count", *count, "How many jobs")->check(CLI::Range(1, 100000));
  return {command, [jobs, count](const std::vector<std::string>&) {
            // Marker directories remember which jobs already failed once.
            std::filesystem::path scratch = std::filesystem::temp_directory_path() /
                                            ("ferry-demo-" + std::to_string(::getpid()));
            std::filesystem::create_directories(scratch);
            std::string joblog = scratch.string() + ".joblog";
            // Each job sleeps 50-350 ms; every 9th fails its first attempt.
            std::string script = fmt::format(
                "sleep 0.$(( {{}} % 7 * 5 + 5 )); "
                "if [ $(( {{}} % 9 )) -eq 0 ] && mkdir {}/{{}} 2>/dev/null; then "
                "echo \"job {{}}: failing once\" >&2; exit 1; fi; echo \"job {{}} done\"",
                scratch.string());
            run::RunOptions options;
            options.command_line.command = {script};
            run::InputSource numbers;
            for (int i = 1; i <= *count; ++i) numbers.values.push_back(std::to_string(i));
            options.command_line.sources = {numbers};
            options.shell = true;
            options.jobs = *jobs;
            options.attempts = 2;  // the first, and one retry
            options.bar = true;
            options.joblog = joblog;
            std::cerr << fmt::format(
                "ferry demo: {} jobs, {} at once, each failing job retried once.\n"
                "Same as: ferry run -j {} --retries 2 --bar --joblog {} --shell '<script>' ::: "
                "$(seq {})\n\n",
                *count, *jobs, *jobs, joblog, *count);
            int status = run::run(options, -1);  // inputs given: stdin is not read
            std::filesystem::remove_all(scratch);
            std::cerr << fmt::format("\nferry demo: exit status {}; the joblog is {}\n", status,
                                     joblog);
            return status;
          }};
}

}  // namespace ferry::cli
