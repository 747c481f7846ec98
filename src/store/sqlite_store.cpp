// The durable store: SQLite in WAL mode, synchronous=FULL, one writer thread.
// Schema and migrations: docs/store.md.
#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "store/group_commit.hpp"

namespace ferry::store {
namespace {

// Each entry takes the schema from version i to i + 1. Append, never edit:
// databases in the field were made by the ones before.
const char* const kMigrations[] = {
    // 1: jobs and their attempts.
    R"sql(
      CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        queue       TEXT    NOT NULL,
        priority    INTEGER NOT NULL,
        spec        TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        created_ms  INTEGER NOT NULL,
        ready_at_ms INTEGER NOT NULL,
        reason      TEXT    NOT NULL DEFAULT '',
        retry_base  INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE attempts (
        job_id      INTEGER NOT NULL REFERENCES jobs (id),
        number      INTEGER NOT NULL,
        lease       INTEGER NOT NULL,
        worker      TEXT    NOT NULL,
        started_ms  INTEGER NOT NULL,
        ended_ms    INTEGER NOT NULL,
        end         TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        exit_code   INTEGER,
        signal      INTEGER,
        stdout_tail TEXT    NOT NULL,
        stderr_tail TEXT    NOT NULL,
        result      TEXT    NOT NULL,
        cpu_us      INTEGER NOT NULL,
        max_rss_kb  INTEGER NOT NULL,
        PRIMARY KEY (job_id, number)
      );
      CREATE TABLE server (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
    )sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// A connection, closed with its object.
class Database {
 public:
  Database(const std::string& path, int flags) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error(fmt::format("cannot open database '{}': {}", path, message));
    }
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~Database() { sqlite3_close(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* get() const { return db_; }

  void execute(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      throw std::runtime_error(message);
    }
  }

  std::int64_t single_integer(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    std::int64_t value = 0;
    int rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

// A prepared statement, reset for reuse after each step.
class Statement {
 public:
  Statement(Database& db, const char* sql) : db_(db.get()) {
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement_, nullptr) !=
        SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t value) {
    sqlite3_bind_int64(statement_, index, value);
    return *this;
  }
  Statement& bind(int index, const std::string& value) {
    // Not copied: run() is done with it before the caller's string can go.
    sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()),
                      SQLITE_STATIC);
    return *this;
  }
  Statement& bind(int index, const std::optional<int>& value) {
    if (value)
      sqlite3_bind_int64(statement_, index, *value);
    else
      sqlite3_bind_null(statement_, index);
    return *this;
  }

  // Runs it; throws with SQLite's message on failure. Returns rows changed.
  int run() {
    int rc = sqlite3_step(statement_);
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
    if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
    return sqlite3_changes(db_);
  }

  // True with a row to read, false at the end; throws for anything else
  // (a damaged page must never pass for the end of the rows).
  bool next_row() {
    int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(sqlite3_errmsg(db_));
  }
  std::int64_t integer(int column) { return sqlite3_column_int64(statement_, column); }
  std::optional<int> optional_integer(int column) {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int(statement_, column);
  }
  std::string text(int column) {
    auto* bytes = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
    return bytes ? std::string(bytes,
                               static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)))
                 : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* statement_ = nullptr;
};

// Holds an exclusive lock on the database file for the store's life, so a
// second server on the same file is refused instead of running every job
// twice. flock() locks are separate from the fcntl() locks SQLite takes on
// the same file, and go with the process: a killed server leaves none.
class ExclusiveUse {
 public:
  explicit ExclusiveUse(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw std::runtime_error(
          fmt::format("cannot open database '{}': {}", path, std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      int error = errno;
      ::close(fd_);
      throw std::runtime_error(
          error == EWOULDBLOCK
              ? fmt::format("database '{}' is in use by another ferry server", path)
              : fmt::format("cannot lock database '{}': {}", path, std::strerror(error)));
    }
  }
  ~ExclusiveUse() { ::close(fd_); }
  ExclusiveUse(const ExclusiveUse&) = delete;
  ExclusiveUse& operator=(const ExclusiveUse&) = delete;

 private:
  int fd_ = -1;
};

// What a damaged database's error says, and what to do about it.
std::string damaged(const std::string& path, const std::string& what) {
  return fmt::format(
      "database '{}' is damaged ({}): see `ferry check --db {}`, and restore it from a backup",
      path, what, path);
}

void migrate(Database& db, const std::string& path) {
  auto version = static_cast<int>(db.single_integer("PRAGMA user_version"));
  if (version > kSchemaVersion)
    throw std::runtime_error(fmt::format(
        "database '{}' has schema version {}, newer than this ferry's {}: use a newer ferry", path,
        version, kSchemaVersion));
  if (version == 0 && db.single_integer("SELECT count(*) FROM sqlite_schema") > 0)
    throw std::runtime_error(fmt::format("'{}' is a database, but not ferry's", path));
  for (; version < kSchemaVersion; ++version) {
    db.execute("BEGIN IMMEDIATE");
    try {
      db.execute(kMigrations[version]);
      db.execute(fmt::format("PRAGMA user_version = {}", version + 1));
      db.execute("COMMIT");
    } catch (const std::exception& error) {
      db.execute("ROLLBACK");
      throw std::runtime_error(fmt::format("cannot migrate database '{}' to schema version {}: {}",
                                           path, version + 1, error.what()));
    }
  }
}

class SqliteStore final : public GroupCommitStore {
 public:
  explicit SqliteStore(const std::string& path)
      : path_(path),
        exclusive_(path),
        db_(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX) {
    try {
      db_.execute("PRAGMA journal_mode = WAL");
    } catch (const std::exception& error) {
      throw std::runtime_error(
          fmt::format("'{}' is not a usable database: {}", path, error.what()));
    }
    db_.execute("PRAGMA synchronous = FULL");  // a commit survives power loss, not only a crash
    db_.execute("PRAGMA foreign_keys = ON");   // an attempt of an unknown job is refused
    migrate(db_, path);
    insert_job_.emplace(
        db_,
        "INSERT INTO jobs (id, queue, priority, spec, state, created_ms, "
        "ready_at_ms, reason, retry_base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    change_state_.emplace(db_,
                          "UPDATE jobs SET state = ?2, ready_at_ms = ?3, reason = ?4, "
                          "retry_base = ?5 WHERE id = ?1");
    put_attempt_.emplace(
        db_,
        "INSERT INTO attempts (job_id, number, worker, started_ms, ended_ms, end, reason, "
        "exit_code, signal, stdout_tail, stderr_tail, result, cpu_us, max_rss_kb, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
        "ON CONFLICT (job_id, number) DO UPDATE SET worker = ?3, started_ms = ?4, ended_ms = ?5, "
        "end = ?6, reason = ?7, exit_code = ?8, signal = ?9, stdout_tail = ?10, "
        "stderr_tail = ?11, result = ?12, cpu_us = ?13, max_rss_kb = ?14, lease = ?15");
    set_epoch_.emplace(db_, "INSERT OR REPLACE INTO server (name, value) VALUES ('epoch', ?1)");
    for (auto [statement, sql] :
         {std::pair{&begin_, "BEGIN IMMEDIATE"}, std::pair{&commit_, "COMMIT"},
          std::pair{&savepoint_, "SAVEPOINT batch"}, std::pair{&release_, "RELEASE batch"},
          std::pair{&undo_, "ROLLBACK TO batch"}})
      statement->emplace(db_, sql);
    start();
  }

  ~SqliteStore() override { stop(); }

  Snapshot load() override {
    flush();
    try {
      return read_everything();
    } catch (const std::runtime_error& error) {
      throw std::runtime_error(damaged(path_, error.what()));
    }
  }

 private:
  Snapshot read_everything() {
    // A connection of its own: WAL lets it read while the writer writes.
    Database reader(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    Snapshot snapshot;
    Statement jobs(
        reader,
        "SELECT id, queue, priority, spec, state, created_ms, ready_at_ms, reason, retry_base "
        "FROM jobs ORDER BY id");
    while (jobs.next_row())
      snapshot.jobs.push_back({static_cast<std::uint64_t>(jobs.integer(0)), jobs.text(1),
                               static_cast<int>(jobs.integer(2)), jobs.text(3), jobs.text(4),
                               jobs.integer(5), jobs.integer(6), jobs.text(7), jobs.integer(8)});
    Statement attempts(reader,
                       "SELECT job_id, number, worker, started_ms, ended_ms, end, reason, "
                       "exit_code, signal, stdout_tail, stderr_tail, result, cpu_us, max_rss_kb, "
                       "lease FROM attempts ORDER BY job_id, number");
    while (attempts.next_row()) {
      AttemptRow row;
      row.job_id = static_cast<std::uint64_t>(attempts.integer(0));
      row.number = static_cast<int>(attempts.integer(1));
      row.worker = attempts.text(2);
      row.started_ms = attempts.integer(3);
      row.ended_ms = attempts.integer(4);
      row.end = attempts.text(5);
      row.reason = attempts.text(6);
      row.exit_code = attempts.optional_integer(7);
      row.signal = attempts.optional_integer(8);
      row.stdout_tail = attempts.text(9);
      row.stderr_tail = attempts.text(10);
      row.result = attempts.text(11);
      row.cpu_us = attempts.integer(12);
      row.max_rss_kb = attempts.integer(13);
      row.lease = static_cast<std::uint64_t>(attempts.integer(14));
      snapshot.attempts.push_back(std::move(row));
    }
    Statement epoch(reader, "SELECT value FROM server WHERE name = 'epoch'");
    if (epoch.next_row()) snapshot.epoch = static_cast<std::uint64_t>(epoch.integer(0));
    return snapshot;
  }

 protected:
  std::vector<std::string> commit(const std::vector<const Batch*>& batches) override {
    std::vector<std::string> errors(batches.size());
    try {
      begin_->run();
    } catch (const std::exception& error) {
      errors.assign(batches.size(), fmt::format("cannot write the database: {}", error.what()));
      return errors;
    }
    // Each batch under a savepoint: a bad one is undone alone, the others commit.
    for (std::size_t i = 0; i < batches.size(); ++i) {
      savepoint_->run();
      try {
        apply(*batches[i]);
        release_->run();
      } catch (const std::exception& error) {
        errors[i] = error.what();
        undo_->run();
        release_->run();
      }
    }
    try {
      commit_->run();
    } catch (const std::exception& error) {
      try {
        db_.execute("ROLLBACK");
      } catch (const std::exception&) {
      }
      for (std::string& message : errors)
        if (message.empty())
          message = fmt::format("cannot commit to the database: {}", error.what());
    }
    return errors;
  }

 private:
  void apply(const Batch& batch) {
    for (const JobRow& job : batch.new_jobs)
      insert_job_->bind(1, static_cast<std::int64_t>(job.id))
          .bind(2, job.queue)
          .bind(3, job.priority)
          .bind(4, job.spec)
          .bind(5, job.state)
          .bind(6, job.created_ms)
          .bind(7, job.ready_at_ms)
          .bind(8, job.reason)
          .bind(9, job.retry_base)
          .run();
    for (const StateChange& change : batch.state_changes) {
      int changed = change_state_->bind(1, static_cast<std::int64_t>(change.job_id))
                        .bind(2, change.state)
                        .bind(3, change.ready_at_ms)
                        .bind(4, change.reason)
                        .bind(5, change.retry_base)
                        .run();
      if (changed == 0) throw std::runtime_error(fmt::format("no job {}", change.job_id));
    }
    for (const AttemptRow& attempt : batch.attempts)
      put_attempt_->bind(1, static_cast<std::int64_t>(attempt.job_id))
          .bind(2, attempt.number)
          .bind(3, attempt.worker)
          .bind(4, attempt.started_ms)
          .bind(5, attempt.ended_ms)
          .bind(6, attempt.end)
          .bind(7, attempt.reason)
          .bind(8, attempt.exit_code)
          .bind(9, attempt.signal)
          .bind(10, attempt.stdout_tail)
          .bind(11, attempt.stderr_tail)
          .bind(12, attempt.result)
          .bind(13, attempt.cpu_us)
          .bind(14, attempt.max_rss_kb)
          .bind(15, static_cast<std::int64_t>(attempt.lease))
          .run();
    if (batch.epoch) set_epoch_->bind(1, static_cast<std::int64_t>(*batch.epoch)).run();
  }

  std::string path_;
  ExclusiveUse exclusive_;
  Database db_;  // used by the writer thread only, after construction
  std::optional<Statement> insert_job_, change_state_, put_attempt_, set_epoch_;
  // Prepared once: a transaction holds a savepoint per batch, often hundreds.
  std::optional<Statement> begin_, commit_, savepoint_, release_, undo_;
};

}  // namespace

int schema_version() { return kSchemaVersion; }

std::vector<std::string> check_sqlite_database(const std::string& path) {
  std::vector<std::string> problems;
  try {
    Database db(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    auto version = db.single_integer("PRAGMA user_version");
    if (version == 0) return {fmt::format("'{}' is not a ferry database", path)};
    if (version > kSchemaVersion)
      return {
          fmt::format("schema version {} is newer than this ferry's {}", version, kSchemaVersion)};
    Statement check(db, "PRAGMA integrity_check(100)");
    while (check.next_row())
      if (std::string line = check.text(0); line != "ok") problems.push_back(line);
  } catch (const std::runtime_error& error) {
    problems.push_back(error.what());
  }
  return problems;
}

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path);
}

}  // namespace ferry::store
