// A cluster of ferry servers and workers, simulated: 10,000 workers run
// 10,000,000 jobs while the leading server dies and a standby takes over,
// workers die, messages arrive late and some arrive twice.
//
// What runs is the real scheduler (sched::Scheduler), driven as the
// Service drives it; around it, in one thread and on a simulated clock:
// - the store, modelled by what it promises: a transaction (a group commit)
//   is all or nothing; submitted jobs, state changes and ended attempts are
//   kept once committed; leases are not (a running job stays queued there);
//   attempt rows are only appended; each server start stores a new epoch;
// - the leader: it handles lease requests (heartbeats, completions, new
//   leases) and submits, collects the scheduler's changes into the next
//   group commit, answers only after that commit, and forgets ended jobs
//   once their end is durable. It dies at random moments, losing what was
//   not committed; the next leader rebuilds from the store as
//   Service::start() does: unfinished jobs admitted with their stored
//   attempts, a new token epoch (epoch << 40) reserved;
// - workers: one or two slots each, one request in flight at a time
//   carrying results and heartbeats, long polls parked at the leader while
//   there is no work; they die (their leases expire) and come back;
// - the network: most messages take milliseconds, some take longer than a
//   lease, and some requests are delivered twice;
// - a client that submits in batches, keeping a bounded amount of work in
//   flight, and submits again what was never acknowledged.
//
// Invariants checked:
// - no acknowledged job is lost: at every takeover each one is in the store
//   and, unless it ended, held by the new leader; in the end each has a
//   final record;
// - no job ends twice: the store sees exactly one final record per job, and
//   an attempt is never written twice;
// - stale completions are ignored: the scheduler records a completion only
//   for the live lease of that job, told by an independent record of the
//   leases handed out, renewed and expired (duplicates, completions after
//   the lease expired, completions from before a takeover); lease tokens
//   never repeat, across leaders too;
// - every job ends, and the scheduler holds only the work in flight.
//
// The full size takes about 30 s in the release preset on 2 cores
// (docs/scaling.md). Builds with sanitizers or without optimization (the
// asan and debug presets) run 500,000 jobs on 1,000 workers instead, with
// the same faults (ASan runs it some twenty times slower).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sched/scheduler.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FERRY_SIM_SMALL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define FERRY_SIM_SMALL 1
#endif
#endif
#if !defined(FERRY_SIM_SMALL) && !defined(__OPTIMIZE__)
#define FERRY_SIM_SMALL 1
#endif

namespace ferry::sched {
namespace {

using Token = std::uint64_t;

#ifdef FERRY_SIM_SMALL
constexpr std::size_t kJobs = 500'000;
constexpr std::uint32_t kWorkers = 1'000;
#else
constexpr std::size_t kJobs = 10'000'000;
constexpr std::uint32_t kWorkers = 10'000;
#endif
constexpr int kLeaderChanges = 20;
constexpr int kTokenBits = 40;                   // as server::Service::kTokenBits
constexpr Time kLeaseFor{30'000};                // the Service's default lease
constexpr Time kHeartbeatEvery{10'000};          // a third of it
constexpr Time kLongPoll{30'000};                // the longest wait for work
constexpr Time kCommitEvery{5};                  // one group commit per tick
constexpr Time kRetryAfter{200};                 // a worker whose request failed
constexpr std::size_t kInFlight = 2 * kWorkers;  // jobs submitted and not ended, at most
constexpr std::size_t kSubmitBatch = 100;
constexpr int kWorkerDeathOneIn = 5000;    // per finished job, while jobs are being submitted
constexpr Time kGiveUpAfter{10 * 60'000};  // without any job ending: something is stuck

// What one invariant saw go wrong: the first few are reported as they happen.
struct Violations {
  const char* invariant;
  std::uint64_t count = 0;
  void operator()(const std::string& what) {
    if (++count <= 3) ADD_FAILURE() << invariant << ": " << what;
  }
};

// The store, as the Service sees it (store::Store): what a committed batch
// holds is kept, whole. It keeps unfinished jobs with their ended attempts
// (what a new leader loads) and, of each ended job, how many final records
// it got: the record itself lives on in the real store until retention.
// Laid out for speed: a small record per id, and the rows of unfinished
// jobs in a vector whose freed places are reused.
class DurableStore {
 public:
  struct StateChange {
    JobId job;
    State state;
    Time ready_at;
    std::uint32_t retry_base;
    std::string reason;
    std::optional<Attempt> attempt;  // the attempt that ended with it, written with it
  };
  struct Batch {
    struct Submitted {
      JobId id;
      Time ready_at;             // queued when not later
      std::uint32_t submission;  // the client's: which of its submits this job is from
    };
    std::vector<Submitted> submitted;
    std::vector<StateChange> changes;
  };
  struct Row {
    JobId id = 0;  // 0: a free place
    State state = State::queued;
    Time ready_at{0};
    std::uint32_t retry_base = 0;
    std::string reason;
    std::vector<Attempt> attempts;
  };

  explicit DurableStore(Violations& ended_twice) : ended_twice_(ended_twice) {
    records_.reserve(kJobs + 1);
    rows_.reserve(2 * kInFlight);
  }

  void commit(Batch& batch) {
    for (auto [id, ready_at, submission] : batch.submitted) {
      if (id >= records_.size()) records_.resize(id + 1);
      Record& record = records_[id];
      record = {submission, place_row(), kUnfinished};
      Row& row = rows_[record.row];
      row.id = id;
      row.ready_at = ready_at;
      row.state = ready_at > Time{0} ? State::waiting : State::queued;
      next_id_ = std::max(next_id_, id + 1);
    }
    for (StateChange& change : batch.changes) {
      if (!kept(change.job)) {
        ended_twice_("a change of job " + std::to_string(change.job) + ", never stored");
        continue;
      }
      Record& record = records_[change.job];
      Row* row = record.row == kNoRow ? nullptr : &rows_[record.row];
      if (change.attempt) {
        if (!row) {
          ended_twice_("an attempt of job " + std::to_string(change.job) +
                       ", which ended, was written");
        } else {
          // The primary key (job_id, number): attempts are appended, never rewritten.
          std::vector<Attempt>& attempts = row->attempts;
          if (change.attempt->number != static_cast<int>(attempts.size()) + 1)
            ended_twice_("job " + std::to_string(change.job) + ": attempt " +
                         std::to_string(change.attempt->number) + " written after " +
                         std::to_string(attempts.size()));
          attempts.push_back(std::move(*change.attempt));
        }
      }
      if (is_final(change.state)) {
        if (++record.stored > kUnfinished + 1)
          ended_twice_("job " + std::to_string(change.job) + " recorded as ended twice");
        if (row) {
          *row = {};
          free_rows_.push_back(record.row);
          record.row = kNoRow;
        }
        continue;
      }
      if (!row) {
        ended_twice_("job " + std::to_string(change.job) + " changed after it ended");
        continue;
      }
      row->state = change.state;
      row->ready_at = change.ready_at;
      row->retry_base = change.retry_base;
      row->reason = std::move(change.reason);
    }
  }

  // A server start: its epoch is stored before it serves.
  std::uint64_t begin_epoch() { return ++epoch_; }

  std::size_t unfinished() const { return rows_.size() - free_rows_.size(); }
  template <class Visit>
  void for_each_unfinished(Visit visit) const {
    for (const Row& row : rows_)
      if (row.id != 0) visit(row);
  }
  JobId next_id() const { return next_id_; }
  bool kept(JobId id) const { return id < records_.size() && records_[id].stored != kNotStored; }
  // Which submit the stored job `id` came from (ids never stored may be reused).
  std::uint32_t submission(JobId id) const { return kept(id) ? records_[id].submission : 0; }
  int final_records(JobId id) const { return kept(id) ? records_[id].stored - kUnfinished : 0; }
  JobId highest_id() const { return records_.size() - 1; }

 private:
  static constexpr std::uint32_t kNoRow = ~std::uint32_t{0};
  // Not stored, or stored and how many final records it got (kUnfinished + n).
  static constexpr std::uint8_t kNotStored = 0, kUnfinished = 1;
  struct Record {
    std::uint32_t submission = 0;
    std::uint32_t row = kNoRow;  // in rows_, while unfinished
    std::uint8_t stored = kNotStored;
  };
  std::uint32_t place_row() {
    if (free_rows_.empty()) {
      rows_.emplace_back();
      return static_cast<std::uint32_t>(rows_.size() - 1);
    }
    std::uint32_t index = free_rows_.back();
    free_rows_.pop_back();
    return index;
  }

  Violations& ended_twice_;
  std::vector<Record> records_;  // by id
  std::vector<Row> rows_;
  std::vector<std::uint32_t> free_rows_;
  JobId next_id_ = 1;
  std::uint64_t epoch_ = 0;
};

// Every job's spec never changes: derived from its id, as the store would
// hand it back.
JobOptions options_of(JobId id) {
  JobOptions options;
  options.queue = id % 4 == 0 ? "other" : "default";
  options.priority = static_cast<int>(id % 3);
  options.retry.max_retries = static_cast<int>(id % 3);
  options.retry.backoff = Time{100};
  return options;
}

struct Report {
  JobId job;
  Token token;
  bool succeeded;
};
struct Held {
  JobId job;
  Token token;
};

// A lease request and, once handled, its answer.
struct Message {
  std::uint32_t worker = 0;
  std::uint32_t generation = 0;  // of the worker: a worker that died and came back is new
  std::uint32_t request = 0;     // the worker's count of requests; 0: a duplicate delivery
  int free_slots = 0;
  Time wait{0};
  std::vector<Report> completions;
  std::vector<Held> heartbeats;
  std::vector<Token> acknowledged;
  std::vector<Held> jobs;
  std::vector<Token> stop;
  bool parked = false;
  std::uint64_t serial = 0;  // tells apart the uses of one slot
};

struct Worker {
  std::uint32_t generation = 0;
  std::uint32_t request = 0;  // the one in flight, or the last
  bool waiting = false;       // for the answer to `request`
  bool alive = true;
  int slots = 1;
  std::vector<Held> running;
  std::vector<Report> unacknowledged;
};

enum class Kind : std::uint8_t {
  tick,  // the leader: advance, group commit, answers
  leader_dies,
  leader_starts,    // a standby took over: rebuild
  request_arrives,  // message at the leader
  answer_arrives,   // message back at its worker
  request_failed,   // message: the connection broke
  park_ends,        // message: its long poll is over
  job_done,         // worker, job, token
  poll,             // worker: heartbeat, or try again (job = the request it follows)
  worker_returns,
  client_submits,
};

struct Event {
  Time at;
  Kind kind;
  std::uint32_t worker = 0;
  std::uint32_t generation = 0;
  std::uint32_t message = 0;
  JobId job = 0;
  Token token = 0;
};

// Events by time: those of the next few seconds in one bucket per
// millisecond (most events: messages and short jobs), later ones in a heap
// until their time comes near. Taking the next event is then O(1) for most.
// Events of one millisecond come in a fixed order, so a run is repeatable.
class Timeline {
 public:
  void push(const Event& event) {
    if (event.at - now_ < Time{kSpan}) {
      buckets_[index(event.at)].push_back(event);
    } else {
      later_.push({event.at, sequence_++, event});
    }
    ++size_;
  }
  // The next event (size() > 0).
  Event pop() {
    for (;;) {
      std::vector<Event>& bucket = buckets_[index(now_)];
      if (next_ < bucket.size()) {
        --size_;
        return bucket[next_++];
      }
      bucket.clear();
      next_ = 0;
      now_ += Time{1};
      while (!later_.empty() && later_.top().at - now_ < Time{kSpan}) {
        buckets_[index(later_.top().at)].push_back(later_.top().event);
        later_.pop();
      }
    }
  }
  std::size_t size() const { return size_; }

 private:
  static constexpr std::int64_t kSpan = 16384;  // ms: past a heartbeat's wait
  static std::size_t index(Time at) { return static_cast<std::size_t>(at.count() % kSpan); }
  struct Later {
    Time at;
    std::uint64_t sequence;
    Event event;
    bool operator>(const Later& other) const {
      return at != other.at ? at > other.at : sequence > other.sequence;
    }
  };
  std::vector<std::vector<Event>> buckets_ = std::vector<std::vector<Event>>(kSpan);
  std::priority_queue<Later, std::vector<Later>, std::greater<>> later_;
  std::uint64_t sequence_ = 0;
  Time now_{0};
  std::size_t next_ = 0;  // in the current bucket
  std::size_t size_ = 0;
};

class Cluster {
 public:
  explicit Cluster(std::uint64_t seed) : random_(seed), store_(ended_twice) {
    workers_.resize(kWorkers);
    names_.reserve(kWorkers);
    for (std::uint32_t w = 0; w < kWorkers; ++w) {
      workers_[w].slots = 1 + static_cast<int>(pick(2));
      names_.push_back("w" + std::to_string(w));
    }
  }

  void run() {
    start_leader();
    for (std::uint32_t w = 0; w < kWorkers; ++w)
      push({.at = Time{static_cast<std::int64_t>(pick(1000))}, .kind = Kind::poll, .worker = w});
    push({.at = Time{1}, .kind = Kind::client_submits});
    while (events_.size() > 0) {
      Event event = events_.pop();
      now_ = event.at;
      handle(event);
      if (to_submit_ == 0 && submitting_.empty() && store_.unfinished() == 0) break;
      if (now_ - last_progress_ > kGiveUpAfter) break;
    }
  }

  void check_end() {
    EXPECT_EQ(acknowledged_count_, kJobs);
    EXPECT_EQ(store_.unfinished(), 0u) << "jobs never ended";
    for (const Submit& submit : acknowledged_)
      for (JobId id = submit.first; id < submit.first + submit.count; ++id)
        if (store_.submission(id) != submit.submission)
          lost(text_of("acknowledged job ", id, " is not stored"));
        else if (store_.final_records(id) == 0)
          lost(text_of("acknowledged job ", id, " never ended"));
    std::uint64_t not_ended = 0;
    for (JobId id = 1; id <= store_.highest_id(); ++id) {
      if (store_.kept(id) && store_.final_records(id) != 1) {
        if (store_.final_records(id) == 0)
          ++not_ended;
        else
          ended_twice(text_of("job ", id, " has ", store_.final_records(id), " final records"));
      }
    }
    EXPECT_EQ(not_ended, 0u) << "stored jobs that never ended";
    EXPECT_EQ(scheduler_.counts().total(), 0u) << "ended jobs still held";
    EXPECT_EQ(lost.count, 0u);
    EXPECT_EQ(ended_twice.count, 0u);
    EXPECT_EQ(stale_recorded.count, 0u);
    EXPECT_EQ(tokens_repeated.count, 0u);
    // The faults happened.
    EXPECT_EQ(leader_starts_, kLeaderChanges + 1);
    EXPECT_GT(worker_deaths_, 0u);
    EXPECT_GT(stale_duplicate_, 0u);
    EXPECT_GT(stale_after_expiry_, 0u);
    EXPECT_GT(stale_after_takeover_, 0u);
    EXPECT_GT(leases_expired_, 0u);
    EXPECT_LE(max_held_, kInFlight + 2 * kSubmitBatch) << "memory follows the work in flight";
    std::printf(
        "cluster: %zu jobs, %u workers, %d leader changes, %llu worker deaths, %.0f s simulated\n"
        "  %llu leases (%llu expired), stale completions ignored: %llu duplicate, %llu after the "
        "lease expired, %llu from before a takeover; at most %zu jobs held\n",
        kJobs, kWorkers, leader_starts_ - 1, static_cast<unsigned long long>(worker_deaths_),
        static_cast<double>(now_.count()) / 1000, static_cast<unsigned long long>(leases_),
        static_cast<unsigned long long>(leases_expired_),
        static_cast<unsigned long long>(stale_duplicate_),
        static_cast<unsigned long long>(stale_after_expiry_),
        static_cast<unsigned long long>(stale_after_takeover_), max_held_);
  }

  Violations lost{"no acknowledged job lost"};
  Violations ended_twice{"one final record per job"};
  Violations stale_recorded{"stale completions ignored"};
  Violations tokens_repeated{"lease tokens unique"};

 private:
  template <class... Parts>
  static std::string text_of(const Parts&... parts) {
    std::string text;
    ((text += to_text(parts)), ...);
    return text;
  }
  static std::string to_text(const char* text) { return text; }
  template <class Number>
  static std::string to_text(Number number) {
    return std::to_string(number);
  }

  std::uint64_t pick(std::uint64_t n) { return random_() % n; }
  Time between(std::int64_t low, std::int64_t high) {
    return Time{low + static_cast<std::int64_t>(pick(static_cast<std::uint64_t>(high - low + 1)))};
  }
  // A message's time on the network: mostly milliseconds; sometimes long
  // enough for a lease to expire meanwhile.
  Time network_delay() {
    std::uint64_t roll = pick(10'000);
    if (roll < 9'000) return between(1, 5);
    if (roll < 9'990) return between(5, 200);
    return between(10'000, 90'000);
  }
  // How long a job runs: mostly seconds, a few past a lease (heartbeats keep them).
  Time run_time() {
    std::uint64_t roll = pick(100);
    if (roll < 80) return between(200, 2'000);
    if (roll < 99) return between(2'000, 20'000);
    return between(20'000, 120'000);
  }

  void push(const Event& event) { events_.push(event); }

  std::uint32_t new_message() {
    if (free_messages_.empty()) {
      messages_.emplace_back().serial = ++serials_;
      return static_cast<std::uint32_t>(messages_.size() - 1);
    }
    std::uint32_t index = free_messages_.back();
    free_messages_.pop_back();
    messages_[index].serial = ++serials_;
    return index;
  }
  void free_message(std::uint32_t index) {
    Message& message = messages_[index];
    message.completions.clear();
    message.heartbeats.clear();
    message.acknowledged.clear();
    message.jobs.clear();
    message.stop.clear();
    message.parked = false;
    free_messages_.push_back(index);
  }

  void handle(const Event& event) {
    switch (event.kind) {
      case Kind::tick:
        if (event.generation == leader_ && leader_up_) tick();
        break;
      case Kind::leader_dies:
        leader_dies();
        break;
      case Kind::leader_starts:
        start_leader();
        break;
      case Kind::request_arrives:
        request_arrives(event.message);
        break;
      case Kind::answer_arrives:
        answer_arrives(event.message);
        break;
      case Kind::request_failed:
        request_failed(event.message);
        break;
      case Kind::park_ends:
        park_ends(event.message, event.token);
        break;
      case Kind::job_done:
        job_done(event);
        break;
      case Kind::poll:
        if (Worker& worker = workers_[event.worker]; worker.alive &&
                                                     event.generation == worker.generation &&
                                                     !worker.waiting && event.job == worker.request)
          send_request(event.worker);
        break;
      case Kind::worker_returns:
        workers_[event.worker].alive = true;
        send_request(event.worker);
        break;
      case Kind::client_submits:
        if (leader_up_) submit();
        if (acknowledged_count_ < kJobs)  // until all are acknowledged
          push({.at = now_ + between(1, 4), .kind = Kind::client_submits});
        break;
    }
  }

  // --- The leader --------------------------------------------------------

  // As Service::start(): memory as the store has it, and a new epoch of
  // lease tokens, durable before any lease goes out.
  void start_leader() {
    ++leader_starts_;
    ++leader_;
    leader_up_ = true;
    scheduler_ = Scheduler();
    std::vector<Job> jobs;
    jobs.reserve(store_.unfinished());
    store_.for_each_unfinished([&](const DurableStore::Row& row) {
      Job job;
      job.id = row.id;
      job.options = options_of(row.id);
      job.state = row.state;
      job.ready_at = row.ready_at;
      job.retry_base = row.retry_base;
      job.reason = row.reason;
      job.attempts = row.attempts;
      jobs.push_back(std::move(job));
    });
    std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.id < b.id; });
    scheduler_.admit(std::move(jobs), now_);
    scheduler_.take_changes();  // rebuilding is no news: the store has it all
    next_id_ = store_.next_id();
    epoch_ = store_.begin_epoch();
    scheduler_.reserve_tokens_from(epoch_ << kTokenBits);
    live_.clear();  // leases are not stored: every one handed out before is gone
    first_token_ = scheduler_.next_token();
    last_advance_ = now_;
    check_takeover();
    push({.at = now_ + kCommitEvery, .kind = Kind::tick, .generation = leader_});
  }

  // Every acknowledged job is stored and, unless it ended, held again.
  void check_takeover() {
    if (scheduler_.counts().total() != store_.unfinished())
      lost(text_of("the new leader holds ", scheduler_.counts().total(), " jobs, the store has ",
                   store_.unfinished(), " unfinished"));
    for (const Submit& submit : acknowledged_)
      for (JobId id = submit.first; id < submit.first + submit.count; ++id)
        if (store_.submission(id) != submit.submission)
          lost(text_of("acknowledged job ", id, " is not in the store"));
        else if (store_.final_records(id) == 0 && !scheduler_.find(id))
          lost(text_of("acknowledged job ", id, " is not held by the new leader"));
  }

  void leader_dies() {
    if (!leader_up_) return;
    leader_up_ = false;
    // What was not committed is gone, and nobody hears back.
    batch_ = {};
    for (const Submit& submit : submitting_) to_submit_ += submit.count;
    submitting_.clear();
    ended_.clear();
    for (std::uint32_t message : answering_) fail(message);
    answering_.clear();
    for (std::uint32_t message : parked_)
      if (messages_[message].parked) fail(message);
    parked_.clear();
    push({.at = now_ + between(500, 3'500), .kind = Kind::leader_starts});
  }

  void fail(std::uint32_t message) {
    messages_[message].parked = false;
    push({.at = now_ + network_delay(), .kind = Kind::request_failed, .message = message});
  }

  void tick() {
    scheduler_.advance(now_);
    last_advance_ = now_;
    collect_changes();
    commit();
    serve_parked();
    max_held_ = std::max(max_held_, scheduler_.counts().total());
    push({.at = now_ + kCommitEvery, .kind = Kind::tick, .generation = leader_});
  }

  // The client, every few milliseconds: a batch, as large as the work in
  // flight allows. Its ids are reserved now; it is stored with the next commit, and
  // acknowledged after it.
  void submit() {
    std::size_t in_flight = store_.unfinished() + submitting_count();
    if (to_submit_ > 0 && in_flight < kInFlight) {
      std::size_t count = std::min({to_submit_, kSubmitBatch, kInFlight - in_flight});
      submitting_.push_back({next_id_, count, ++submissions_});
      for (std::size_t i = 0; i < count; ++i) {
        JobId id = next_id_++;
        Time ready_at = id % 100 == 7 ? now_ + between(1, 5'000) : Time{0};  // a delay
        batch_.submitted.push_back({id, ready_at, submissions_});
      }
      to_submit_ -= count;
    }
  }
  std::size_t submitting_count() const {
    std::size_t count = 0;
    for (const Submit& submit : submitting_) count += submit.count;
    return count;
  }

  // One group commit: then submits are acknowledged (and their jobs can be
  // leased), answers go out, and jobs whose end is durable are forgotten.
  void commit() {
    std::vector<Job> admitted;
    for (auto [id, ready_at, submission] : batch_.submitted) {
      Job& job = admitted.emplace_back();
      job.id = id;
      job.options = options_of(id);
      job.state = ready_at > Time{0} ? State::waiting : State::queued;
      job.ready_at = ready_at;
    }
    store_.commit(batch_);
    batch_ = {};
    if (!admitted.empty()) {
      scheduler_.admit(std::move(admitted), now_);
      collect_changes();  // a delay that already passed: queued (written with the next commit)
    }
    for (const Submit& submit : submitting_) {
      acknowledged_.push_back(submit);
      acknowledged_count_ += submit.count;
      if (kLeaderChanges > 0 && next_leader_death_ <= kLeaderChanges &&
          acknowledged_count_ >= next_leader_death_ * kJobs / (kLeaderChanges + 1)) {
        ++next_leader_death_;
        push({.at = now_ + between(0, 2'000), .kind = Kind::leader_dies});
      }
    }
    submitting_.clear();
    for (std::uint32_t message : answering_)
      push({.at = now_ + network_delay(), .kind = Kind::answer_arrives, .message = message});
    answering_.clear();
    for (JobId id : ended_) scheduler_.forget(id);
    if (!ended_.empty()) last_progress_ = now_;
    ended_.clear();
  }

  // As Service::collect_changes(): the scheduler's changes as rows (a
  // lease writes nothing), with the attempt that just ended.
  void collect_changes() {
    for (const Change& change : scheduler_.take_changes()) {
      if (change.to == State::running) continue;
      const Job& job = *scheduler_.find(change.job);
      DurableStore::StateChange& row = batch_.changes.emplace_back(DurableStore::StateChange{
          job.id, change.to, job.ready_at, job.retry_base, job.reason, std::nullopt});
      if (change.from == State::running) {
        for (auto attempt = job.attempts.rbegin(); attempt != job.attempts.rend(); ++attempt)
          if (attempt->end != AttemptEnd::running) {
            if (attempt->end == AttemptEnd::lease_expired) ++leases_expired_;
            row.attempt = *attempt;
            break;
          }
      }
      if (is_final(change.to)) ended_.push_back(job.id);
    }
  }

  // As Service::lease(): heartbeats, completions, then new leases; the
  // answer waits for the commit holding what it acknowledges.
  void request_arrives(std::uint32_t index) {
    if (!leader_up_) {
      fail(index);
      return;
    }
    Message& message = messages_[index];
    for (Held held : message.heartbeats) {
      bool expected = expect_live(held);
      bool renewed = scheduler_.renew(held.job, held.token, now_, kLeaseFor);
      if (renewed != expected)
        stale_recorded(text_of("renewing job ", held.job, " token ", held.token, ": ", renewed,
                               ", expected ", expected));
      if (renewed)
        live(held.token)->expires = now_ + kLeaseFor;
      else
        message.stop.push_back(held.token);
    }
    for (const Report& report : message.completions) {
      bool expected = expect_live({report.job, report.token});
      Completion result = scheduler_.complete(report.job, report.token, report.succeeded,
                                              report.succeeded ? "" : "exit 1", now_);
      if ((result == Completion::recorded) != expected)
        stale_recorded(text_of("completion of job ", report.job, " token ", report.token, ": ",
                               result == Completion::recorded ? "recorded" : "stale", ", expected ",
                               expected ? "recorded" : "stale"));
      if (expected)
        live(report.token)->ended = true;
      else
        count_stale(report);
      message.acknowledged.push_back(report.token);
    }
    collect_changes();
    grant(message);
    bool idle = message.jobs.empty() && message.acknowledged.empty() && message.stop.empty();
    if (idle && message.wait > Time{0}) {
      message.parked = true;
      parked_.push_back(index);
      push({.at = now_ + message.wait,
            .kind = Kind::park_ends,
            .message = index,
            .token = message.serial});
      return;
    }
    answering_.push_back(index);
  }

  void grant(Message& message) {
    for (int slot = static_cast<int>(message.jobs.size()); slot < message.free_slots; ++slot) {
      std::optional<Lease> lease = scheduler_.lease(now_, names_[message.worker], kLeaseFor);
      if (!lease) break;
      if (lease->token <= highest_token_)
        tokens_repeated(text_of("token ", lease->token, " after ", highest_token_));
      highest_token_ = std::max(highest_token_, lease->token);
      if (lease->token >= first_token_) {
        std::size_t index = lease->token - first_token_;
        if (index >= live_.size()) live_.resize(index + 1);
        live_[index] = {lease->job, now_ + kLeaseFor, false};
      }
      message.jobs.push_back({lease->job, lease->token});
      ++leases_;
    }
  }

  // As Service::serve_parked(): waiting long polls get the work that came.
  void serve_parked() {
    while (!parked_.empty() && scheduler_.counts()[State::queued] > 0) {
      std::uint32_t index = parked_.front();
      parked_.pop_front();
      Message& message = messages_[index];
      if (!message.parked) continue;
      grant(message);
      if (message.jobs.empty()) {
        parked_.push_front(index);  // jobs queued for other queues: none here
        break;
      }
      message.parked = false;
      answering_.push_back(index);
    }
  }

  void park_ends(std::uint32_t index, std::uint64_t serial) {
    Message& message = messages_[index];
    if (message.serial != serial || !message.parked) return;
    message.parked = false;
    answering_.push_back(index);  // empty: the worker asks again
  }

  // --- The independent record of leases ------------------------------------

  struct Live {
    JobId job = 0;
    Time expires{0};
    bool ended = false;  // its completion was recorded
  };
  // The lease `held` names is live: handed out by this leader, neither
  // completed nor expired at the last advance().
  bool expect_live(Held held) const {
    const Live* found = live(held.token);
    return found && found->job == held.job && !found->ended && found->expires > last_advance_;
  }
  const Live* live(Token token) const {
    if (token < first_token_ || token - first_token_ >= live_.size()) return nullptr;
    const Live& found = live_[token - first_token_];
    return found.job ? &found : nullptr;
  }
  Live* live(Token token) { return const_cast<Live*>(std::as_const(*this).live(token)); }
  void count_stale(const Report& report) {
    const Live* found = live(report.token);
    if (report.token < first_token_)
      ++stale_after_takeover_;
    else if (found && found->ended)
      ++stale_duplicate_;
    else if (found)
      ++stale_after_expiry_;
  }

  // --- Workers -------------------------------------------------------------

  void send_request(std::uint32_t w) {
    Worker& worker = workers_[w];
    std::uint32_t index = new_message();
    Message& message = messages_[index];
    message.worker = w;
    message.generation = worker.generation;
    message.request = ++worker.request;
    message.free_slots = worker.slots - static_cast<int>(worker.running.size());
    message.wait = message.free_slots == 0  ? Time{0}
                   : worker.running.empty() ? kLongPoll
                                            : kHeartbeatEvery;
    message.completions = worker.unacknowledged;
    message.heartbeats = worker.running;
    worker.waiting = true;
    push({.at = now_ + network_delay(), .kind = Kind::request_arrives, .message = index});
    if (pick(200) == 0) {  // delivered twice
      std::uint32_t copy = new_message();
      Message& duplicate = messages_[copy];
      duplicate.worker = w;
      duplicate.generation = worker.generation;
      duplicate.request = 0;
      duplicate.free_slots = messages_[index].free_slots;
      duplicate.completions = messages_[index].completions;
      duplicate.heartbeats = messages_[index].heartbeats;
      push({.at = now_ + network_delay(), .kind = Kind::request_arrives, .message = copy});
    }
  }

  bool answers_current(const Message& message) const {
    const Worker& worker = workers_[message.worker];
    return worker.alive && message.generation == worker.generation && worker.waiting &&
           message.request == worker.request;
  }

  void answer_arrives(std::uint32_t index) {
    Message& message = messages_[index];
    if (!answers_current(message)) {  // a duplicate's, or for a worker that died since
      free_message(index);
      return;
    }
    std::uint32_t w = message.worker;
    Worker& worker = workers_[w];
    worker.waiting = false;
    std::erase_if(worker.unacknowledged, [&](const Report& report) {
      return std::find(message.acknowledged.begin(), message.acknowledged.end(), report.token) !=
             message.acknowledged.end();
    });
    std::erase_if(worker.running, [&](Held held) {
      return std::find(message.stop.begin(), message.stop.end(), held.token) != message.stop.end();
    });
    for (Held held : message.jobs) {
      worker.running.push_back(held);
      push({.at = now_ + run_time(),
            .kind = Kind::job_done,
            .worker = w,
            .generation = worker.generation,
            .job = held.job,
            .token = held.token});
    }
    free_message(index);
    int free_slots = worker.slots - static_cast<int>(worker.running.size());
    if (!worker.unacknowledged.empty() || free_slots > 0)
      send_request(w);  // with free slots and nothing to do, it waits at the leader
    else
      push({.at = now_ + kHeartbeatEvery,
            .kind = Kind::poll,
            .worker = w,
            .generation = worker.generation,
            .job = worker.request});
  }

  void request_failed(std::uint32_t index) {
    Message& message = messages_[index];
    if (answers_current(message)) {
      Worker& worker = workers_[message.worker];
      worker.waiting = false;
      push({.at = now_ + kRetryAfter,
            .kind = Kind::poll,
            .worker = message.worker,
            .generation = worker.generation,
            .job = worker.request});
    }
    free_message(index);
  }

  void job_done(const Event& event) {
    Worker& worker = workers_[event.worker];
    if (!worker.alive || event.generation != worker.generation) return;
    auto held = std::find_if(worker.running.begin(), worker.running.end(),
                             [&](Held h) { return h.token == event.token; });
    if (held == worker.running.end()) return;  // stopped meanwhile
    worker.running.erase(held);
    worker.unacknowledged.push_back({event.job, event.token, pick(10) != 0});
    if (to_submit_ > 0 && pick(kWorkerDeathOneIn) == 0) {
      // It dies with what it ran and what it had not reported: those leases expire.
      ++worker_deaths_;
      worker.alive = false;
      worker.waiting = false;
      ++worker.generation;
      worker.running.clear();
      worker.unacknowledged.clear();
      push({.at = now_ + between(1'000, 10'000),
            .kind = Kind::worker_returns,
            .worker = event.worker});
      return;
    }
    if (!worker.waiting) send_request(event.worker);
  }

  std::mt19937_64 random_;
  Time now_{0};
  Timeline events_;
  DurableStore store_;

  // The leader, and what it has not committed yet.
  std::uint32_t leader_ = 0;
  bool leader_up_ = false;
  std::uint64_t epoch_ = 0;
  Scheduler scheduler_;
  JobId next_id_ = 1;
  DurableStore::Batch batch_;
  struct Submit {
    JobId first;
    std::size_t count;
    std::uint32_t submission;
  };
  std::vector<Submit> submitting_;        // not yet committed
  std::vector<std::uint32_t> answering_;  // messages to answer after the commit
  std::vector<JobId> ended_;              // to forget after the commit
  std::deque<std::uint32_t> parked_;
  Time last_advance_{0};
  int next_leader_death_ = 1;

  std::vector<Message> messages_;
  std::vector<std::uint32_t> free_messages_;
  std::uint64_t serials_ = 0;
  std::vector<Worker> workers_;
  std::vector<std::string> names_;

  // The client.
  std::size_t to_submit_ = kJobs;
  std::uint32_t submissions_ = 0;
  std::vector<Submit> acknowledged_;
  std::size_t acknowledged_count_ = 0;

  // The checks' own record.
  std::vector<Live> live_;  // the current leader's leases, by token - first_token_
  Token first_token_ = 0;
  Token highest_token_ = 0;
  Time last_progress_{0};
  int leader_starts_ = 0;
  std::uint64_t worker_deaths_ = 0;
  std::uint64_t leases_ = 0;
  std::uint64_t leases_expired_ = 0;
  std::uint64_t stale_duplicate_ = 0;
  std::uint64_t stale_after_expiry_ = 0;
  std::uint64_t stale_after_takeover_ = 0;
  std::size_t max_held_ = 0;
};

TEST(ClusterSimulation, LeaderChangesWorkerDeathsLateAndDuplicateMessages) {
  Cluster cluster(20261127);
  cluster.run();
  cluster.check_end();
}

}  // namespace
}  // namespace ferry::sched
