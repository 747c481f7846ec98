#include <ferry/client.hpp>
#include <ferry/pool.hpp>

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
  return mapped && referenced && streamed == 9 && spawned_ran && refused ? 0 : 1;
}
