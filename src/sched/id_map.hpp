// IdMap — values by job id, for the scheduler's lookups on every request.
//
// Open addressing with linear probing in one flat array of (id, pointer)
// slots, at most half full: a lookup reads one or two adjacent slots, then
// the value. (A node-based hash map reads a bucket, the node before the
// one sought, then that node: one more cache miss on each of a job's many
// lookups.) Values live on the heap and never move while held. Id 0 marks
// an empty slot, so it cannot be a key; deletion shifts the following slots
// back instead of leaving markers, so lookups never slow down with churn.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "sched/ready_queue.hpp"

namespace ferry::sched {

template <class T>
class IdMap {
 public:
  T* find(JobId id) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = home(id);; i = next(i)) {
      if (slots_[i].id == id) return slots_[i].value.get();
      if (slots_[i].id == 0) return nullptr;
    }
  }
  bool contains(JobId id) const { return find(id) != nullptr; }

  // Adds `value` under `id` (not 0, not held); returns where it lives.
  T& insert(JobId id, T value) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    std::size_t i = home(id);
    while (slots_[i].id != 0) i = next(i);
    slots_[i] = {id, std::make_unique<T>(std::move(value))};
    ++size_;
    return *slots_[i].value;
  }

  bool erase(JobId id) {
    if (slots_.empty()) return false;
    std::size_t hole = home(id);
    while (slots_[hole].id != id) {
      if (slots_[hole].id == 0) return false;
      hole = next(hole);
    }
    // Each following slot of the run moves into the hole unless its home
    // lies after the hole (cyclically), where a lookup would not pass it.
    for (std::size_t i = next(hole); slots_[i].id != 0; i = next(i)) {
      std::size_t wanted = home(slots_[i].id);
      bool stays = hole < i ? (hole < wanted && wanted <= i) : (hole < wanted || wanted <= i);
      if (stays) continue;
      slots_[hole] = std::move(slots_[i]);
      hole = i;
    }
    slots_[hole] = {};
    --size_;
    return true;
  }

  std::size_t size() const { return size_; }

 private:
  struct Slot {
    JobId id = 0;
    std::unique_ptr<T> value;
  };
  // Fibonacci hashing: the top bits of id × 2^64/φ, spread even for ids in
  // steps of a power of two.
  std::size_t home(JobId id) const {
    return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  std::size_t next(std::size_t i) const { return (i + 1) & (slots_.size() - 1); }
  void grow() {
    std::vector<Slot> old =
        std::exchange(slots_, std::vector<Slot>(std::max<std::size_t>(16, 2 * slots_.size())));
    shift_ = 64 - std::countr_zero(slots_.size());
    for (Slot& slot : old) {
      if (slot.id == 0) continue;
      std::size_t i = home(slot.id);
      while (slots_[i].id != 0) i = next(i);
      slots_[i] = std::move(slot);
    }
  }

  std::vector<Slot> slots_;  // a power of two of them, or none
  int shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace ferry::sched
