// Four processes that start their work together: Python's
//   barrier = Barrier(4, action=lambda: print("all four are ready"))
//   def worker(i): prepare(i); barrier.wait(); work(i)
// Each one prepares for a different time; none starts working before the
// last one is ready.
#include <ferry/barrier.hpp>
#include <ferry/process.hpp>
#include <ferry/shared_value.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

int main() {
  ferry::Value<int> ready(0);
  ferry::Barrier start(4, [] { std::cout << "all four are ready: go" << std::endl; });
  std::vector<ferry::Process> workers;
  for (int i = 0; i < 4; ++i)
    workers.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * i));  // preparing
      std::cout << "worker " << i << " ready" << std::endl;
      ready.atomic().fetch_add(1);
      unsigned index = start.wait(std::chrono::seconds(30));
      // Past the barrier, everyone is ready.
      std::cout << "worker " << i << " works (arrival index " << index << ")" << std::endl;
      std::exit(ready.atomic().load() == 4 ? 0 : 1);
    });
  for (auto& worker : workers) worker.start();
  int failures = 0;
  for (auto& worker : workers) {
    worker.join();
    failures += *worker.exit_code() != 0;
  }
  return failures;
}
