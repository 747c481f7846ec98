// Histogram — observations counted in fixed buckets, as Prometheus reads them.
//
// The store times its commits with it and the server its jobs (see
// server/metrics.hpp). Observing costs a few comparisons and an increment:
// the bounds are fixed when it is made, nothing is allocated after that, and
// no lock is taken (its owner says on which thread it lives).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace ferry::store {

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending; they must outlive it
  // (they are constants). One more bucket counts what lies above them all.
  explicit Histogram(std::span<const double> bounds)
      : bounds_(bounds), counts_(bounds.size() + 1) {}

  void observe(double value) {
    auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
    ++counts_[static_cast<std::size_t>(bucket)];
    sum_ += value;
  }

  std::span<const double> bounds() const { return bounds_; }
  // Observations in each bucket (not cumulative): counts()[i] are those
  // above bounds()[i - 1] and at most bounds()[i]; the last, above all.
  std::span<const std::uint64_t> counts() const { return counts_; }
  double sum() const { return sum_; }
  std::uint64_t count() const {
    std::uint64_t all = 0;
    for (std::uint64_t in_bucket : counts_) all += in_bucket;
    return all;
  }

 private:
  std::span<const double> bounds_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
};

}  // namespace ferry::store
