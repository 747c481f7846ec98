// A pool of 3 processes taking 10 submissions, printing each result as it
// finishes: Python's pool.apply_async(f, (i,)) with a callback.
#include <unistd.h>
#include <ferry/pool.hpp>

#include <chrono>
#include <iostream>
#include <thread>

// Tasks are plain functions: every worker process knows them.
int slow_square(int n) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50 * (10 - n)));  // later ones finish first
  return n * n;
}

int main() {
  ferry::Pool pool(3);
  std::vector<ferry::AsyncResult<int>> pending;
  std::vector<int> inputs;
  for (int i = 0; i < 10; ++i) {
    pending.push_back(pool.submit(slow_square, i));
    inputs.push_back(i);
  }
  while (!pending.empty()) {
    std::size_t done = pool.wait_any(pending);
    std::cout << "square(" << inputs[done] << ") = " << pending[done].get() << "\n";
    pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(done));
    inputs.erase(inputs.begin() + static_cast<std::ptrdiff_t>(done));
  }
  pool.close();
  pool.join();
}
