// The writer thread both stores share: it takes every batch queued while the
// previous transaction committed and hands them to commit() together.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "store/store.hpp"

namespace ferry::store {

class GroupCommitStore : public Store {
 public:
  void write(Batch batch, Committed committed) override;
  void flush() override;
  Stats stats() override;

 protected:
  // Starts the writer thread; call from the derived constructor, once ready.
  void start();
  // Stops it after the queued batches committed; call from the derived
  // destructor, before what commit() uses goes away.
  void stop();

  // Makes `batches` durable in one transaction, each batch all or nothing.
  // Returns, for each batch, an empty string or why it failed.
  virtual std::vector<std::string> commit(const std::vector<const Batch*>& batches) = 0;

 private:
  struct Pending {
    Batch batch;
    Committed committed;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable progress_;
  std::deque<Pending> queue_;
  std::uint64_t written_ = 0;    // batches queued so far
  std::uint64_t committed_ = 0;  // batches whose callbacks ran
  Stats stats_;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace ferry::store
