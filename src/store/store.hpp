// ferry::store — the durable record of the server's jobs.
//
// The scheduler decides; the store remembers. Every change the server makes —
// jobs submitted, states changed, attempts ended, ended jobs removed by
// retention — goes to the store as part of a Batch, and the server
// acknowledges it to a client or a worker only once the store says the batch
// is durable. After a crash the server rebuilds its state from load().
//
// One writer thread owns the database: batches that arrive while a
// transaction commits wait, and then all of them go into the next
// transaction together (group commit). A burst of a thousand submits costs
// one fsync, not a thousand, and no batch waits longer than one commit.
//
// The server keeps only unfinished jobs in memory; an ended job is read back
// from the store when someone asks for it (read_job, list_jobs), through a
// connection of the reader's own, which sees every committed batch.
//
// Two stores keep the same promises: SQLite in WAL mode with synchronous=FULL
// (one file, one server), and PostgreSQL with synchronous_commit=on (one
// database that several servers share, one of them leading: see lead()). A
// committed batch survives a crash of the server and a power loss. The
// schema is versioned and migrated forward; docs/store.md is the contract.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/histogram.hpp"

namespace ferry::store {

// A job as stored. `spec` is the job's JSON description (command or call,
// limits, retry policy); the store keeps it as text and never parses it.
struct JobRow {
  std::uint64_t id = 0;
  std::string queue = "default";
  int priority = 0;
  std::string spec;
  std::string state;  // waiting, queued, succeeded, failed, cancelled
  std::int64_t created_ms = 0;
  std::int64_t ready_at_ms = 0;         // when a waiting job may be queued
  std::string reason;                   // why it failed or was cancelled
  std::int64_t retry_base = 0;          // attempts before a manual retry, which spend no retries
  std::string key;                      // "": none; else unique among the kept jobs
  std::int64_t ended_ms = 0;            // when it reached its final state; 0 while unfinished
  std::optional<std::int64_t> keep_ms;  // kept this long once ended; none: the server's default
  std::uint64_t flow = 0;               // the flow it belongs to; 0: none
  bool skipped = false;                 // cancelled because a dependency could not succeed
  std::vector<std::uint64_t> after;     // its dependencies (written with a new job)
  bool operator==(const JobRow&) const = default;
};

// A flow: the jobs of one batch, ids first_job .. first_job + jobs - 1.
struct FlowRow {
  std::uint64_t id = 0;
  std::string name;
  std::string key;  // "": none; else unique among the kept flows
  std::int64_t created_ms = 0;
  std::uint64_t first_job = 0;
  std::uint64_t jobs = 0;
  bool operator==(const FlowRow&) const = default;
};

// A schedule: what it submits when (its spec: JSON the store never parses),
// and when it fires next.
struct ScheduleRow {
  std::string name;
  std::string spec;
  bool paused = false;
  std::int64_t next_ms = 0;  // 0: never again
  std::int64_t created_ms = 0;
  bool operator==(const ScheduleRow&) const = default;
};

// A queue's settings (JSON the store never parses: the server's limits).
struct QueueRow {
  std::string name;
  std::string settings;
  bool operator==(const QueueRow&) const = default;
};

// One attempt at a job, written when it ends.
struct AttemptRow {
  std::uint64_t job_id = 0;
  int number = 0;           // 1-based
  std::uint64_t lease = 0;  // the lease token, unique across restarts
  std::string worker;
  std::int64_t started_ms = 0;
  std::int64_t ended_ms = 0;
  std::string end;  // succeeded, failed, lease_expired, cancelled
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
  std::int64_t ended_ms = 0;  // for a final state: when it ended (0 otherwise)
  bool skipped = false;
};

// How many kept jobs of a queue are in a state.
struct Count {
  std::string queue;
  std::string state;
  std::uint64_t jobs = 0;
  bool operator==(const Count&) const = default;
};

// Ended jobs to remove, oldest first: those ended before `default_until_ms`
// without a keep of their own, and those whose own keep ran out by
// `now_ms`; at most `limit` of them.
struct Expiry {
  std::int64_t now_ms = 0;
  std::optional<std::int64_t> default_until_ms;  // none: keep forever by default
  std::size_t limit = 1000;
};

// Changes that become durable together, or not at all.
struct Batch {
  std::vector<FlowRow> new_flows;
  std::vector<JobRow> new_jobs;
  std::vector<StateChange> state_changes;
  std::vector<AttemptRow> attempts;            // inserted, or replacing the same (job_id, number)
  std::vector<ScheduleRow> schedules;          // inserted, or replacing the one of that name
  std::vector<std::string> removed_schedules;  // by name
  std::vector<QueueRow> queues;                // inserted, or replacing the one of that name
  std::optional<std::uint64_t> epoch;          // a server start: the new epoch
  std::optional<Expiry> expiry;                // retention: what it removed goes to `expired`
  std::shared_ptr<std::vector<Count>> expired;
  bool empty() const {
    return new_flows.empty() && new_jobs.empty() && state_changes.empty() && attempts.empty() &&
           schedules.empty() && removed_schedules.empty() && queues.empty() && !epoch && !expiry;
  }
};

// What the server needs to start: its unfinished jobs, and counts of the rest.
struct Snapshot {
  std::vector<JobRow> jobs;            // unfinished, by id
  std::vector<AttemptRow> attempts;    // of those jobs, by job id, then number
  std::uint64_t epoch = 0;             // the last server start's (0: none yet)
  std::uint64_t next_id = 1;           // above every id ever stored, removed ones included
  std::uint64_t next_flow = 1;         // likewise for flows
  std::vector<Count> counts;           // every kept job
  std::vector<ScheduleRow> schedules;  // by name
  std::vector<QueueRow> queues;        // by name
};

struct StoredJob {
  JobRow row;
  std::vector<AttemptRow> attempts;
};

// A page of kept jobs, newest first.
struct ListFilter {
  std::optional<std::string> state;
  std::string queue;         // "": any
  std::string text;          // "": any; else found in the spec (which holds the name)
  std::uint64_t before = 0;  // only ids below (0: from the newest)
  std::size_t limit = 50;
  std::size_t max_scan = 100'000;  // ids looked at, at most
};
struct ListedJob {
  JobRow row;
  std::size_t attempts = 0;
};
struct ListPage {
  std::vector<ListedJob> jobs;
  std::uint64_t next_before = 0;  // 0: nothing older
};

// The buckets of Stats' histograms: seconds a transaction took to commit
// (its fsync included), and batches it held.
inline constexpr double kCommitSecondsBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1,    2.5};
inline constexpr double kCommitBatchesBounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

struct Stats {
  std::uint64_t batches = 0;       // batches made durable
  std::uint64_t transactions = 0;  // commits that made them so: fewer, with group commit
  Histogram commit_seconds{kCommitSecondsBounds};  // of each transaction
  Histogram commit_batches{kCommitBatchesBounds};  // batches in each transaction
};

struct Size {
  std::uint64_t bytes = 0;  // the database, its free pages and its journal
  std::uint64_t free_bytes = 0;
  std::optional<std::uint64_t> oldest_id;  // the oldest kept job
  std::int64_t oldest_created_ms = 0;
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

  // What the server needs to start, as durable now.
  virtual Snapshot load() = 0;

  virtual Stats stats() = 0;

  // Reads of what is durable. Each call uses the calling thread's own
  // connection: one thread at a time per store (the server's event loop).
  virtual std::optional<StoredJob> read_job(std::uint64_t id) = 0;
  // The kept jobs with ids from `first` to `last`, by id, with their attempts.
  virtual std::vector<StoredJob> read_jobs(std::uint64_t first, std::uint64_t last) = 0;
  virtual ListPage list_jobs(const ListFilter& filter) = 0;
  // The kept job with this key.
  virtual std::optional<std::uint64_t> find_key(const std::string& key) = 0;
  // The jobs that run after job `id`.
  virtual std::vector<std::uint64_t> dependants(std::uint64_t id) = 0;
  virtual std::optional<FlowRow> read_flow(std::uint64_t id) = 0;
  // Kept flows, newest first: at most `limit`, ids below `before` (0: any).
  virtual std::vector<FlowRow> list_flows(std::uint64_t before, std::size_t limit) = 0;
  virtual std::optional<std::uint64_t> find_flow_key(const std::string& key) = 0;
  // Of these ids (ascending), the first that is not a kept job.
  virtual std::optional<std::uint64_t> first_missing(const std::vector<std::uint64_t>& ids) = 0;
  virtual Size size() = 0;

  // Writes a consistent copy of the database, as committed when the call
  // began, to `path` (which must not exist). Safe on any thread while the
  // server runs; throws std::runtime_error when it cannot, Unsupported when
  // the database is backed up by its own tools.
  virtual void backup(const std::string& path) = 0;

  // For a database several servers share: from now on this store writes as
  // the leader of `epoch` (won through its Election), migrating the schema
  // first if it must. Every later transaction commits only while `epoch`
  // still leads: once another server took over, each write fails, and so
  // does each one after (docs/store.md, "Fencing"). Until lead(), writes
  // fail. A store only one server uses (SQLite) always writes; this does
  // nothing there. Throws std::runtime_error when it cannot.
  virtual void lead(std::uint64_t epoch) { (void)epoch; }
};

// What a store cannot do, said in a sentence for its user.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Opens (creating or migrating) the database at `path`, and keeps others
// from using it while the store lives. Throws std::runtime_error with a
// clear message when it cannot: unreadable file, not a ferry database, one
// written by a newer ferry, or one in use by another store. load() throws
// for a damaged database rather than return part of it.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

// A PostgreSQL database ("postgresql://..." or "postgres://..."), which
// several servers may share: one leads and writes, the others stand by.
struct PostgresOptions {
  // How long a leader stays leader without renewing (Election); a
  // transaction of a server stalled in the middle of one is ended by the
  // database after this long, so that it cannot hold up a takeover.
  std::chrono::milliseconds leader_lease{3000};
};
bool is_postgres_url(const std::string& where);
// Checks that the database is ferry's (or empty) with a schema this build
// can read, and throws std::runtime_error with a clear message when it is
// not; changes nothing until lead(). A database that cannot be reached yet
// is checked by lead().
std::unique_ptr<Store> open_postgres_store(const std::string& url, PostgresOptions options = {});

// `where` as it may be shown: a URL's password replaced by "***".
std::string redacted(const std::string& where);

// A PostgreSQL store for a URL of one, else the SQLite file at `where`.
std::unique_ptr<Store> open_store(const std::string& where, PostgresOptions options = {});

// The schema version this build writes.
int schema_version();

// Verifies the database at `path` without changing it (SQLite's
// integrity_check, and that it is a ferry database this build can read):
// empty when sound, else one line per problem found.
std::vector<std::string> check_sqlite_database(const std::string& path);

}  // namespace ferry::store
