// The task manager of the classic pair: put 10 random integers on the queue
// as `square` calls, then collect the 10 results, giving up after 10 s.
//   FERRY_SERVER=http://queue-host:7077 FERRY_TOKEN=secret ./task_manager
#include <ferry/client.hpp>

#include <boost/json/serialize.hpp>
#include <iostream>
#include <map>
#include <random>

int main() {
  ferry::Client client;  // FERRY_SERVER and FERRY_TOKEN
  std::mt19937 random(std::random_device{}());
  std::vector<boost::json::value> numbers;
  for (int i = 0; i < 10; ++i) {
    numbers.emplace_back(std::uniform_int_distribution<int>(0, 10000)(random));
    std::cout << "put task " << numbers.back() << "\n";
  }
  std::vector<std::uint64_t> ids = client.call_many("square", numbers);
  std::map<std::uint64_t, boost::json::value> asked;
  for (std::size_t i = 0; i < ids.size(); ++i) asked[ids[i]] = numbers[i];
  int received = 0;
  try {
    client.wait_all(
        ids,
        [&](const ferry::JobResult& result) {
          std::cout << "result: " << asked[result.id] << " * " << asked[result.id] << " = "
                    << (result.succeeded() ? boost::json::serialize(result.value) : result.reason)
                    << "\n";
          received += result.succeeded();
        },
        std::chrono::seconds(10));
  } catch (const ferry::TimeoutError& timeout) {
    std::cerr << "task manager: " << timeout.what() << "\n";
  }
  std::cout << "task manager: " << received << " of 10 results\n";
  return received == 10 ? 0 : 1;
}
