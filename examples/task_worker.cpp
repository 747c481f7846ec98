// The task workers of the classic pair: serve `square` to a ferry server.
//   FERRY_SERVER=http://queue-host:7077 FERRY_TOKEN=secret ./task_worker
// Start one on each machine that should help; stop with Ctrl-C.
#include <ferry/worker.hpp>

#include <chrono>
#include <iostream>
#include <thread>

int main() {
  ferry::Worker worker;  // FERRY_SERVER and FERRY_TOKEN
  worker.add("square", [](const boost::json::value& n) -> boost::json::value {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // pretend to work
    auto value = n.to_number<long long>();
    return value * value;
  });
  std::cerr << "task worker: serving square\n";
  worker.run();
}
