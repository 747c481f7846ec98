// The durable store: SQLite in WAL mode, synchronous=FULL, one writer thread.
// Schema and migrations: docs/store.md.
#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
    // 2: ended jobs leave the server's memory and are removed by retention;
    // keys make submits idempotent. A job has ended exactly when ended_ms > 0:
    // the indexes of ended jobs say so in that form, which SQLite keeps up to
    // date at a fraction of the cost of `state IN (...)`.
    R"sql(
      ALTER TABLE jobs ADD COLUMN key TEXT;
      ALTER TABLE jobs ADD COLUMN ended_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN keep_ms INTEGER;
      ALTER TABLE jobs ADD COLUMN flow_id INTEGER;
      ALTER TABLE jobs ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE dependencies (
        job_id   INTEGER NOT NULL REFERENCES jobs (id),
        after_id INTEGER NOT NULL,
        PRIMARY KEY (job_id, after_id)
      ) WITHOUT ROWID;
      CREATE INDEX dependencies_by_after ON dependencies (after_id);
      CREATE TABLE flows (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL,
        key        TEXT,
        created_ms INTEGER NOT NULL,
        first_job  INTEGER NOT NULL,
        jobs       INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX flows_by_key ON flows (key) WHERE key IS NOT NULL;
      UPDATE jobs SET ended_ms = coalesce(
          (SELECT max(ended_ms) FROM attempts WHERE job_id = jobs.id), created_ms)
        WHERE state IN ('succeeded', 'failed', 'cancelled');
      CREATE UNIQUE INDEX jobs_by_key ON jobs (key) WHERE key IS NOT NULL;
      CREATE INDEX jobs_ended ON jobs (state, id) WHERE ended_ms > 0;
      CREATE INDEX jobs_ended_at ON jobs (ended_ms) WHERE ended_ms > 0;
      CREATE INDEX jobs_kept_until ON jobs (ended_ms + keep_ms) WHERE keep_ms > 0 AND ended_ms > 0;
    )sql",
    // 3: schedules, which the server fires.
    R"sql(
      CREATE TABLE schedules (
        name       TEXT    PRIMARY KEY,
        spec       TEXT    NOT NULL,
        paused     INTEGER NOT NULL,
        next_ms    INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
    )sql",
    // 4: queue settings (pause, limits), which the server applies.
    R"sql(
      CREATE TABLE queues (
        name     TEXT PRIMARY KEY,
        settings TEXT NOT NULL
      ) WITHOUT ROWID;
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
  Statement& bind(int index, const std::optional<std::int64_t>& value) {
    if (value)
      sqlite3_bind_int64(statement_, index, *value);
    else
      sqlite3_bind_null(statement_, index);
    return *this;
  }
  // Empty text as NULL (a key that is not there).
  Statement& bind_or_null(int index, const std::string& value) {
    if (value.empty()) {
      sqlite3_bind_null(statement_, index);
      return *this;
    }
    return bind(index, value);
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
  std::optional<std::int64_t> optional_int64(int column) {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(statement_, column);
  }
  // For statements read row by row: ready for the next use.
  void reset() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
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

constexpr const char* kJobColumns =
    "id, queue, priority, spec, state, created_ms, ready_at_ms, reason, retry_base, "
    "coalesce(key, ''), ended_ms, keep_ms, coalesce(flow_id, 0), skipped";
constexpr int kJobColumnCount = 14;
JobRow job_row(Statement& row, int first = 0) {
  return {static_cast<std::uint64_t>(row.integer(first + 0)),
          row.text(first + 1),
          static_cast<int>(row.integer(first + 2)),
          row.text(first + 3),
          row.text(first + 4),
          row.integer(first + 5),
          row.integer(first + 6),
          row.text(first + 7),
          row.integer(first + 8),
          row.text(first + 9),
          row.integer(first + 10),
          row.optional_int64(first + 11),
          static_cast<std::uint64_t>(row.integer(first + 12)),
          row.integer(first + 13) != 0,
          {}};
}

constexpr const char* kFlowColumns = "id, name, coalesce(key, ''), created_ms, first_job, jobs";
FlowRow flow_row(Statement& row) {
  return {static_cast<std::uint64_t>(row.integer(0)),
          row.text(1),
          row.text(2),
          row.integer(3),
          static_cast<std::uint64_t>(row.integer(4)),
          static_cast<std::uint64_t>(row.integer(5))};
}

constexpr const char* kAttemptColumns =
    "job_id, number, worker, started_ms, ended_ms, end, reason, exit_code, signal, "
    "stdout_tail, stderr_tail, result, cpu_us, max_rss_kb, lease";
AttemptRow attempt_row(Statement& row) {
  AttemptRow attempt;
  attempt.job_id = static_cast<std::uint64_t>(row.integer(0));
  attempt.number = static_cast<int>(row.integer(1));
  attempt.worker = row.text(2);
  attempt.started_ms = row.integer(3);
  attempt.ended_ms = row.integer(4);
  attempt.end = row.text(5);
  attempt.reason = row.text(6);
  attempt.exit_code = row.optional_integer(7);
  attempt.signal = row.optional_integer(8);
  attempt.stdout_tail = row.text(9);
  attempt.stderr_tail = row.text(10);
  attempt.result = row.text(11);
  attempt.cpu_us = row.integer(12);
  attempt.max_rss_kb = row.integer(13);
  attempt.lease = static_cast<std::uint64_t>(row.integer(14));
  return attempt;
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
    // After a checkpoint, the journal shrinks back: it never holds more than
    // a burst's worth of pages for long.
    db_.execute("PRAGMA journal_size_limit = 67108864");
    migrate(db_, path);
    insert_job_.emplace(db_,
                        "INSERT INTO jobs (id, queue, priority, spec, state, created_ms, "
                        "ready_at_ms, reason, retry_base, key, ended_ms, keep_ms, flow_id, "
                        "skipped) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                        "?13, ?14)");
    insert_dependency_.emplace(db_, "INSERT INTO dependencies (job_id, after_id) VALUES (?1, ?2)");
    insert_flow_.emplace(db_,
                         "INSERT INTO flows (id, name, key, created_ms, first_job, jobs) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    put_schedule_.emplace(db_,
                          "INSERT OR REPLACE INTO schedules (name, spec, paused, next_ms, "
                          "created_ms) VALUES (?1, ?2, ?3, ?4, ?5)");
    remove_schedule_.emplace(db_, "DELETE FROM schedules WHERE name = ?1");
    put_queue_.emplace(db_, "INSERT OR REPLACE INTO queues (name, settings) VALUES (?1, ?2)");
    change_state_.emplace(db_,
                          "UPDATE jobs SET state = ?2, ready_at_ms = ?3, reason = ?4, "
                          "retry_base = ?5, ended_ms = ?6, skipped = ?7 WHERE id = ?1");
    put_attempt_.emplace(
        db_,
        "INSERT INTO attempts (job_id, number, worker, started_ms, ended_ms, end, reason, "
        "exit_code, signal, stdout_tail, stderr_tail, result, cpu_us, max_rss_kb, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
        "ON CONFLICT (job_id, number) DO UPDATE SET worker = ?3, started_ms = ?4, ended_ms = ?5, "
        "end = ?6, reason = ?7, exit_code = ?8, signal = ?9, stdout_tail = ?10, "
        "stderr_tail = ?11, result = ?12, cpu_us = ?13, max_rss_kb = ?14, lease = ?15");
    set_epoch_.emplace(db_, "INSERT OR REPLACE INTO server (name, value) VALUES ('epoch', ?1)");
    expired_by_default_.emplace(
        db_,
        "SELECT id, queue, state, coalesce(flow_id, 0) FROM jobs WHERE ended_ms > 0 "
        "AND keep_ms IS NULL AND ended_ms <= ?1 ORDER BY ended_ms LIMIT ?2");
    expired_by_own_keep_.emplace(
        db_,
        "SELECT id, queue, state, coalesce(flow_id, 0) FROM jobs WHERE keep_ms > 0 "
        "AND ended_ms > 0 AND ended_ms + keep_ms <= ?1 ORDER BY ended_ms + keep_ms LIMIT ?2");
    remove_attempts_.emplace(db_, "DELETE FROM attempts WHERE job_id = ?1");
    remove_dependencies_.emplace(db_, "DELETE FROM dependencies WHERE job_id = ?1");
    // A flow goes with the last of its jobs.
    remove_flow_.emplace(db_,
                         "DELETE FROM flows WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM jobs "
                         "WHERE jobs.id BETWEEN flows.first_job AND flows.first_job + "
                         "flows.jobs - 1)");
    remove_job_.emplace(db_, "DELETE FROM jobs WHERE id = ?1");
    removed_up_to_.emplace(db_,
                           "INSERT INTO server (name, value) VALUES ('removed_up_to', ?1) "
                           "ON CONFLICT (name) DO UPDATE SET value = max(value, ?1)");
    flows_removed_up_to_.emplace(
        db_,
        "INSERT INTO server (name, value) VALUES ('flows_removed_up_to', ?1) "
        "ON CONFLICT (name) DO UPDATE SET value = max(value, ?1)");
    for (auto [statement, sql] :
         {std::pair{&begin_, "BEGIN IMMEDIATE"}, std::pair{&commit_, "COMMIT"},
          std::pair{&savepoint_, "SAVEPOINT batch"}, std::pair{&release_, "RELEASE batch"},
          std::pair{&undo_, "ROLLBACK TO batch"}})
      statement->emplace(db_, sql);
    start();
  }

  ~SqliteStore() override {
    stop();
    reader_.reset();  // statements before their connection
  }

  Snapshot load() override {
    flush();
    try {
      return read_snapshot();
    } catch (const std::runtime_error& error) {
      throw std::runtime_error(damaged(path_, error.what()));
    }
  }

  std::optional<StoredJob> read_job(std::uint64_t id) override {
    Reader& reader = this->reader();
    Statement& job = reader.job;
    job.bind(1, static_cast<std::int64_t>(id));
    std::optional<StoredJob> found;
    if (job.next_row()) found = StoredJob{job_row(job), {}};
    job.reset();
    if (!found) return std::nullopt;
    Statement& attempts = reader.attempts;
    attempts.bind(1, static_cast<std::int64_t>(id));
    while (attempts.next_row()) found->attempts.push_back(attempt_row(attempts));
    attempts.reset();
    return found;
  }

  std::vector<StoredJob> read_jobs(std::uint64_t first, std::uint64_t last) override {
    Reader& reader = this->reader();
    std::vector<StoredJob> found;
    reader.jobs.bind(1, static_cast<std::int64_t>(first)).bind(2, static_cast<std::int64_t>(last));
    while (reader.jobs.next_row()) found.push_back({job_row(reader.jobs), {}});
    reader.jobs.reset();
    reader.range_attempts.bind(1, static_cast<std::int64_t>(first))
        .bind(2, static_cast<std::int64_t>(last));
    std::size_t next = 0;
    while (reader.range_attempts.next_row()) {
      AttemptRow attempt = attempt_row(reader.range_attempts);
      while (next < found.size() && found[next].row.id < attempt.job_id) ++next;
      if (next < found.size() && found[next].row.id == attempt.job_id)
        found[next].attempts.push_back(std::move(attempt));
    }
    reader.range_attempts.reset();
    return found;
  }

  ListPage list_jobs(const ListFilter& filter) override {
    Reader& reader = this->reader();
    std::uint64_t before =
        filter.before > 0
            ? filter.before
            : static_cast<std::uint64_t>(reader.db.single_integer("SELECT max(id) FROM jobs")) + 1;
    // A search that could look at every row (by queue or by text) looks at
    // a range of ids at a time; a state alone has its index.
    bool bounded = !filter.queue.empty() || !filter.text.empty();
    std::uint64_t floor = bounded && before > filter.max_scan ? before - filter.max_scan : 0;
    std::string sql = fmt::format(
        "SELECT {}, (SELECT count(*) FROM attempts WHERE job_id = jobs.id) FROM jobs "
        "WHERE id < ?1 AND id >= ?2",
        kJobColumns);
    if (filter.state) sql += " AND ended_ms > 0 AND state = ?3";
    if (!filter.queue.empty()) sql += " AND queue = ?4";
    if (!filter.text.empty()) sql += " AND instr(spec, ?5) > 0";
    sql += " ORDER BY id DESC LIMIT ?6";
    Statement query(reader.db, sql.c_str());
    query.bind(1, static_cast<std::int64_t>(before)).bind(2, static_cast<std::int64_t>(floor));
    if (filter.state) query.bind(3, *filter.state);
    if (!filter.queue.empty()) query.bind(4, filter.queue);
    if (!filter.text.empty()) query.bind(5, filter.text);
    query.bind(6, static_cast<std::int64_t>(filter.limit));
    ListPage page;
    while (query.next_row())
      page.jobs.push_back(
          {job_row(query), static_cast<std::size_t>(query.integer(kJobColumnCount))});
    if (page.jobs.size() == filter.limit)
      page.next_before = page.jobs.back().row.id;
    else if (floor > 1)
      page.next_before = floor;
    return page;
  }

  std::vector<std::uint64_t> dependants(std::uint64_t id) override {
    Statement& query = reader().dependants;
    query.bind(1, static_cast<std::int64_t>(id));
    std::vector<std::uint64_t> found;
    while (query.next_row()) found.push_back(static_cast<std::uint64_t>(query.integer(0)));
    query.reset();
    return found;
  }

  std::optional<FlowRow> read_flow(std::uint64_t id) override {
    Statement& query = reader().flow;
    query.bind(1, static_cast<std::int64_t>(id));
    std::optional<FlowRow> found;
    if (query.next_row()) found = flow_row(query);
    query.reset();
    return found;
  }

  std::vector<FlowRow> list_flows(std::uint64_t before, std::size_t limit) override {
    Statement& query = reader().flows;
    query.bind(1, before > 0 ? static_cast<std::int64_t>(before) : INT64_MAX)
        .bind(2, static_cast<std::int64_t>(limit));
    std::vector<FlowRow> found;
    while (query.next_row()) found.push_back(flow_row(query));
    query.reset();
    return found;
  }

  std::optional<std::uint64_t> find_flow_key(const std::string& key) override {
    Statement& query = reader().flow_key;
    query.bind(1, key);
    std::optional<std::uint64_t> id;
    if (query.next_row()) id = static_cast<std::uint64_t>(query.integer(0));
    query.reset();
    return id;
  }

  std::optional<std::uint64_t> find_key(const std::string& key) override {
    Statement& find = reader().key;
    find.bind(1, key);
    std::optional<std::uint64_t> id;
    if (find.next_row()) id = static_cast<std::uint64_t>(find.integer(0));
    find.reset();
    return id;
  }

  std::optional<std::uint64_t> first_missing(const std::vector<std::uint64_t>& ids) override {
    if (ids.empty()) return std::nullopt;
    Statement& present = reader().ids;
    present.bind(1, static_cast<std::int64_t>(ids.front()))
        .bind(2, static_cast<std::int64_t>(ids.back()));
    std::size_t next = 0;  // the first id not seen yet
    while (next < ids.size() && present.next_row()) {
      auto id = static_cast<std::uint64_t>(present.integer(0));
      if (id > ids[next]) break;
      if (id == ids[next]) ++next;
    }
    present.reset();
    if (next < ids.size()) return ids[next];
    return std::nullopt;
  }

  Size size() override {
    Reader& reader = this->reader();
    Size size;
    auto page_size = static_cast<std::uint64_t>(reader.db.single_integer("PRAGMA page_size"));
    size.bytes =
        page_size * static_cast<std::uint64_t>(reader.db.single_integer("PRAGMA page_count"));
    size.free_bytes =
        page_size * static_cast<std::uint64_t>(reader.db.single_integer("PRAGMA freelist_count"));
    struct stat journal {};
    if (::stat((path_ + "-wal").c_str(), &journal) == 0)
      size.bytes += static_cast<std::uint64_t>(journal.st_size);
    Statement oldest(reader.db, "SELECT id, created_ms FROM jobs ORDER BY id LIMIT 1");
    if (oldest.next_row()) {
      size.oldest_id = static_cast<std::uint64_t>(oldest.integer(0));
      size.oldest_created_ms = oldest.integer(1);
    }
    return size;
  }

  void backup(const std::string& path) override {
    struct stat existing {};
    if (::stat(path.c_str(), &existing) == 0)
      throw std::runtime_error(fmt::format("'{}' exists already", path));
    Database source(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    Database copy(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
    // One step copies every page under one read transaction: a consistent
    // picture of what was committed when it began, while writers go on.
    sqlite3_backup* backup = sqlite3_backup_init(copy.get(), "main", source.get(), "main");
    if (!backup)
      throw std::runtime_error(
          fmt::format("cannot back up to '{}': {}", path, sqlite3_errmsg(copy.get())));
    int rc = sqlite3_backup_step(backup, -1);
    sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE) {
      std::string message = sqlite3_errstr(rc);
      ::unlink(path.c_str());
      throw std::runtime_error(fmt::format("cannot back up to '{}': {}", path, message));
    }
    copy.execute("PRAGMA journal_mode = DELETE");  // one self-contained file
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
  Snapshot read_snapshot() {
    // A connection of its own: WAL lets it read while the writer writes.
    Database reader(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    Snapshot snapshot;
    Statement jobs(
        reader,
        fmt::format("SELECT {} FROM jobs WHERE ended_ms = 0 ORDER BY id", kJobColumns).c_str());
    while (jobs.next_row()) snapshot.jobs.push_back(job_row(jobs));
    Statement attempts(
        reader, fmt::format("SELECT {} FROM attempts WHERE job_id IN (SELECT id FROM jobs WHERE "
                            "ended_ms = 0) ORDER BY job_id, number",
                            kAttemptColumns)
                    .c_str());
    while (attempts.next_row()) snapshot.attempts.push_back(attempt_row(attempts));
    Statement counts(reader, "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state");
    while (counts.next_row())
      snapshot.counts.push_back(
          {counts.text(0), counts.text(1), static_cast<std::uint64_t>(counts.integer(2))});
    Statement server(reader, "SELECT name, value FROM server");
    std::uint64_t removed_up_to = 0, removed_flows_up_to = 0;
    while (server.next_row()) {
      if (server.text(0) == "epoch") snapshot.epoch = static_cast<std::uint64_t>(server.integer(1));
      if (server.text(0) == "removed_up_to")
        removed_up_to = static_cast<std::uint64_t>(server.integer(1));
      if (server.text(0) == "flows_removed_up_to")
        removed_flows_up_to = static_cast<std::uint64_t>(server.integer(1));
    }
    auto highest = static_cast<std::uint64_t>(reader.single_integer("SELECT max(id) FROM jobs"));
    snapshot.next_id = std::max(highest, removed_up_to) + 1;
    auto highest_flow =
        static_cast<std::uint64_t>(reader.single_integer("SELECT max(id) FROM flows"));
    snapshot.next_flow = std::max(highest_flow, removed_flows_up_to) + 1;
    Statement schedules(
        reader, "SELECT name, spec, paused, next_ms, created_ms FROM schedules ORDER BY name");
    while (schedules.next_row())
      snapshot.schedules.push_back({schedules.text(0), schedules.text(1), schedules.integer(2) != 0,
                                    schedules.integer(3), schedules.integer(4)});
    Statement queues(reader, "SELECT name, settings FROM queues ORDER BY name");
    while (queues.next_row()) snapshot.queues.push_back({queues.text(0), queues.text(1)});
    return snapshot;
  }

  void apply(const Batch& batch) {
    for (const ScheduleRow& schedule : batch.schedules)
      put_schedule_->bind(1, schedule.name)
          .bind(2, schedule.spec)
          .bind(3, std::int64_t{schedule.paused})
          .bind(4, schedule.next_ms)
          .bind(5, schedule.created_ms)
          .run();
    for (const std::string& name : batch.removed_schedules) remove_schedule_->bind(1, name).run();
    for (const QueueRow& queue : batch.queues)
      put_queue_->bind(1, queue.name).bind(2, queue.settings).run();
    for (const FlowRow& flow : batch.new_flows)
      insert_flow_->bind(1, static_cast<std::int64_t>(flow.id))
          .bind(2, flow.name)
          .bind_or_null(3, flow.key)
          .bind(4, flow.created_ms)
          .bind(5, static_cast<std::int64_t>(flow.first_job))
          .bind(6, static_cast<std::int64_t>(flow.jobs))
          .run();
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
          .bind_or_null(10, job.key)
          .bind(11, job.ended_ms)
          .bind(12, job.keep_ms)
          .bind(13, job.flow ? std::optional<std::int64_t>(job.flow) : std::nullopt)
          .bind(14, std::int64_t{job.skipped})
          .run();
    for (const JobRow& job : batch.new_jobs)
      for (std::uint64_t dependency : job.after)
        insert_dependency_->bind(1, static_cast<std::int64_t>(job.id))
            .bind(2, static_cast<std::int64_t>(dependency))
            .run();
    for (const StateChange& change : batch.state_changes) {
      int changed = change_state_->bind(1, static_cast<std::int64_t>(change.job_id))
                        .bind(2, change.state)
                        .bind(3, change.ready_at_ms)
                        .bind(4, change.reason)
                        .bind(5, change.retry_base)
                        .bind(6, change.ended_ms)
                        .bind(7, std::int64_t{change.skipped})
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
    if (batch.expiry) remove_expired(*batch.expiry, batch.expired);
  }

  // Retention: removes ended jobs whose time is up, with their attempts.
  void remove_expired(const Expiry& expiry, const std::shared_ptr<std::vector<Count>>& removed) {
    struct Victim {
      std::int64_t id;
      std::string queue, state;
      std::int64_t flow;
    };
    std::vector<Victim> victims;
    auto collect = [&](Statement& query, std::int64_t until) {
      query.bind(1, until).bind(2, static_cast<std::int64_t>(expiry.limit - victims.size()));
      while (query.next_row())
        victims.push_back({query.integer(0), query.text(1), query.text(2), query.integer(3)});
      query.reset();
    };
    if (expiry.default_until_ms) collect(*expired_by_default_, *expiry.default_until_ms);
    if (victims.size() < expiry.limit) collect(*expired_by_own_keep_, expiry.now_ms);
    std::vector<Count> counts;
    std::int64_t highest = 0;
    for (const Victim& victim : victims) {
      remove_attempts_->bind(1, victim.id).run();
      remove_dependencies_->bind(1, victim.id).run();
      remove_job_->bind(1, victim.id).run();
      if (victim.flow && remove_flow_->bind(1, victim.flow).run() > 0)
        flows_removed_up_to_->bind(1, victim.flow).run();
      highest = std::max(highest, victim.id);
      auto same = [&](const Count& count) {
        return count.queue == victim.queue && count.state == victim.state;
      };
      if (auto it = std::find_if(counts.begin(), counts.end(), same); it != counts.end())
        ++it->jobs;
      else
        counts.push_back({victim.queue, victim.state, 1});
    }
    // Ids are never reused, not even those of removed jobs.
    if (highest > 0) removed_up_to_->bind(1, highest).run();
    if (removed) *removed = std::move(counts);
  }

  // The connection and statements of the reading thread, opened on first use.
  struct Reader {
    explicit Reader(const std::string& path)
        : db(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX),
          job(db, fmt::format("SELECT {} FROM jobs WHERE id = ?1", kJobColumns).c_str()),
          attempts(db, fmt::format("SELECT {} FROM attempts WHERE job_id = ?1 ORDER BY number",
                                   kAttemptColumns)
                           .c_str()),
          key(db, "SELECT id FROM jobs WHERE key = ?1"),
          dependants(db, "SELECT job_id FROM dependencies WHERE after_id = ?1 ORDER BY job_id"),
          flow(db, fmt::format("SELECT {} FROM flows WHERE id = ?1", kFlowColumns).c_str()),
          flows(db, fmt::format("SELECT {} FROM flows WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                                kFlowColumns)
                        .c_str()),
          flow_key(db, "SELECT id FROM flows WHERE key = ?1"),
          ids(db, "SELECT id FROM jobs WHERE id BETWEEN ?1 AND ?2 ORDER BY id"),
          jobs(db, fmt::format("SELECT {} FROM jobs WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
                               kJobColumns)
                       .c_str()),
          range_attempts(db, fmt::format("SELECT {} FROM attempts WHERE job_id BETWEEN ?1 AND ?2 "
                                         "ORDER BY job_id, number",
                                         kAttemptColumns)
                                 .c_str()) {}
    Database db;
    Statement job, attempts, key, dependants, flow, flows, flow_key, ids, jobs, range_attempts;
  };
  Reader& reader() {
    if (!reader_) reader_.emplace(path_);
    return *reader_;
  }

  std::string path_;
  ExclusiveUse exclusive_;
  Database db_;  // used by the writer thread only, after construction
  std::optional<Statement> insert_job_, change_state_, put_attempt_, set_epoch_;
  std::optional<Statement> insert_dependency_, insert_flow_, put_schedule_, remove_schedule_,
      put_queue_;
  std::optional<Statement> expired_by_default_, expired_by_own_keep_, remove_attempts_,
      remove_dependencies_, remove_job_, remove_flow_, removed_up_to_, flows_removed_up_to_;
  // Prepared once: a transaction holds a savepoint per batch, often hundreds.
  std::optional<Statement> begin_, commit_, savepoint_, release_, undo_;
  std::optional<Reader> reader_;
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
