#include <ferry/client.hpp>
#include <ferry/pool.hpp>

int triple(int n) { return 3 * n; }

int main() {
  ferry::Pool pool(2);
  bool mapped = pool.map(triple, std::vector<int>{1, 2, 3}) == std::vector<int>{3, 6, 9};
  bool refused = false;
  try {
    ferry::Client client("not a url");
  } catch (const ferry::Error&) {
    refused = true;
  }
  return mapped && refused ? 0 : 1;
}
