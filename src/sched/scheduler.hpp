// ferry::sched — the scheduler, a deterministic state machine.
//
// It owns the jobs' scheduling state: which job may run next, who holds it
// under which lease, when a failed job is retried, and each job's history of
// attempts. It does no I/O, starts no threads and reads no clock: every call
// carries the current time. The same sequence of calls always gives the same
// decisions, so tests can drive days of scheduling in a millisecond.
//
// Job life: waiting (delayed or backing off) -> queued -> running ->
// succeeded | failed | cancelled. A failed attempt with retries left goes back
// to waiting until its backoff passes; a lease that expires (the holder went
// silent) puts the job back in its queue as a new attempt without spending a
// retry. Completions carry the lease token; a stale one is ignored and counted,
// so a job is recorded as finished exactly once.
//
// Callers learn what changed from take_changes(), in order.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sched/id_map.hpp"
#include "sched/ready_queue.hpp"

namespace ferry::sched {

// Milliseconds since an epoch of the caller's choosing.
using Time = std::chrono::milliseconds;

enum class State : std::uint8_t { waiting, queued, running, succeeded, failed, cancelled };
std::string_view name(State state);
bool is_final(State state);

struct RetryPolicy {
  int max_retries = 0;           // attempts beyond the first
  Time backoff{1000};            // delay before the first retry; doubles for each further one
  Time max_backoff{5 * 60'000};  // the doubling stops here
};

// The delay after the `failures`-th failed attempt (failures >= 1).
Time retry_delay(const RetryPolicy& policy, int failures);

struct JobOptions {
  std::string queue = "default";
  int priority = 0;  // higher runs first
  RetryPolicy retry;
  Time not_before{0};  // waiting until then
  // At most `per_key` running jobs of its queue's group share a key ("": none).
  std::string concurrency_key;
};

// Jobs started per period: `count` every `per`.
struct Rate {
  std::uint32_t count = 0;
  Time per{1000};
  bool operator==(const Rate&) const = default;
};

// What starts of a group's jobs: none while paused; at most `max_running`
// at a time; at the `rate`, from a token bucket holding up to `burst`
// tokens (0: rate.count), full when the rate is first set; and at most
// `per_key` running jobs with one concurrency key. A lease that ends,
// expires or is released frees its place at once; changed limits stop no
// running job.
struct GroupLimits {
  bool paused = false;
  std::optional<std::uint32_t> max_running;
  std::optional<Rate> rate;
  std::uint32_t burst = 0;
  std::uint32_t per_key = 1;
  bool operator==(const GroupLimits&) const = default;
};

enum class AttemptEnd : std::uint8_t { running, succeeded, failed, lease_expired, cancelled };
std::string_view name(AttemptEnd end);

struct Attempt {
  int number = 0;  // 1-based
  std::uint64_t lease = 0;
  std::string worker;
  Time started{0};
  Time ended{0};
  AttemptEnd end = AttemptEnd::running;
  std::string reason;
};

// When a job with dependencies runs. `success`: once each of them succeeded;
// `end`: once each ended, whatever the outcome; `failure`: once each failed
// or was cancelled; `one_success` / `one_failed`: once all ended, if at least
// one of them succeeded / did not. Otherwise it is skipped. The first three
// decide as soon as one outcome settles it; the last two when all ended.
enum class AfterPolicy : std::uint8_t { success, end, failure, one_success, one_failed };

struct Job {
  JobId id = 0;
  JobOptions options;
  State state = State::waiting;
  // The jobs it runs after. While its policy cannot decide, the job waits;
  // when the outcomes rule it out it ends as cancelled, without running
  // ("skipped"), and so on downstream.
  std::vector<JobId> after;
  AfterPolicy after_policy = AfterPolicy::success;
  std::uint32_t unmet = 0;            // dependencies still to end
  std::uint32_t after_succeeded = 0;  // dependencies that ended and succeeded
  bool skipped = false;               // cancelled because a dependency could not succeed
  bool held_by_key = false;           // queued, but its concurrency key is at its limit
  std::uint32_t retry_base = 0;       // attempts before this index were before a manual retry
  Time ready_at{0};                   // when a waiting job becomes queued
  std::optional<Time> lease_expires;  // while running under an expiring lease
  std::string reason;                 // why it ended, for failed and cancelled jobs
  std::vector<Attempt> attempts;

  int failures() const;  // failed attempts since retry_base: they spend retries
};

// How the scheduler learns how a dependency it no longer holds ended (it
// was forgotten): its final state, or none when there is no such job.
using EndedState = std::function<std::optional<State>(JobId)>;

struct Lease {
  JobId job = 0;
  std::uint64_t token = 0;
  int attempt = 0;
  std::optional<Time> expires;  // nullopt: held until completed
};

struct Change {
  JobId job;
  State from;
  State to;
};

enum class Completion { recorded, stale };

// What holds a queued job back, as far as the scheduler knows: its group's
// limits (GroupLimits), first the one that would still hold it if the
// others were lifted, or its concurrency key's; none: it waits for a worker.
enum class Hold : std::uint8_t { none, paused, max_running, key, rate };

struct Counts {
  std::size_t by_state[6] = {};
  std::uint64_t stale_completions = 0;
  std::size_t operator[](State state) const { return by_state[static_cast<int>(state)]; }
  std::size_t total() const;
  std::size_t final() const;
};

class Scheduler {
 public:
  JobId submit(JobOptions options, Time now);

  // Adds a job whose id the caller chose (one this scheduler does not hold),
  // in the state it had: for jobs that became durable, for rebuilding after
  // a restart, and for an ended job brought back to be retried. A job that
  // was running gets a new attempt: its open one ends lease_expired ("server
  // restarted") and the job is queued again, without spending a retry.
  // Arriving in the state it had is no change (take_changes() does not list
  // it); what follows from it is (a waiting job whose dependencies all ended
  // is queued, one whose dependency failed is skipped).
  // Its dependencies are resolved here: those held that have not ended hold
  // it back; those ended (held or, through `ended`, not) let it go or skip it.
  void admit(Job job, Time now, const EndedState& ended_state = {});
  // Many at once, depending on each other in any order (a batch, a restart).
  void admit(std::vector<Job> jobs, Time now, const EndedState& ended_state = {});

  // Puts jobs skipped because a dependency could not succeed back to
  // waiting on their dependencies (after such a dependency was retried), as
  // if admitted anew. Jobs held that were not skipped are left alone.
  void unskip(const std::vector<JobId>& ids, Time now, const EndedState& ended_state = {});

  // Lets go of an ended job (its record lives on elsewhere, in the store):
  // memory follows the work in flight, not the work ever done. False for a
  // job that is not here or has not ended.
  bool forget(JobId job);

  // The jobs of `queue` count against the limits of `group` (a queue not
  // put in a group is a group of its own). Before the queue's first job.
  void set_group(std::string_view queue, std::string_view group);
  // Sets a group's limits (see GroupLimits), from `now` on.
  void set_limits(std::string_view group, GroupLimits limits, Time now);
  // nullptr: a group never given limits (none apply but the per-key one).
  const GroupLimits* limits(std::string_view group) const;
  std::uint32_t running_in(std::string_view group) const;

  // Takes the best queued job its group's limits let start, from `queues`
  // (all queues when empty), and leases it to `worker` for `lease_for`
  // (nullopt: no expiry).
  std::optional<Lease> lease(Time now, std::string_view worker, std::optional<Time> lease_for,
                             std::span<const std::string> queues = {});

  // Extends a live lease; false when the token is stale.
  bool renew(JobId job, std::uint64_t token, Time now, Time lease_for);

  // Hands a queued job back to the holder of a lease that outlived a reload
  // of this state (the store refused a write and the state was rebuilt from
  // it): the job runs again under `attempt`, with its token and worker, as
  // its next attempt, until `expires`. False when the job is not queued.
  bool resume_lease(JobId job, Attempt attempt, std::optional<Time> expires);

  // Ends a live lease its holder never received (its connection was gone):
  // the job is queued again at once, without spending a retry. False when
  // the token is stale.
  bool release(JobId job, std::uint64_t token, Time now, std::string reason);

  // Records the end of the attempt holding `token`. A stale token is ignored,
  // and counted when it is one this scheduler handed out.
  Completion complete(JobId job, std::uint64_t token, bool succeeded, std::string reason, Time now);

  // Cancels a job that has not ended; a running attempt ends as cancelled (the
  // caller stops the process on seeing the running -> cancelled change).
  bool cancel(JobId job, std::string reason, Time now);

  // Runs a failed or cancelled job again, with a fresh retry budget; false
  // for any other job.
  bool retry(JobId job, Time now);

  // Moves time forward: waiting jobs whose time came are queued, expired
  // leases put their jobs back, rate limits earn their tokens.
  void advance(Time now);

  // The earliest time at which advance() would change something (or a
  // rate-limited group have a token again). It may come early, once for
  // each lease renewed: advance() then finds it renewed.
  std::optional<Time> next_wakeup() const;

  const Job* find(JobId job) const;
  // Hold::none for a job not queued. The rate is as of the last advance().
  Hold hold_of(JobId job) const;
  // The running jobs whose lease expires, by id.
  std::vector<JobId> leased() const;
  // The jobs held, by state.
  const Counts& counts() const { return counts_; }
  // Lease tokens from now on are at least `base` (a server start reserves a
  // range no earlier run used).
  void reserve_tokens_from(std::uint64_t base) { next_token_ = std::max(next_token_, base); }
  std::uint64_t next_token() const { return next_token_; }
  bool all_final() const { return counts_.final() == counts_.total(); }
  std::vector<Change> take_changes();

 private:
  Job* get(JobId job);
  void set_state(Job& job, State state);
  void make_ready(Job& job, Time now);  // queued now, or waiting until ready_at
  void enqueue(Job& job);               // in its queue's ready jobs
  void unqueue(Job& job);               // out of them, or of those held by their key
  void finish_attempt(Job& job, AttemptEnd end, std::string reason, Time now);
  // admit() in two steps: held first (waiting, on nothing yet), then put in
  // the state it had, its dependencies resolved.
  Job& place(Job job);
  void settle(Job& job, State state, Time now, const EndedState& ended_state);
  void settle_into(Job& job, State state, Time now, const EndedState& ended_state);
  // Counts `job`'s dependencies that have not ended, and holds it back on
  // them; false when one that ended skips it.
  bool resolve_dependencies(Job& job, const EndedState& ended_state);
  // Counts an ended dependency of `job`; why its outcome rules the job out,
  // if it does.
  static std::optional<std::string> rules_out(Job& job, JobId dependency, State state);
  // Why the outcomes rule `job` out once all its dependencies ended, if so.
  static std::optional<std::string> rules_out_at_end(const Job& job);
  void skip(Job& job, std::string reason);
  // A job ended: its dependants move on, or are skipped in turn.
  void ended(JobId job, Time now);

  // A group's limits and what they count. Tokens are kept in units of
  // 1/rate.per ms of a token (each millisecond adds rate.count units), so
  // the bucket is exact.
  struct Group {
    std::optional<GroupLimits> limits;
    std::uint32_t running = 0;
    std::int64_t units = 0;
    Time refilled{0};
    std::unordered_map<std::string, std::uint32_t> running_by_key;
    // Queued jobs whose key was at its limit when they came up, by key.
    std::unordered_map<std::string, ReadyQueue> held_by_key;
    bool admits() const;  // whether a job of it may start now
    void refill(Time now);
    std::optional<Time> next_token() const;
  };
  Group& group_of(const Job& job);
  Group& group_named(std::string_view name);
  void started(Job& job);
  void stopped(Job& job);
  // Puts jobs held by their key back among the ready ones, up to `how_many`.
  void release_held(Group& group, std::string_view key, std::size_t how_many);
  struct Queue {
    ReadyQueue ready;
    Group* group = nullptr;
  };
  struct LeaseEntry {
    Time expires;  // at or before the lease's end: a renewal only moves the job's lease_expires
    JobId job;
    std::uint64_t token;
    bool operator>(const LeaseEntry& other) const { return expires > other.expires; }
  };
  // The lease expiry index (expiring_, below): a lease is put in when it starts
  // and again when a renewal makes it sooner; entries go when they come up.
  void index_lease(const Job& job, Time expires);
  bool is_live(const LeaseEntry& entry) const;  // its lease still runs
  void drop_stale_leases();

  // The jobs held, by id: those not ended, and ended ones not yet forgotten.
  // A job never moves while it is held.
  IdMap<Job> jobs_;
  JobId next_id_ = 1;  // for submit()
  std::map<std::string, Queue, std::less<>> queues_;
  std::map<std::string, Group, std::less<>> groups_;  // nodes: queues point to them
  std::set<std::pair<Time, JobId>> delayed_;          // waiting jobs by ready_at
  // Running jobs' leases, soonest first (a binary heap). A heartbeat costs
  // no reordering, and an ended lease no search: its entry stays, stale,
  // until it comes up, or all stale ones go at once when they outnumber the
  // live. The top is always live, so next_wakeup() is not early for them.
  std::vector<LeaseEntry> expiring_;
  std::size_t expiring_leases_ = 0;                           // running jobs with lease_expires
  std::unordered_map<JobId, std::vector<JobId>> dependants_;  // of jobs that have not ended
  std::uint64_t next_token_ = 1;
  Counts counts_;
  std::vector<Change> changes_;
};

}  // namespace ferry::sched
