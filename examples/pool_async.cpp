// A pool of 3 processes taking 10 submissions, printing each result as it
// finishes: Python's pool.apply_async(f, (i,)) with a callback, or
// concurrent.futures.as_completed.
#include <ferry/pool.hpp>

#include <chrono>
#include <iostream>
#include <thread>

// Tasks are plain functions: every worker process knows them.
int slow_square(const int& n) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50 * (10 - n)));  // later ones finish first
  return n * n;
}

int main() {
  ferry::Pool pool(3);
  std::vector<ferry::AsyncResult<int>> pending;
  for (int i = 0; i < 10; ++i) pending.push_back(pool.submit(slow_square, i));
  // The pool works on all of them meanwhile; each is printed as it finishes.
  for (std::size_t i : ferry::as_completed(pending))
    std::cout << "square(" << i << ") = " << pending[i].get() << "\n";
  pool.close();
  pool.join();
}
