// The tutorials' "distributed" example, on one machine: a manager holds a
// queue of tasks and a queue of results; two worker processes take tasks
// and put back results. Python's
//   manager = QueueManager(address=('', 5000), authkey=b'abc')  # get_task_queue, ...
//   task = task_queue.get(timeout=1); result_queue.put(task * task)
//
// Across machines the same pattern is `ferry server` with ferry::Client and
// ferry::Worker (examples/task_manager.cpp and task_worker.cpp): tasks and
// results are durable there, workers may die and come back, and the key
// travels over HTTP as a bearer token (with TLS if you give it a
// certificate). A Manager listens on this machine only.
#include <ferry/manager.hpp>
#include <ferry/process.hpp>

#include <chrono>
#include <iostream>
#include <vector>

int main() {
  ferry::Manager manager;
  auto tasks = manager.queue<int>("tasks");
  auto results = manager.queue<std::pair<int, int>>("results");
  for (int n = 1; n <= 10; ++n) {
    std::cout << "put task " << n << std::endl;
    tasks.put(n);
  }

  std::vector<ferry::Process> workers;
  for (int w = 0; w < 2; ++w)
    workers.emplace_back([&] {
      // Until no task comes for a second: Python's get(timeout=1) and queue.Empty.
      while (auto n = tasks.get(std::chrono::seconds(1))) results.put({*n, *n * *n});
    });
  for (auto& worker : workers) worker.start();

  long sum = 0;
  for (int i = 0; i < 10; ++i) {
    auto result = results.get(std::chrono::seconds(30));
    if (!result) break;
    std::cout << "result: " << result->first << " * " << result->first << " = " << result->second
              << std::endl;
    sum += result->second;
  }
  for (auto& worker : workers) worker.join();
  std::cout << "sum of squares: " << sum << std::endl;
  return sum == 385 ? 0 : 1;
}
