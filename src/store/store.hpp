// ferry::store — the durable log of the server's state changes.
//
// The scheduler decides; the store remembers. Every change the server makes —
// jobs submitted, states changed, attempts started and ended — goes to the
// store as part of a Batch, and the server acknowledges it to a client or a
// worker only once the store says the batch is durable. After a crash the
// server rebuilds its state from load().
//
// One writer thread owns the database: batches that arrive while a
// transaction commits wait, and then all of them go into the next
// transaction together (group commit). A burst of a thousand submits costs
// one fsync, not a thousand, and no batch waits longer than one commit.
//
// The SQLite store uses WAL mode with synchronous=FULL, so a committed batch
// survives a process crash and a power loss. Its schema is versioned
// (PRAGMA user_version) and migrated forward on open; docs/store.md is the
// contract. The memory store keeps everything in this process (ferry run,
// tests) with the same interface and the same callback discipline.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ferry::store {

// A job as stored. `spec` is the job's JSON description (command or call,
// limits, retry policy); the store keeps it as text and never parses it.
struct JobRow {
  std::uint64_t id = 0;
  std::string queue = "default";
  int priority = 0;
  std::string spec;
  std::string state;  // waiting, queued, running, succeeded, failed, cancelled
  std::int64_t created_ms = 0;
  std::int64_t ready_at_ms = 0;  // when a waiting job may be queued
  std::string reason;            // why it failed or was cancelled
  std::int64_t retry_base = 0;   // attempts before a manual retry, which spend no retries
  bool operator==(const JobRow&) const = default;
};

// One attempt at a job, appended when it starts and updated when it ends.
struct AttemptRow {
  std::uint64_t job_id = 0;
  int number = 0;           // 1-based
  std::uint64_t lease = 0;  // the lease token, unique across restarts
  std::string worker;
  std::int64_t started_ms = 0;
  std::int64_t ended_ms = 0;  // 0 while running
  std::string end;            // running, succeeded, failed, lease_expired, cancelled
  std::string reason;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string stdout_tail;
  std::string stderr_tail;
  std::string result;  // JSON, for call jobs
  std::int64_t cpu_us = 0;
  std::int64_t max_rss_kb = 0;
  bool operator==(const AttemptRow&) const = default;
};

// A job's state moving on.
struct StateChange {
  std::uint64_t job_id = 0;
  std::string state;
  std::int64_t ready_at_ms = 0;
  std::string reason;
  std::int64_t retry_base = 0;
};

// Changes that become durable together, or not at all.
struct Batch {
  std::vector<JobRow> new_jobs;
  std::vector<StateChange> state_changes;
  std::vector<AttemptRow> attempts;    // inserted, or replacing the same (job_id, number)
  std::optional<std::uint64_t> epoch;  // a server start: the new epoch
  bool empty() const {
    return new_jobs.empty() && state_changes.empty() && attempts.empty() && !epoch;
  }
};

// Everything stored, for rebuilding the scheduler after a restart.
struct Snapshot {
  std::vector<JobRow> jobs;          // by id
  std::vector<AttemptRow> attempts;  // by job id, then number
  std::uint64_t epoch = 0;           // the last server start's (0: none yet)
};

struct Stats {
  std::uint64_t batches = 0;       // batches made durable
  std::uint64_t transactions = 0;  // commits that made them so: fewer, with group commit
};

class Store {
 public:
  // Called on the store's writer thread once the batch is durable (error
  // empty), or could not be made so (error says why; nothing of it was kept).
  using Committed = std::function<void(const std::string& error)>;

  virtual ~Store() = default;

  // Queues `batch` for the next transaction. Never blocks on I/O.
  virtual void write(Batch batch, Committed committed) = 0;

  // Blocks until every batch written before the call is durable.
  virtual void flush() = 0;

  // Everything durable now.
  virtual Snapshot load() = 0;

  virtual Stats stats() = 0;
};

std::unique_ptr<Store> open_memory_store();

// Opens (creating or migrating) the database at `path`, and keeps others
// from using it while the store lives. Throws std::runtime_error with a
// clear message when it cannot: unreadable file, not a ferry database, one
// written by a newer ferry, or one in use by another store. load() throws
// for a damaged database rather than return part of it.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

// The schema version this build writes.
int schema_version();

// Verifies the database at `path` without changing it (SQLite's
// integrity_check, and that it is a ferry database this build can read):
// empty when sound, else one line per problem found.
std::vector<std::string> check_sqlite_database(const std::string& path);

}  // namespace ferry::store
