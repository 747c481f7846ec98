// Ten processes add 1 to a shared counter 100,000 times each: Python's
//   counter = Value('i', 0)
//   def add(counter):
//       for _ in range(10000):
//           with counter.get_lock():
//               counter.value += 1
// first without the lock (the classic race: two processes read the same
// value and one increment is lost), then with it, then with an atomic add.
#include <ferry/barrier.hpp>
#include <ferry/process.hpp>
#include <ferry/shared_value.hpp>

#include <atomic>
#include <iostream>
#include <mutex>
#include <vector>

namespace {

constexpr int kProcesses = 10, kIncrements = 100'000;

template <class Body>
long run(const char* label, Body body) {
  ferry::Value<long> counter(0);
  ferry::Barrier start(kProcesses);  // all of them at once, or they barely overlap
  std::vector<ferry::Process> processes;
  for (int i = 0; i < kProcesses; ++i)
    processes.emplace_back([&] {
      start.wait();
      for (int n = 0; n < kIncrements; ++n) body(counter);
    });
  for (auto& process : processes) process.start();
  for (auto& process : processes) process.join();
  long total = counter.load();
  std::cout << label << ": " << total << " of " << kProcesses * kIncrements;
  if (total != kProcesses * kIncrements)
    std::cout << " (" << kProcesses * kIncrements - total << " increments lost)";
  std::cout << "\n";
  return total;
}

}  // namespace

int main() {
  run("without the lock", [](ferry::Value<long>& counter) {
    long seen = counter.value();  // another process may change it right now...
    // (one read and one write each time, as Python's `counter.value += 1`,
    // rather than a sum the compiler would keep in a register)
    std::atomic_signal_fence(std::memory_order_seq_cst);
    counter.value() = seen + 1;  // ...and this overwrites its increment
  });
  long locked = run("with get_lock()  ", [](ferry::Value<long>& counter) {
    std::lock_guard guard(counter.get_lock());
    counter.value() += 1;
  });
  long atomic =
      run("with atomic()    ", [](ferry::Value<long>& counter) { counter.atomic().fetch_add(1); });
  return locked == kProcesses * kIncrements && atomic == kProcesses * kIncrements ? 0 : 1;
}
