// Maintenance of a server's database: `ferry check` and `ferry backup`.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/connection.hpp"
#include "run/inputs.hpp"
#include "store/store.hpp"

namespace ferry::cli {

Subcommand add_check(CLI::App& app) {
  auto db = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(
      "check", "Verify a server's database file without changing it (exit 1 when damaged)");
  command->add_option("--db", *db, "The SQLite database file")->required();
  return {command, [db](const std::vector<std::string>&) {
            if (store::is_postgres_url(*db))
              throw run::UsageError(
                  "ferry check verifies SQLite files; check a PostgreSQL database with its own "
                  "tools (pg_amcheck)");
            std::vector<std::string> problems = store::check_sqlite_database(*db);
            for (const std::string& problem : problems) std::cout << *db << ": " << problem << "\n";
            if (!problems.empty()) return 1;
            std::cout << *db << ": ok\n";
            return 0;
          }};
}

Subcommand add_backup(CLI::App& app) {
  struct Flags {
    Connection connection;
    std::string file;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "backup", "Copy a running server's database to FILE: consistent, while jobs go on");
  command->footer(
      "The copy holds every job acknowledged before the backup began. Restore by starting a\n"
      "server on it: ferry server --db FILE (or move it into place while the server is stopped).");
  flags->connection.add_options(*command);
  command->add_option("FILE", flags->file, "Where to write the copy (must not exist)")->required();
  return {
      command, [flags](const std::vector<std::string>&) {
        const std::string& file = flags->file;
        if (std::filesystem::exists(file))
          throw run::UsageError(fmt::format("'{}' exists already; backup never overwrites", file));
        std::string partial = fmt::format("{}.partial-{}", file, ::getpid());
        flags->connection.download("/v1/backup", partial);
        std::vector<std::string> problems = store::check_sqlite_database(partial);
        if (!problems.empty()) {
          std::filesystem::remove(partial);
          throw ApiError(fmt::format("the copy is not sound: {}", problems.front()), 1);
        }
        std::filesystem::rename(partial, file);
        std::cout << fmt::format("{}: {} bytes, checked\n", file, std::filesystem::file_size(file));
        return 0;
      }};
}

}  // namespace ferry::cli
