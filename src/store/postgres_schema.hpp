// The PostgreSQL store's SQL, all of it in one place (docs/store.md is the
// contract).
//
// Schema versions mean the same tables as in the SQLite store: migration i
// here takes a database to the version SQLite's migration i does. To add a
// table or a column: append a migration to both stores; add the column to
// the column list and to the statement that writes it below (an unnest()
// parameter per column: one statement writes every row of a group commit).
// Nothing else here names a column.
//
// `leadership` and `ferry_schema` are outside the versions: every server,
// standbys included, needs them before it may migrate, and their form never
// changes.
#pragma once

#include <cstdint>
#include <iterator>

namespace ferry::store::postgres {

// Made (if missing) by every server on start, under kBootstrapLock.
inline constexpr const char* kBootstrap = R"sql(
  CREATE TABLE IF NOT EXISTS leadership (
    id         integer     PRIMARY KEY CHECK (id = 1),
    epoch      bigint      NOT NULL,
    holder     text        NOT NULL,
    url        text        NOT NULL,
    expires_at timestamptz NOT NULL
  );
  INSERT INTO leadership VALUES (1, 0, '', '', '-infinity') ON CONFLICT (id) DO NOTHING;
  CREATE TABLE IF NOT EXISTS ferry_schema (version integer NOT NULL);
  INSERT INTO ferry_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM ferry_schema);
)sql";

// Advisory lock keys (pg_advisory_lock(kLockSpace, n)): bootstrap and
// migrations run one server at a time; the leader of epoch E holds
// (kLockSpace, kLeaderLocks + E mod 2^30) for as long as its session lives.
inline constexpr std::int32_t kLockSpace = 0x66657279;  // "fery"
inline constexpr std::int32_t kBootstrapLock = 1;
inline constexpr std::int32_t kMigrationLock = 2;
inline constexpr std::int32_t kLeaderLocks = 1 << 30;

// Tables a database must not have unless it is ferry's.
inline constexpr const char* kOurTables[] = {"jobs", "attempts", "server", "dependencies", "flows"};

// Each entry takes the schema from version i to i + 1, as SQLite's does.
// Append, never edit.
inline constexpr const char* kMigrations[] = {
    // 1: jobs and their attempts. "end" is quoted: a keyword in PostgreSQL.
    R"sql(
      CREATE TABLE jobs (
        id          bigint  PRIMARY KEY,
        queue       text    NOT NULL,
        priority    integer NOT NULL,
        spec        text    NOT NULL,
        state       text    NOT NULL,
        created_ms  bigint  NOT NULL,
        ready_at_ms bigint  NOT NULL,
        reason      text    NOT NULL DEFAULT '',
        retry_base  bigint  NOT NULL DEFAULT 0
      );
      CREATE TABLE attempts (
        job_id      bigint  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        number      integer NOT NULL,
        lease       bigint  NOT NULL,
        worker      text    NOT NULL,
        started_ms  bigint  NOT NULL,
        ended_ms    bigint  NOT NULL,
        "end"       text    NOT NULL,
        reason      text    NOT NULL,
        exit_code   integer,
        signal      integer,
        stdout_tail text    NOT NULL,
        stderr_tail text    NOT NULL,
        result      text    NOT NULL,
        cpu_us      bigint  NOT NULL,
        max_rss_kb  bigint  NOT NULL,
        PRIMARY KEY (job_id, number)
      );
      CREATE TABLE server (
        name  text   PRIMARY KEY,
        value bigint NOT NULL
      );
    )sql",
    // 2: keys, ended_ms and keep_ms, the partial indexes of ended jobs, and
    // (PostgreSQL only) one of unfinished jobs, which a new leader reads;
    // flows: a job's flow, whether it was skipped, its dependencies.
    R"sql(
      ALTER TABLE jobs ADD COLUMN key text;
      ALTER TABLE jobs ADD COLUMN ended_ms bigint NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN keep_ms bigint;
      UPDATE jobs SET ended_ms = coalesce(
          (SELECT max(ended_ms) FROM attempts WHERE job_id = jobs.id), created_ms)
        WHERE state IN ('succeeded', 'failed', 'cancelled');
      CREATE UNIQUE INDEX jobs_by_key ON jobs (key) WHERE key IS NOT NULL;
      CREATE INDEX jobs_ended ON jobs (state, id) WHERE ended_ms > 0;
      CREATE INDEX jobs_ended_at ON jobs (ended_ms) WHERE ended_ms > 0;
      CREATE INDEX jobs_kept_until ON jobs ((ended_ms + keep_ms)) WHERE keep_ms > 0 AND ended_ms > 0;
      CREATE INDEX jobs_unfinished ON jobs (id) WHERE ended_ms = 0;
      ALTER TABLE jobs ADD COLUMN flow_id bigint;
      ALTER TABLE jobs ADD COLUMN skipped boolean NOT NULL DEFAULT false;
      CREATE TABLE dependencies (
        job_id   bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        after_id bigint NOT NULL,
        PRIMARY KEY (job_id, after_id)
      );
      CREATE INDEX dependencies_by_after ON dependencies (after_id);
      CREATE TABLE flows (
        id         bigint PRIMARY KEY,
        name       text   NOT NULL,
        key        text,
        created_ms bigint NOT NULL,
        first_job  bigint NOT NULL,
        jobs       bigint NOT NULL
      );
      CREATE UNIQUE INDEX flows_by_key ON flows (key) WHERE key IS NOT NULL;
    )sql",
    // 3: schedules, which the leader fires.
    R"sql(
      CREATE TABLE schedules (
        name       text    PRIMARY KEY,
        spec       text    NOT NULL,
        paused     boolean NOT NULL,
        next_ms    bigint  NOT NULL,
        created_ms bigint  NOT NULL
      );
    )sql",
    // 4: queue settings (pause, limits), which the leader applies.
    R"sql(
      CREATE TABLE queues (
        name     text PRIMARY KEY,
        settings text NOT NULL
      );
    )sql",
};
inline constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// --- Reading ---------------------------------------------------------------

// Read back by job_row() and attempt_row(), in this order.
inline constexpr const char* kJobColumns =
    "id, queue, priority, spec, state, created_ms, ready_at_ms, reason, retry_base, "
    "coalesce(key, ''), ended_ms, keep_ms, coalesce(flow_id, 0), skipped";
inline constexpr int kJobColumnCount = 14;
inline constexpr const char* kFlowColumns =
    "id, name, coalesce(key, ''), created_ms, first_job, jobs";
inline constexpr const char* kAttemptColumns =
    R"(job_id, number, worker, started_ms, ended_ms, "end", reason, exit_code, signal, )"
    "stdout_tail, stderr_tail, result, cpu_us, max_rss_kb, lease";

// --- Writing: one statement per kind of change, every row of a group at once

// Every write transaction begins here: it goes on only while `epoch` ($1)
// leads, and holds the leadership row (KEY SHARE) until it ends, so a
// takeover (which takes the row FOR UPDATE) waits for it to end, and every
// transaction after the takeover finds another epoch and is rolled back.
inline constexpr const char* kFence =
    "SELECT 1 FROM leadership WHERE id = 1 AND epoch = $1 FOR KEY SHARE";

inline constexpr const char* kPutSchedule = R"sql(
  INSERT INTO schedules (name, spec, paused, next_ms, created_ms)
  VALUES ($1, $2, $3::boolean, $4::bigint, $5::bigint)
  ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, paused = excluded.paused,
    next_ms = excluded.next_ms, created_ms = excluded.created_ms
)sql";

inline constexpr const char* kRemoveSchedule = "DELETE FROM schedules WHERE name = $1";

inline constexpr const char* kPutQueue = R"sql(
  INSERT INTO queues (name, settings) VALUES ($1, $2)
  ON CONFLICT (name) DO UPDATE SET settings = excluded.settings
)sql";

inline constexpr const char* kInsertFlows = R"sql(
  INSERT INTO flows (id, name, key, created_ms, first_job, jobs)
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                       $6::bigint[])
)sql";

inline constexpr const char* kInsertJobs = R"sql(
  INSERT INTO jobs (id, queue, priority, spec, state, created_ms, ready_at_ms, reason,
                    retry_base, key, ended_ms, keep_ms, flow_id, skipped)
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::text[],
                       $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[],
                       $11::bigint[], $12::bigint[], $13::bigint[], $14::boolean[])
)sql";

// After kInsertJobs: a new job's dependencies, a row each.
inline constexpr const char* kInsertDependencies = R"sql(
  INSERT INTO dependencies (job_id, after_id)
  SELECT * FROM unnest($1::bigint[], $2::bigint[])
)sql";

inline constexpr const char* kChangeStates = R"sql(
  UPDATE jobs SET state = c.state, ready_at_ms = c.ready_at_ms, reason = c.reason,
                  retry_base = c.retry_base, ended_ms = c.ended_ms, skipped = c.skipped
  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[],
              $7::boolean[])
    AS c (id, state, ready_at_ms, reason, retry_base, ended_ms, skipped)
  WHERE jobs.id = c.id
)sql";

// Of the ids ($1), the first that is no job: names what kChangeStates missed.
inline constexpr const char* kFirstUnknownJob =
    "SELECT c.id FROM unnest($1::bigint[]) AS c (id) "
    "WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = c.id) LIMIT 1";

inline constexpr const char* kPutAttempts = R"sql(
  INSERT INTO attempts (job_id, number, worker, started_ms, ended_ms, "end", reason, exit_code,
                        signal, stdout_tail, stderr_tail, result, cpu_us, max_rss_kb, lease)
  SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::bigint[], $5::bigint[],
                       $6::text[], $7::text[], $8::integer[], $9::integer[], $10::text[],
                       $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[])
  ON CONFLICT (job_id, number) DO UPDATE SET
    worker = excluded.worker, started_ms = excluded.started_ms, ended_ms = excluded.ended_ms,
    "end" = excluded."end", reason = excluded.reason, exit_code = excluded.exit_code,
    signal = excluded.signal, stdout_tail = excluded.stdout_tail,
    stderr_tail = excluded.stderr_tail, result = excluded.result, cpu_us = excluded.cpu_us,
    max_rss_kb = excluded.max_rss_kb, lease = excluded.lease
)sql";

inline constexpr const char* kSetEpoch =
    "INSERT INTO server (name, value) VALUES ('epoch', $1) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value";

// Retention: ended jobs whose time is up, oldest first, at most $3 of them —
// ended before $2 without a keep of their own ($2 NULL: none such), or whose
// own keep ran out by $1 — removed with their attempts and dependencies (ON
// DELETE CASCADE); a flow goes with the last of its jobs. Answers the
// removed jobs counted by queue and state; ids are never reused, so the
// highest removed job and flow are remembered.
//
// Every part of one statement sees the jobs as they were before it: a flow
// is empty when each of its jobs is gone already or removed here.
inline constexpr const char* kExpire = R"sql(
  WITH victims AS (
    SELECT id FROM (
      (SELECT id, 0 AS rule, ended_ms AS due FROM jobs
        WHERE $2::bigint IS NOT NULL AND ended_ms > 0 AND keep_ms IS NULL AND ended_ms <= $2
        ORDER BY ended_ms LIMIT $3)
      UNION ALL
      (SELECT id, 1, ended_ms + keep_ms FROM jobs
        WHERE keep_ms > 0 AND ended_ms > 0 AND ended_ms + keep_ms <= $1
        ORDER BY ended_ms + keep_ms LIMIT $3)
    ) due ORDER BY rule, due LIMIT $3
  ), removed AS (
    DELETE FROM jobs WHERE id IN (SELECT id FROM victims) RETURNING id, queue, state, flow_id
  ), emptied AS (
    DELETE FROM flows WHERE id IN (SELECT flow_id FROM removed WHERE flow_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id BETWEEN flows.first_job
                        AND flows.first_job + flows.jobs - 1
                        AND jobs.id NOT IN (SELECT id FROM removed))
    RETURNING id
  ), highest AS (
    INSERT INTO server (name, value)
      SELECT 'removed_up_to', max(id) FROM removed HAVING max(id) IS NOT NULL
      UNION ALL
      SELECT 'flows_removed_up_to', max(id) FROM emptied HAVING max(id) IS NOT NULL
    ON CONFLICT (name) DO UPDATE SET value = greatest(server.value, excluded.value)
  )
  SELECT queue, state, count(*) FROM removed GROUP BY queue, state
)sql";

}  // namespace ferry::store::postgres
