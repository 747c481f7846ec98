#include <ferry/barrier.hpp>
#include <ferry/client.hpp>
#include <ferry/condition.hpp>
#include <ferry/event.hpp>
#include <ferry/lock.hpp>
#include <ferry/manager.hpp>
#include <ferry/pipe.hpp>
#include <ferry/pool.hpp>
#include <ferry/process.hpp>
#include <ferry/semaphore.hpp>
#include <ferry/shared_memory.hpp>
#include <ferry/shared_value.hpp>

#include <mutex>

#include <string>

int triple(int n) { return 3 * n; }
std::size_t length(const std::string& text) { return text.size(); }

int main() {
  ferry::Pool pool(2);
  bool mapped = pool.map(triple, std::vector<int>{1, 2, 3}) == std::vector<int>{3, 6, 9};
  bool referenced = pool.submit(length, "four").get() == 4;
  int streamed = 0;
  for (int n : pool.imap(triple, std::vector<int>{1, 2})) streamed += n;
  // A spawned worker is this program run afresh: the library's entry point
  // must serve it before main() would run.
  ferry::Pool spawned(ferry::PoolOptions{.processes = 1, .start = ferry::StartMethod::spawn});
  bool spawned_ran = spawned.submit(triple, 5).get() == 15;
  bool refused = false;
  try {
    ferry::Client client("not a url");
  } catch (const ferry::Error&) {
    refused = true;
  }
  // The primitives between processes, from the installed headers and libraries.
  auto [here, there] = ferry::Pipe<std::string>();
  ferry::Lock lock;
  ferry::Value<long> counter(0);
  ferry::Manager manager;
  auto log = manager.list<int>("log");
  ferry::Process child([&] {
    std::lock_guard guard(lock);
    ++counter.value();
    log.append(7);
    there.send("shared");
  });
  child.start();
  child.join();
  bool shared =
      here.recv() == "shared" && counter.load() == 1 && log.items() == std::vector<int>{7};
  auto block = ferry::SharedMemory::create(64);
  bool named = ferry::SharedMemory::attach(block.name()).size() == 64;
  return mapped && referenced && streamed == 9 && spawned_ran && refused && shared && named ? 0 : 1;
}
