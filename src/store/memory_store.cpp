// The store of one process: same interface and callback discipline as the
// SQLite store, nothing on disk.
#include <map>

#include "store/group_commit.hpp"

namespace ferry::store {
namespace {

class MemoryStore final : public GroupCommitStore {
 public:
  MemoryStore() { start(); }
  ~MemoryStore() override { stop(); }

  Snapshot load() override {
    flush();
    std::lock_guard lock(data_mutex_);
    Snapshot snapshot;
    for (auto& [id, job] : jobs_) snapshot.jobs.push_back(job);
    for (auto& [key, attempt] : attempts_) snapshot.attempts.push_back(attempt);
    snapshot.epoch = epoch_;
    return snapshot;
  }

 protected:
  std::vector<std::string> commit(const std::vector<const Batch*>& batches) override {
    std::lock_guard lock(data_mutex_);
    std::vector<std::string> errors;
    for (const Batch* batch : batches) errors.push_back(apply(*batch));
    return errors;
  }

 private:
  // All or nothing: checked completely before anything changes.
  std::string apply(const Batch& batch) {
    for (const JobRow& job : batch.new_jobs)
      if (jobs_.count(job.id)) return "job " + std::to_string(job.id) + " exists already";
    auto known = [&](std::uint64_t id) {
      if (jobs_.count(id)) return true;
      for (const JobRow& job : batch.new_jobs)
        if (job.id == id) return true;
      return false;
    };
    for (const StateChange& change : batch.state_changes)
      if (!known(change.job_id)) return "no job " + std::to_string(change.job_id);
    for (const AttemptRow& attempt : batch.attempts)
      if (!known(attempt.job_id)) return "no job " + std::to_string(attempt.job_id);

    for (const JobRow& job : batch.new_jobs) jobs_[job.id] = job;
    for (const StateChange& change : batch.state_changes) {
      JobRow& job = jobs_[change.job_id];
      job.state = change.state;
      job.ready_at_ms = change.ready_at_ms;
      job.reason = change.reason;
      job.retry_base = change.retry_base;
    }
    for (const AttemptRow& attempt : batch.attempts)
      attempts_[{attempt.job_id, attempt.number}] = attempt;
    if (batch.epoch) epoch_ = *batch.epoch;
    return {};
  }

  std::mutex data_mutex_;
  std::map<std::uint64_t, JobRow> jobs_;
  std::map<std::pair<std::uint64_t, int>, AttemptRow> attempts_;
  std::uint64_t epoch_ = 0;
};

}  // namespace

std::unique_ptr<Store> open_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace ferry::store
