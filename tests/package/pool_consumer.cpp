// A program of ferry::pool alone: built against an installed ferry with
// Boost, OpenSSL and fmt out of CMake's reach.
#include <ferry/pool.hpp>
#include <ferry/shared_value.hpp>

int triple(int n) { return 3 * n; }

int main() {
  ferry::Pool pool(2);
  ferry::Value<long> counter(0);
  counter.store(7);
  return pool.map(triple, std::vector<int>{1, 2}) == std::vector<int>{3, 6} && counter.load() == 7
             ? 0
             : 1;
}
