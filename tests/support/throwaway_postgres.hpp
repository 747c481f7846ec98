// A throwaway PostgreSQL server for tests: a cluster made by initdb in a
// temporary directory, started on a free port of 127.0.0.1 (and a Unix
// socket in that directory), stopped and removed with this object. Run as
// root, the server runs as `nobody`: initdb refuses root.
//
// initdb takes a second or two, so its result is kept once per machine and
// user as a template (in the temporary directory) and copied for each
// server. Tests that need PostgreSQL and find no installation skip, saying
// so; scripts/setup.sh installs it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace ferry::testing {

class ThrowawayPostgres {
 public:
  struct Options {
    bool fsync = false;  // on: commits reach the disk (benchmarks); off: tests run faster
    std::vector<std::string> listen = {"127.0.0.1"};
  };
  explicit ThrowawayPostgres(Options options);
  ThrowawayPostgres() : ThrowawayPostgres(Options{}) {}
  ~ThrowawayPostgres();
  ThrowawayPostgres(const ThrowawayPostgres&) = delete;
  ThrowawayPostgres& operator=(const ThrowawayPostgres&) = delete;

  // Why PostgreSQL cannot run here (not installed), or nothing.
  static std::optional<std::string> unavailable();

  // Makes a new empty database; returns its URL (postgresql://...).
  std::string create_database(const std::string& name);
  // The URL of database `name` on `host` (one of Options::listen).
  std::string url(const std::string& name, const std::string& host = "127.0.0.1") const;
  int port() const { return port_; }
  const std::string& directory() const { return directory_; }
  // The server's log so far.
  std::string log() const;

 private:
  void start(const Options& options);
  void stop();
  std::string directory_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// One server for every test of this process, started on first use.
ThrowawayPostgres& shared_postgres();

// Runs `sql` on the database at `url` and returns the first column of its
// rows (text). Throws std::runtime_error with PostgreSQL's message.
std::vector<std::string> query(const std::string& url, const std::string& sql);

}  // namespace ferry::testing
