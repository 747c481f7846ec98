// The durable store on PostgreSQL: one writer thread and connection, one
// transaction per group of batches (synchronous_commit=on), each fenced by
// the leadership epoch. Schema and fencing: docs/store.md.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <utility>

#include "store/group_commit.hpp"
#include "store/postgres.hpp"
#include "store/postgres_schema.hpp"

namespace ferry::store {
namespace postgres {
namespace {

std::string quoted(std::string_view name) { return fmt::format("'{}'", name); }

std::string not_usable(const std::string& url, const std::string& why) {
  return fmt::format("database {} is not usable: {}", pg::redacted(url), why);
}

int current_version(pg::Connection& connection) {
  return static_cast<int>(connection.run("SELECT max(version) FROM ferry_schema").integer(0, 0));
}

}  // namespace

int prepare(pg::Connection& connection, const std::string& url) {
  try {
    bool ours = connection.run("SELECT to_regclass('ferry_schema') IS NOT NULL").boolean(0, 0);
    if (!ours) {
      // Tables of ours without our version table: another program's.
      for (const char* table : kOurTables)
        if (connection.run(fmt::format("SELECT to_regclass({}) IS NOT NULL", quoted(table)))
                .boolean(0, 0))
          throw std::runtime_error(fmt::format("database {} has a table '{}', but is not ferry's",
                                               pg::redacted(url), table));
    }
    connection.run(fmt::format("BEGIN; SELECT pg_advisory_xact_lock({}, {}); {} COMMIT", kLockSpace,
                               kBootstrapLock, kBootstrap));
    int version = current_version(connection);
    if (version > kSchemaVersion)
      throw std::runtime_error(
          fmt::format("database {} has schema version {}, newer than this ferry's {}: use a newer "
                      "ferry",
                      pg::redacted(url), version, kSchemaVersion));
    if (version == 0)
      for (const char* table : kOurTables)
        if (connection.run(fmt::format("SELECT to_regclass({}) IS NOT NULL", quoted(table)))
                .boolean(0, 0))
          throw std::runtime_error(fmt::format("database {} has a table '{}', but is not ferry's",
                                               pg::redacted(url), table));
    return version;
  } catch (const pg::Error& error) {
    if (error.connection_lost) throw;  // not the database's fault: maybe later
    try {
      connection.run("ROLLBACK");
    } catch (const pg::Error&) {
    }
    throw std::runtime_error(not_usable(url, error.what()));
  }
}

}  // namespace postgres

namespace {

namespace sql = postgres;
using Clock = std::chrono::steady_clock;

JobRow job_row(const pg::Result& row, int at, int first = 0) {
  return {static_cast<std::uint64_t>(row.integer(at, first + 0)),
          std::string(row.text(at, first + 1)),
          static_cast<int>(row.integer(at, first + 2)),
          std::string(row.text(at, first + 3)),
          std::string(row.text(at, first + 4)),
          row.integer(at, first + 5),
          row.integer(at, first + 6),
          std::string(row.text(at, first + 7)),
          row.integer(at, first + 8),
          std::string(row.text(at, first + 9)),
          row.integer(at, first + 10),
          row.optional_integer(at, first + 11),
          static_cast<std::uint64_t>(row.integer(at, first + 12)),
          row.boolean(at, first + 13),
          {}};
}

FlowRow flow_row(const pg::Result& row, int at) {
  return {static_cast<std::uint64_t>(row.integer(at, 0)),
          std::string(row.text(at, 1)),
          std::string(row.text(at, 2)),
          row.integer(at, 3),
          static_cast<std::uint64_t>(row.integer(at, 4)),
          static_cast<std::uint64_t>(row.integer(at, 5))};
}

std::string_view boolean(bool value) { return value ? "true" : "false"; }

AttemptRow attempt_row(const pg::Result& row, int at) {
  AttemptRow attempt;
  attempt.job_id = static_cast<std::uint64_t>(row.integer(at, 0));
  attempt.number = static_cast<int>(row.integer(at, 1));
  attempt.worker = row.text(at, 2);
  attempt.started_ms = row.integer(at, 3);
  attempt.ended_ms = row.integer(at, 4);
  attempt.end = row.text(at, 5);
  attempt.reason = row.text(at, 6);
  if (auto code = row.optional_integer(at, 7)) attempt.exit_code = static_cast<int>(*code);
  if (auto signal = row.optional_integer(at, 8)) attempt.signal = static_cast<int>(*signal);
  attempt.stdout_tail = row.text(at, 9);
  attempt.stderr_tail = row.text(at, 10);
  attempt.result = row.text(at, 11);
  attempt.cpu_us = row.integer(at, 12);
  attempt.max_rss_kb = row.integer(at, 13);
  attempt.lease = static_cast<std::uint64_t>(row.integer(at, 14));
  return attempt;
}

std::optional<std::int64_t> optional(const std::optional<int>& value) {
  if (!value) return std::nullopt;
  return *value;
}

// A transaction found that its epoch no longer leads.
struct Fenced : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A batch's changes as the statements that make them, and what to check of
// their answers.
struct Writes {
  std::vector<pg::Statement> statements;
  std::size_t changed_jobs = 0;          // rows kChangeStates must change
  std::optional<std::size_t> change_at;  // its index in `statements`
  std::vector<std::size_t> expiry_at;    // indexes of kExpire statements
  pg::Array changed_ids;                 // to name a missing job
};

void add_writes(const Batch& batch, Writes& writes) {
  for (const ScheduleRow& schedule : batch.schedules) {
    pg::Params params;
    params.add(schedule.name)
        .add(schedule.spec)
        .add(schedule.paused ? "true" : "false")
        .add(schedule.next_ms)
        .add(schedule.created_ms);
    writes.statements.push_back({sql::kPutSchedule, std::move(params)});
  }
  for (const std::string& name : batch.removed_schedules) {
    pg::Params params;
    params.add(name);
    writes.statements.push_back({sql::kRemoveSchedule, std::move(params)});
  }
  for (const QueueRow& queue : batch.queues) {
    pg::Params params;
    params.add(queue.name).add(queue.settings);
    writes.statements.push_back({sql::kPutQueue, std::move(params)});
  }
  if (!batch.new_flows.empty()) {
    pg::Array id, name, key, created, first_job, jobs;
    for (const FlowRow& flow : batch.new_flows) {
      id.add(static_cast<std::int64_t>(flow.id));
      name.add(flow.name);
      if (flow.key.empty())
        key.add_null();
      else
        key.add(flow.key);
      created.add(flow.created_ms);
      first_job.add(static_cast<std::int64_t>(flow.first_job));
      jobs.add(static_cast<std::int64_t>(flow.jobs));
    }
    pg::Params params;
    for (pg::Array* column : {&id, &name, &key, &created, &first_job, &jobs})
      params.add(column->literal());
    writes.statements.push_back({sql::kInsertFlows, std::move(params)});
  }
  if (!batch.new_jobs.empty()) {
    pg::Array id, queue, priority, spec, state, created, ready_at, reason, retry_base, key, ended,
        keep, flow, skipped, dependant, dependency;
    for (const JobRow& job : batch.new_jobs) {
      id.add(static_cast<std::int64_t>(job.id));
      queue.add(job.queue);
      priority.add(job.priority);
      spec.add(job.spec);
      state.add(job.state);
      created.add(job.created_ms);
      ready_at.add(job.ready_at_ms);
      reason.add(job.reason);
      retry_base.add(job.retry_base);
      if (job.key.empty())
        key.add_null();
      else
        key.add(job.key);
      ended.add(job.ended_ms);
      keep.add(job.keep_ms);
      if (job.flow)
        flow.add(static_cast<std::int64_t>(job.flow));
      else
        flow.add_null();
      skipped.add(boolean(job.skipped));
      for (std::uint64_t after : job.after) {
        dependant.add(static_cast<std::int64_t>(job.id));
        dependency.add(static_cast<std::int64_t>(after));
      }
    }
    pg::Params params;
    for (pg::Array* column : {&id, &queue, &priority, &spec, &state, &created, &ready_at, &reason,
                              &retry_base, &key, &ended, &keep, &flow, &skipped})
      params.add(column->literal());
    writes.statements.push_back({sql::kInsertJobs, std::move(params)});
    if (dependant.size() > 0)
      writes.statements.push_back(
          {sql::kInsertDependencies,
           pg::Params().add(dependant.literal()).add(dependency.literal())});
  }
  if (!batch.state_changes.empty()) {
    // The last change of each job wins, as if they ran one after another:
    // each sets every column it touches.
    std::map<std::uint64_t, const StateChange*> last;
    for (const StateChange& change : batch.state_changes) last[change.job_id] = &change;
    pg::Array id, state, ready_at, reason, retry_base, ended, skipped;
    for (const auto& [job, change] : last) {
      id.add(static_cast<std::int64_t>(job));
      state.add(change->state);
      ready_at.add(change->ready_at_ms);
      reason.add(change->reason);
      retry_base.add(change->retry_base);
      ended.add(change->ended_ms);
      skipped.add(boolean(change->skipped));
    }
    writes.changed_ids = id;
    pg::Params params;
    for (pg::Array* column : {&id, &state, &ready_at, &reason, &retry_base, &ended, &skipped})
      params.add(column->literal());
    writes.change_at = writes.statements.size();
    writes.changed_jobs = last.size();
    writes.statements.push_back({sql::kChangeStates, std::move(params)});
  }
  if (!batch.attempts.empty()) {
    std::map<std::pair<std::uint64_t, int>, const AttemptRow*> last;
    for (const AttemptRow& attempt : batch.attempts)
      last[{attempt.job_id, attempt.number}] = &attempt;
    pg::Array job, number, worker, started, ended, end, reason, exit_code, signal, out, err, result,
        cpu, rss, lease;
    for (const auto& [at, attempt] : last) {
      job.add(static_cast<std::int64_t>(attempt->job_id));
      number.add(attempt->number);
      worker.add(attempt->worker);
      started.add(attempt->started_ms);
      ended.add(attempt->ended_ms);
      end.add(attempt->end);
      reason.add(attempt->reason);
      exit_code.add(optional(attempt->exit_code));
      signal.add(optional(attempt->signal));
      out.add(attempt->stdout_tail);
      err.add(attempt->stderr_tail);
      result.add(attempt->result);
      cpu.add(attempt->cpu_us);
      rss.add(attempt->max_rss_kb);
      lease.add(static_cast<std::int64_t>(attempt->lease));
    }
    pg::Params params;
    for (pg::Array* column : {&job, &number, &worker, &started, &ended, &end, &reason, &exit_code,
                              &signal, &out, &err, &result, &cpu, &rss, &lease})
      params.add(column->literal());
    writes.statements.push_back({sql::kPutAttempts, std::move(params)});
  }
  if (batch.epoch)
    writes.statements.push_back(
        {sql::kSetEpoch, pg::Params().add(static_cast<std::int64_t>(*batch.epoch))});
  if (batch.expiry) {
    pg::Params params;
    params.add(batch.expiry->now_ms)
        .add(batch.expiry->default_until_ms)
        .add(static_cast<std::int64_t>(batch.expiry->limit));
    writes.expiry_at.push_back(writes.statements.size());
    writes.statements.push_back({sql::kExpire, std::move(params)});
  }
}

// Retention's answer: the jobs it removed, by queue and state.
std::vector<Count> removed_counts(const pg::Result& result) {
  std::vector<Count> counts;
  for (int row = 0; row < result.rows(); ++row)
    counts.push_back({std::string(result.text(row, 0)), std::string(result.text(row, 1)),
                      static_cast<std::uint64_t>(result.integer(row, 2))});
  return counts;
}

class PostgresStore final : public GroupCommitStore {
 public:
  PostgresStore(const std::string& url, PostgresOptions options) : url_(url), options_(options) {
    // A database that cannot be reached now may be later (a standby starts
    // before it, or while it fails over): lead() checks again. One that is
    // not ferry's, or is newer, is refused now.
    try {
      pg::Connection check = connect("ferry server (start)");
      postgres::prepare(check, url_);
    } catch (const pg::Error& unreachable) {
      if (!unreachable.connection_lost) throw;
    }
    start();
  }

  ~PostgresStore() override { stop(); }

  void lead(std::uint64_t epoch) override {
    // Migrations change the schema under the new epoch's fence, one server at
    // a time: a stalled leader that wakes up cannot write into a schema it
    // does not know.
    try {
      pg::Connection connection = connect("ferry server (migration)");
      postgres::prepare(connection, url_);
      for (;;) {
        connection.run("BEGIN");
        connection.run(fmt::format("SELECT pg_advisory_xact_lock({}, {})", sql::kLockSpace,
                                   sql::kMigrationLock));
        if (connection.run(sql::kFence, pg::Params().add(static_cast<std::int64_t>(epoch)))
                .rows() != 1)
          throw std::runtime_error(
              fmt::format("epoch {} no longer leads: another server took over", epoch));
        auto version =
            static_cast<int>(connection.run("SELECT max(version) FROM ferry_schema").integer(0, 0));
        if (version > sql::kSchemaVersion)
          throw std::runtime_error(fmt::format(
              "database {} has schema version {}, newer than this ferry's {}: use a newer ferry",
              pg::redacted(url_), version, sql::kSchemaVersion));
        if (version == sql::kSchemaVersion) {
          connection.run("COMMIT");
          break;
        }
        connection.run(sql::kMigrations[version]);
        connection.run(fmt::format("UPDATE ferry_schema SET version = {}", version + 1));
        connection.run("COMMIT");
      }
    } catch (const pg::Error& error) {
      throw std::runtime_error(
          fmt::format("cannot migrate database {}: {}", pg::redacted(url_), error.what()));
    }
    epoch_ = epoch;
  }

  Snapshot load() override {
    flush();
    try {
      pg::Connection reader = connect("ferry server (load)");
      return read_snapshot(reader);
    } catch (const pg::Error& error) {
      throw std::runtime_error(
          fmt::format("cannot read database {}: {}", pg::redacted(url_), error.what()));
    }
  }

  std::optional<StoredJob> read_job(std::uint64_t id) override {
    return reading([&](pg::Connection& db) -> std::optional<StoredJob> {
      auto found =
          db.pipeline({{fmt::format("SELECT {} FROM jobs WHERE id = $1", sql::kJobColumns),
                        pg::Params().add(static_cast<std::int64_t>(id))},
                       {fmt::format("SELECT {} FROM attempts WHERE job_id = $1 ORDER BY number",
                                    sql::kAttemptColumns),
                        pg::Params().add(static_cast<std::int64_t>(id))}});
      if (found[0].rows() == 0) return std::nullopt;
      StoredJob job{job_row(found[0], 0), {}};
      for (int row = 0; row < found[1].rows(); ++row)
        job.attempts.push_back(attempt_row(found[1], row));
      return job;
    });
  }

  std::vector<StoredJob> read_jobs(std::uint64_t first, std::uint64_t last) override {
    return reading([&](pg::Connection& db) {
      pg::Params range;
      range.add(static_cast<std::int64_t>(first)).add(static_cast<std::int64_t>(last));
      auto found =
          db.pipeline({{fmt::format("SELECT {} FROM jobs WHERE id BETWEEN $1 AND $2 ORDER BY id",
                                    sql::kJobColumns),
                        range},
                       {fmt::format("SELECT {} FROM attempts WHERE job_id BETWEEN $1 AND $2 "
                                    "ORDER BY job_id, number",
                                    sql::kAttemptColumns),
                        range}});
      std::vector<StoredJob> jobs;
      for (int row = 0; row < found[0].rows(); ++row) jobs.push_back({job_row(found[0], row), {}});
      std::size_t next = 0;
      for (int row = 0; row < found[1].rows(); ++row) {
        AttemptRow attempt = attempt_row(found[1], row);
        while (next < jobs.size() && jobs[next].row.id < attempt.job_id) ++next;
        if (next < jobs.size() && jobs[next].row.id == attempt.job_id)
          jobs[next].attempts.push_back(std::move(attempt));
      }
      return jobs;
    });
  }

  ListPage list_jobs(const ListFilter& filter) override {
    return reading([&](pg::Connection& db) {
      std::uint64_t before =
          filter.before > 0
              ? filter.before
              : static_cast<std::uint64_t>(db.run("SELECT max(id) FROM jobs").integer(0, 0)) + 1;
      // A search that could look at every row (by queue or by text) looks at
      // a range of ids at a time; a state alone has its index.
      bool bounded = !filter.queue.empty() || !filter.text.empty();
      std::uint64_t floor = bounded && before > filter.max_scan ? before - filter.max_scan : 0;
      pg::Params params;
      params.add(static_cast<std::int64_t>(before)).add(static_cast<std::int64_t>(floor));
      std::string query = fmt::format(
          "SELECT {}, (SELECT count(*) FROM attempts WHERE job_id = jobs.id) FROM jobs "
          "WHERE id < $1 AND id >= $2",
          sql::kJobColumns);
      int next = 3;
      if (filter.state) {
        query += fmt::format(" AND ended_ms > 0 AND state = ${}", next++);
        params.add(*filter.state);
      }
      if (!filter.queue.empty()) {
        query += fmt::format(" AND queue = ${}", next++);
        params.add(filter.queue);
      }
      if (!filter.text.empty()) {
        query += fmt::format(" AND strpos(spec, ${}) > 0", next++);
        params.add(filter.text);
      }
      query += fmt::format(" ORDER BY id DESC LIMIT ${}", next);
      params.add(static_cast<std::int64_t>(filter.limit));
      pg::Result rows = db.run(query, params);
      ListPage page;
      for (int row = 0; row < rows.rows(); ++row)
        page.jobs.push_back({job_row(rows, row),
                             static_cast<std::size_t>(rows.integer(row, sql::kJobColumnCount))});
      if (page.jobs.size() == filter.limit)
        page.next_before = page.jobs.back().row.id;
      else if (floor > 1)
        page.next_before = floor;
      return page;
    });
  }

  std::optional<std::uint64_t> find_key(const std::string& key) override {
    return reading([&](pg::Connection& db) -> std::optional<std::uint64_t> {
      pg::Result found = db.run("SELECT id FROM jobs WHERE key = $1", pg::Params().add(key));
      if (found.rows() == 0) return std::nullopt;
      return static_cast<std::uint64_t>(found.integer(0, 0));
    });
  }

  std::vector<std::uint64_t> dependants(std::uint64_t id) override {
    return reading([&](pg::Connection& db) {
      pg::Result found =
          db.run("SELECT job_id FROM dependencies WHERE after_id = $1 ORDER BY job_id",
                 pg::Params().add(static_cast<std::int64_t>(id)));
      std::vector<std::uint64_t> ids;
      for (int row = 0; row < found.rows(); ++row)
        ids.push_back(static_cast<std::uint64_t>(found.integer(row, 0)));
      return ids;
    });
  }

  std::optional<FlowRow> read_flow(std::uint64_t id) override {
    return reading([&](pg::Connection& db) -> std::optional<FlowRow> {
      pg::Result found =
          db.run(fmt::format("SELECT {} FROM flows WHERE id = $1", sql::kFlowColumns),
                 pg::Params().add(static_cast<std::int64_t>(id)));
      if (found.rows() == 0) return std::nullopt;
      return flow_row(found, 0);
    });
  }

  std::vector<FlowRow> list_flows(std::uint64_t before, std::size_t limit) override {
    return reading([&](pg::Connection& db) {
      pg::Result found =
          db.run(fmt::format("SELECT {} FROM flows WHERE id < $1 ORDER BY id DESC LIMIT $2",
                             sql::kFlowColumns),
                 pg::Params()
                     .add(before > 0 ? static_cast<std::int64_t>(before) : INT64_MAX)
                     .add(static_cast<std::int64_t>(limit)));
      std::vector<FlowRow> flows;
      for (int row = 0; row < found.rows(); ++row) flows.push_back(flow_row(found, row));
      return flows;
    });
  }

  std::optional<std::uint64_t> find_flow_key(const std::string& key) override {
    return reading([&](pg::Connection& db) -> std::optional<std::uint64_t> {
      pg::Result found = db.run("SELECT id FROM flows WHERE key = $1", pg::Params().add(key));
      if (found.rows() == 0) return std::nullopt;
      return static_cast<std::uint64_t>(found.integer(0, 0));
    });
  }

  std::optional<std::uint64_t> first_missing(const std::vector<std::uint64_t>& ids) override {
    if (ids.empty()) return std::nullopt;
    return reading([&](pg::Connection& db) -> std::optional<std::uint64_t> {
      pg::Array wanted;
      for (std::uint64_t id : ids) wanted.add(static_cast<std::int64_t>(id));
      pg::Result missing = db.run(
          "SELECT min(w.id) FROM unnest($1::bigint[]) AS w (id) "
          "WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = w.id)",
          pg::Params().add(wanted.literal()));
      if (missing.null(0, 0)) return std::nullopt;
      return static_cast<std::uint64_t>(missing.integer(0, 0));
    });
  }

  Size size() override {
    return reading([&](pg::Connection& db) {
      Size size;
      // What ferry's tables take, indexes and TOAST included. Free space is
      // PostgreSQL's to reuse (VACUUM), and not counted here.
      size.bytes = static_cast<std::uint64_t>(
          db.run("SELECT pg_total_relation_size('jobs') + pg_total_relation_size('attempts') + "
                 "pg_total_relation_size('server') + pg_total_relation_size('dependencies') + "
                 "pg_total_relation_size('flows')")
              .integer(0, 0));
      pg::Result oldest = db.run("SELECT id, created_ms FROM jobs ORDER BY id LIMIT 1");
      if (oldest.rows() > 0) {
        size.oldest_id = static_cast<std::uint64_t>(oldest.integer(0, 0));
        size.oldest_created_ms = oldest.integer(0, 1);
      }
      return size;
    });
  }

  void backup(const std::string&) override {
    throw Unsupported(
        "a PostgreSQL store is backed up with PostgreSQL's own tools: pg_dump makes a consistent "
        "copy while the servers run (pg_basebackup and WAL archiving give point-in-time "
        "recovery); see docs/store.md");
  }

 protected:
  std::vector<std::string> commit(const std::vector<const Batch*>& batches) override {
    std::vector<std::string> errors(batches.size());
    std::uint64_t epoch = epoch_;
    std::string refusal;
    if (deposed_)
      refusal = fmt::format(
          "this server no longer leads (epoch {} was taken over): nothing was written", epoch);
    else if (epoch == 0)
      refusal = "this server does not lead: it writes nothing";
    if (!refusal.empty()) {
      errors.assign(batches.size(), refusal);
      return errors;
    }
    try {
      pg::Connection& db = writer();
      if (commit_together(db, epoch, batches)) return errors;
      // One of them failed: each under a savepoint, to keep the others.
      commit_one_by_one(db, epoch, batches, errors);
    } catch (const Fenced& lost) {
      deposed_ = true;
      errors.assign(batches.size(), lost.what());
    } catch (const pg::Error& error) {
      if (error.connection_lost) writer_.reset();  // a new one for the next group
      errors.assign(batches.size(), fmt::format("cannot write the database: {}", error.what()));
    }
    return errors;
  }

 private:
  pg::Connection connect(const std::string& name) const {
    return pg::Connection(
        url_, postgres::kConnectTimeout,
        fmt::format("SET application_name = '{}'; SET statement_timeout = '60s'", name));
  }

  pg::Connection& writer() {
    if (!writer_ || writer_->broken()) {
      writer_.reset();
      try {
        // A transaction of a server paused in the middle of it would hold
        // the leadership row, and with it any takeover: the database ends
        // such a transaction after a lease.
        writer_.emplace(url_, postgres::kConnectTimeout,
                        fmt::format("SET application_name = 'ferry server (writer)'; "
                                    "SET synchronous_commit = on; SET statement_timeout = '60s'; "
                                    "SET idle_in_transaction_session_timeout = '{}ms'",
                                    options_.leader_lease.count()));
      } catch (const pg::Error&) {
        writer_.reset();
        throw;
      }
    }
    return *writer_;
  }

  static void begin(std::uint64_t epoch, std::vector<pg::Statement>& into) {
    into.push_back({"BEGIN", {}});
    into.push_back({sql::kFence, pg::Params().add(static_cast<std::int64_t>(epoch))});
  }

  static void fenced_or_not(pg::Connection& db, const pg::Result& fence, std::uint64_t epoch) {
    if (fence.rows() == 1) return;
    db.run("ROLLBACK");
    throw Fenced(fmt::format(
        "this server no longer leads (epoch {} was taken over): nothing was written", epoch));
  }

  // The whole group in one transaction and two round trips: its changes,
  // then COMMIT once their answers are checked. False (and nothing written)
  // when a batch's changes failed.
  bool commit_together(pg::Connection& db, std::uint64_t epoch,
                       const std::vector<const Batch*>& batches) {
    Batch merged;
    for (const Batch* batch : batches) {
      merged.new_flows.insert(merged.new_flows.end(), batch->new_flows.begin(),
                              batch->new_flows.end());
      merged.new_jobs.insert(merged.new_jobs.end(), batch->new_jobs.begin(), batch->new_jobs.end());
      merged.state_changes.insert(merged.state_changes.end(), batch->state_changes.begin(),
                                  batch->state_changes.end());
      merged.attempts.insert(merged.attempts.end(), batch->attempts.begin(), batch->attempts.end());
      if (batch->epoch) merged.epoch = batch->epoch;
    }
    std::vector<pg::Statement> statements;
    begin(epoch, statements);
    Writes writes;
    add_writes(merged, writes);
    for (const Batch* batch : batches)  // in order: a schedule put, then removed, is gone
      add_writes(Batch{.schedules = batch->schedules,
                       .removed_schedules = batch->removed_schedules,
                       .queues = batch->queues},
                 writes);
    std::vector<std::pair<const Batch*, std::size_t>> expiries;  // and their statements' indexes
    for (const Batch* batch : batches)
      if (batch->expiry) {
        add_writes(Batch{.expiry = batch->expiry}, writes);
        expiries.push_back({batch, writes.expiry_at.back()});
      }
    std::size_t first_write = statements.size();
    for (pg::Statement& statement : writes.statements) statements.push_back(std::move(statement));
    std::vector<pg::Result> answers;
    try {
      answers = db.pipeline(statements);
    } catch (const pg::Error& error) {
      if (error.connection_lost) throw;
      db.run("ROLLBACK");
      return false;
    }
    fenced_or_not(db, answers[1], epoch);
    if (writes.change_at && answers[first_write + *writes.change_at].affected() !=
                                static_cast<std::int64_t>(writes.changed_jobs)) {
      db.run("ROLLBACK");
      return false;
    }
    db.run("COMMIT");
    for (auto [batch, at] : expiries)
      if (batch->expired) *batch->expired = removed_counts(answers[first_write + at]);
    return true;
  }

  // Each batch under a savepoint, as SQLite's store does: a bad one is
  // undone alone, the others commit together.
  void commit_one_by_one(pg::Connection& db, std::uint64_t epoch,
                         const std::vector<const Batch*>& batches,
                         std::vector<std::string>& errors) {
    std::vector<pg::Statement> opening;
    begin(epoch, opening);
    std::vector<pg::Result> opened = db.pipeline(opening);
    fenced_or_not(db, opened[1], epoch);
    std::vector<std::vector<Count>> removed(batches.size());
    for (std::size_t i = 0; i < batches.size(); ++i) {
      Writes writes;
      add_writes(*batches[i], writes);
      db.run("SAVEPOINT batch");
      try {
        std::vector<pg::Result> answers = db.pipeline(writes.statements);
        if (writes.change_at && answers[*writes.change_at].affected() !=
                                    static_cast<std::int64_t>(writes.changed_jobs)) {
          pg::Result unknown =
              db.run(sql::kFirstUnknownJob, pg::Params().add(writes.changed_ids.literal()));
          throw std::runtime_error(fmt::format("no job {}", unknown.text(0, 0)));
        }
        for (std::size_t at : writes.expiry_at) removed[i] = removed_counts(answers[at]);
        db.run("RELEASE batch");
      } catch (const pg::Error& error) {
        if (error.connection_lost) throw;
        errors[i] = error.what();
        db.run("ROLLBACK TO batch");
        db.run("RELEASE batch");
      } catch (const std::runtime_error& error) {
        errors[i] = error.what();
        db.run("ROLLBACK TO batch");
        db.run("RELEASE batch");
      }
    }
    db.run("COMMIT");
    for (std::size_t i = 0; i < batches.size(); ++i)
      if (errors[i].empty() && batches[i]->expired && batches[i]->expiry)
        *batches[i]->expired = removed[i];
  }

  Snapshot read_snapshot(pg::Connection& db) {
    Snapshot snapshot;
    // One consistent picture: every read under one snapshot of the database.
    db.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    db.each_row(fmt::format("SELECT {} FROM jobs WHERE ended_ms = 0 ORDER BY id", sql::kJobColumns),
                {}, [&](const pg::Result& row) { snapshot.jobs.push_back(job_row(row, 0)); });
    db.each_row(fmt::format("SELECT {} FROM attempts WHERE job_id IN (SELECT id FROM jobs WHERE "
                            "ended_ms = 0) ORDER BY job_id, number",
                            sql::kAttemptColumns),
                {},
                [&](const pg::Result& row) { snapshot.attempts.push_back(attempt_row(row, 0)); });
    pg::Result counts = db.run("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state");
    for (int row = 0; row < counts.rows(); ++row)
      snapshot.counts.push_back({std::string(counts.text(row, 0)), std::string(counts.text(row, 1)),
                                 static_cast<std::uint64_t>(counts.integer(row, 2))});
    std::uint64_t removed_up_to = 0, flows_removed_up_to = 0;
    pg::Result server = db.run("SELECT name, value FROM server");
    for (int row = 0; row < server.rows(); ++row) {
      if (server.text(row, 0) == "epoch")
        snapshot.epoch = static_cast<std::uint64_t>(server.integer(row, 1));
      if (server.text(row, 0) == "removed_up_to")
        removed_up_to = static_cast<std::uint64_t>(server.integer(row, 1));
      if (server.text(row, 0) == "flows_removed_up_to")
        flows_removed_up_to = static_cast<std::uint64_t>(server.integer(row, 1));
    }
    auto highest = static_cast<std::uint64_t>(db.run("SELECT max(id) FROM jobs").integer(0, 0));
    snapshot.next_id = std::max(highest, removed_up_to) + 1;
    auto highest_flow =
        static_cast<std::uint64_t>(db.run("SELECT max(id) FROM flows").integer(0, 0));
    snapshot.next_flow = std::max(highest_flow, flows_removed_up_to) + 1;
    pg::Result schedules =
        db.run("SELECT name, spec, paused, next_ms, created_ms FROM schedules ORDER BY name");
    for (int row = 0; row < schedules.rows(); ++row)
      snapshot.schedules.push_back(
          {std::string(schedules.text(row, 0)), std::string(schedules.text(row, 1)),
           schedules.text(row, 2) == "t", schedules.integer(row, 3), schedules.integer(row, 4)});
    pg::Result queues = db.run("SELECT name, settings FROM queues ORDER BY name");
    for (int row = 0; row < queues.rows(); ++row)
      snapshot.queues.push_back(
          {std::string(queues.text(row, 0)), std::string(queues.text(row, 1))});
    db.run("COMMIT");
    return snapshot;
  }

  // Runs `read` on the calling thread's reading connection, opened on first
  // use (and again after it broke); failures become std::runtime_error.
  template <class Read>
  auto reading(Read read) -> decltype(read(std::declval<pg::Connection&>())) {
    for (int attempt = 0;; ++attempt) {
      try {
        if (!reader_ || reader_->broken()) {
          reader_.reset();
          reader_.emplace(url_, postgres::kConnectTimeout,
                          "SET application_name = 'ferry server (reader)'; "
                          "SET default_transaction_read_only = on; SET statement_timeout = '30s'");
        }
        return read(*reader_);
      } catch (const pg::Error& error) {
        // A connection the database closed (it restarted, say): once more on a new one.
        if (error.connection_lost && attempt == 0) continue;
        throw std::runtime_error(
            fmt::format("cannot read database {}: {}", pg::redacted(url_), error.what()));
      }
    }
  }

  std::string url_;
  PostgresOptions options_;
  std::atomic<std::uint64_t> epoch_{0};   // set by lead(), read by the writer thread
  std::atomic<bool> deposed_{false};      // a transaction found another epoch leading
  std::optional<pg::Connection> writer_;  // the writer thread's
  std::optional<pg::Connection> reader_;  // the reading thread's
};

}  // namespace

bool is_postgres_url(const std::string& where) {
  return where.rfind("postgresql://", 0) == 0 || where.rfind("postgres://", 0) == 0;
}

std::unique_ptr<Store> open_postgres_store(const std::string& url, PostgresOptions options) {
  return std::make_unique<PostgresStore>(url, options);
}

std::string redacted(const std::string& where) { return pg::redacted(where); }

std::unique_ptr<Store> open_store(const std::string& where, PostgresOptions options) {
  if (is_postgres_url(where)) return open_postgres_store(where, options);
  return open_sqlite_store(where);
}

}  // namespace ferry::store
