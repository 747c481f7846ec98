#include "store/group_commit.hpp"

#include <chrono>
#include <utility>

namespace ferry::store {

void GroupCommitStore::start() {
  writer_ = std::thread([this] { run(); });
}

void GroupCommitStore::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_one();
  if (writer_.joinable()) writer_.join();
}

void GroupCommitStore::write(Batch batch, Committed committed) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(batch), std::move(committed)});
    ++written_;
  }
  work_.notify_one();
}

void GroupCommitStore::flush() {
  std::unique_lock lock(mutex_);
  std::uint64_t target = written_;
  progress_.wait(lock, [&] { return committed_ >= target; });
}

Stats GroupCommitStore::stats() {
  std::lock_guard lock(mutex_);
  return stats_;
}

void GroupCommitStore::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping, and everything committed
    std::deque<Pending> group = std::exchange(queue_, {});
    lock.unlock();

    std::vector<const Batch*> batches;
    batches.reserve(group.size());
    for (const Pending& pending : group) batches.push_back(&pending.batch);
    auto began = std::chrono::steady_clock::now();
    std::vector<std::string> errors = commit(batches);
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - began;
    for (std::size_t i = 0; i < group.size(); ++i)
      if (group[i].committed) group[i].committed(errors[i]);

    lock.lock();
    committed_ += group.size();
    stats_.batches += group.size();
    stats_.transactions += 1;
    stats_.commit_seconds.observe(took.count());
    stats_.commit_batches.observe(static_cast<double>(group.size()));
    progress_.notify_all();
  }
}

}  // namespace ferry::store
