// A CPU-bound map that scales with the cores, where Python threads would not
// (the GIL): count the primes below 2,000,000 in 200 ranges, with 1 worker
// process and then with one per core.
#include <unistd.h>
#include <ferry/pool.hpp>

#include <chrono>
#include <iostream>
#include <numeric>

constexpr long kLimit = 2'000'000;
constexpr long kParts = 200;

long primes_in_part(long part) {
  long from = part * (kLimit / kParts), to = from + kLimit / kParts, count = 0;
  for (long n = std::max(from, 2L); n < to; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n && prime; ++d) prime = n % d != 0;
    count += prime;
  }
  return count;
}

double seconds_with(int processes, long& primes) {
  auto start = std::chrono::steady_clock::now();
  ferry::Pool pool(processes);
  auto counts = pool.map(primes_in_part, std::views::iota(0L, kParts));
  primes = std::accumulate(counts.begin(), counts.end(), 0L);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int main() {
  int cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  long primes_one = 0, primes_all = 0;
  double one = seconds_with(1, primes_one);
  double all = seconds_with(cores, primes_all);
  std::cout << "primes below " << kLimit << ": " << primes_all << "\n"
            << "1 process:  " << one << " s\n"
            << cores << " processes: " << all << " s (" << one / all << "x faster)\n";
  return primes_one == primes_all && primes_all == 148933 ? 0 : 1;
}
