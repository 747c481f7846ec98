// Internal to ferry's waits: turning a timeout of any std::chrono type into
// a deadline on the steady clock. Not an API.
#pragma once

#include <chrono>
#include <optional>

namespace ferry::detail {

using Clock = std::chrono::steady_clock;

// A timeout at or below zero is one try, as in Python; one too long to
// represent (hours::max()) is no deadline at all.
template <class Rep, class Period>
std::optional<Clock::time_point> deadline_in(const std::chrono::duration<Rep, Period>& timeout) {
  using Seconds = std::chrono::duration<double>;
  auto now = Clock::now();
  if (timeout <= timeout.zero()) return now;
  if (std::chrono::duration_cast<Seconds>(timeout) > std::chrono::hours(24 * 365 * 100))
    return std::nullopt;
  return now + std::chrono::ceil<Clock::duration>(timeout);
}

template <class C, class Duration>
std::optional<Clock::time_point> deadline_at(const std::chrono::time_point<C, Duration>& when) {
  return deadline_in(when - C::now());
}

}  // namespace ferry::detail
