// `ferry worker`: runs jobs leased from a ferry server.
#include <cmath>
#include <memory>

#include "cli/commands.hpp"
#include "cli/connection.hpp"
#include "daemon/log.hpp"
#include "worker/worker.hpp"

namespace ferry::cli {

Subcommand add_worker(CLI::App& app) {
  struct Flags {
    Connection connection;
    worker::WorkerConfig config;
    double kill_grace = 5;
    std::string log_format = "text";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("worker", "Run jobs from a ferry server");
  flags->connection.add_options(*command);
  command->add_option("--slots", flags->config.slots, "Jobs at once [default: cores]")
      ->check(CLI::Range(1, 4096));
  command->add_option("--queues", flags->config.queues, "Take jobs only from these queues")
      ->delimiter(',');
  command
      ->add_option("--labels", flags->config.labels,
                   "This worker's labels; jobs that require labels go only to workers having them")
      ->delimiter(',');
  command->add_option("--id", flags->config.id,
                      "Name shown in `ferry workers` [default: HOST-PID]");
  command
      ->add_option("--kill-grace", flags->kill_grace,
                   "Seconds from SIGTERM to SIGKILL for a job timed out, cancelled or taken back "
                   "[default: 5]")
      ->check(CLI::Range(0.0, 3600.0));
  add_log_format_option(*command, flags->log_format);
  return {command, [flags](const std::vector<std::string>&) {
            daemon::set_log_format(*daemon::parse_log_format(flags->log_format));
            flags->config.kill_grace =
                std::chrono::milliseconds(std::llround(flags->kill_grace * 1000));
            flags->config.server = flags->connection.url();
            flags->config.token = flags->connection.token();
            return worker::run_worker(flags->config);
          }};
}

}  // namespace ferry::cli
