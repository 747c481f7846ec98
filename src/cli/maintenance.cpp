// Maintenance of a server's database: `ferry check`.
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "store/store.hpp"

namespace ferry::cli {

Subcommand add_check(CLI::App& app) {
  auto db = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(
      "check", "Verify a server's database file without changing it (exit 1 when damaged)");
  command->add_option("--db", *db, "The SQLite database file")->required();
  return {command, [db](const std::vector<std::string>&) {
            std::vector<std::string> problems = store::check_sqlite_database(*db);
            for (const std::string& problem : problems) std::cout << *db << ": " << problem << "\n";
            if (!problems.empty()) return 1;
            std::cout << *db << ": ok\n";
            return 0;
          }};
}

}  // namespace ferry::cli
