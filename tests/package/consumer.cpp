#include <ferry/pool.hpp>

int triple(int n) { return 3 * n; }

int main() {
  ferry::Pool pool(2);
  return pool.map(triple, std::vector<int>{1, 2, 3}) == std::vector<int>{3, 6, 9} ? 0 : 1;
}
