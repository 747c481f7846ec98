// ferry::Pool timings for bench/pool.sh; prints "name seconds" lines.
//   map_1m:            Pool::map over 1,000,000 n -> n*n, default chunksize
//   map_100k_chunk1:   Pool::map over the first 100,000, chunksize 1
//   round_trip:        seconds per submit(...).get(), averaged over 10,000 in a row
#include <ferry/pool.hpp>

#include <chrono>
#include <cstdio>

namespace {

long long square(long long n) { return n * n; }

template <class F>
double seconds(F&& work) {
  auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  ferry::Pool pool(2);
  std::vector<long long> inputs(1'000'000);
  for (long long i = 0; i < 1'000'000; ++i) inputs[i] = i;
  std::vector<long long> small(inputs.begin(), inputs.begin() + 100'000);
  pool.map(square, inputs);  // warm up, as pool_python.py does: workers started, memory paged in

  long long check = 0;
  double map_1m = seconds([&] { check += pool.map(square, inputs).back(); });
  double map_chunk1 = seconds([&] { check += pool.map(square, small, 1).back(); });
  constexpr int kTrips = 10'000;
  double trips = seconds([&] {
    for (int i = 0; i < kTrips; ++i) check += pool.submit(square, i).get();
  });
  std::printf("map_1m %.6f\nmap_100k_chunk1 %.6f\nround_trip %.9f\n", map_1m, map_chunk1,
              trips / kTrips);
  return check > 0 ? 0 : 1;
}
