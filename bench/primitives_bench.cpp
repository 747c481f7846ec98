// ferry's process primitives timed for bench/primitives.sh; prints
// "name seconds" lines, the same work as bench/primitives_python.py:
//   lock_pair:        2 processes each lock and unlock one Lock 1,000,000 times;
//                     seconds per lock+unlock (wall time / all pairs)
//   pipe_round_trip:  a small message (an int) sent to a child and echoed back,
//                     20,000 times in a row; seconds per round trip
//   value_increment:  2 processes each add 1 to a Value<long> 1,000,000 times
//                     under its get_lock(); seconds per increment
//   manager_call:     one call of a Manager's dict (set), from a child process,
//                     20,000 in a row; seconds per call
//   socket_round_trip: the kernel's floor under any pipe round trip: 8 bytes
//                     written and echoed over a bare Unix socket pair, no
//                     encoding, no library (what the other two wait on)
//   polling_round_trip: the same, each side polling (recv MSG_DONTWAIT) for
//                     5 µs before it sleeps: what spinning instead of
//                     sleeping would buy
// Processes start at a Barrier, so process start-up is not counted.
#include <sys/socket.h>
#include <unistd.h>
#include <ferry/barrier.hpp>
#include <ferry/lock.hpp>
#include <ferry/manager.hpp>
#include <ferry/pipe.hpp>
#include <ferry/process.hpp>
#include <ferry/shared_value.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `body` in `count` processes started together; returns the wall time
// from the start to the last one's end.
template <class Body>
double in_processes(int count, Body body) {
  ferry::Barrier start(static_cast<unsigned>(count + 1));
  std::vector<ferry::Process> processes;
  for (int i = 0; i < count; ++i)
    processes.emplace_back([&] {
      start.wait();
      body();
    });
  for (auto& process : processes) process.start();
  start.wait();
  auto began = Clock::now();
  for (auto& process : processes) process.join();
  return since(began);
}

// Reads one word; first polls for `polling` (none: sleeps at once).
bool read_word(int fd, long& word, std::chrono::microseconds polling) {
  auto until = Clock::now() + polling;
  while (polling.count() > 0 && Clock::now() < until)
    if (::recv(fd, &word, sizeof word, MSG_DONTWAIT) == sizeof word) return true;
  return ::recv(fd, &word, sizeof word, 0) == sizeof word;
}

// Seconds of all `trips` round trips of 8 bytes over a bare socket pair.
double bare_round_trips(int warm_up, int trips, std::chrono::microseconds polling) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) < 0) std::exit(1);
  ferry::Process echo([&] {
    long word = 0;
    for (int i = 0; i < warm_up + trips; ++i) {
      if (!read_word(fds[1], word, polling)) std::_Exit(1);
      if (::write(fds[1], &word, sizeof word) != sizeof word) std::_Exit(1);
    }
  });
  echo.start();
  long word = 0;
  Clock::time_point began;
  for (int i = 0; i < warm_up + trips; ++i) {
    if (i == warm_up) began = Clock::now();
    if (::write(fds[0], &word, sizeof word) != sizeof word) std::exit(1);
    if (!read_word(fds[0], word, polling)) std::exit(1);
  }
  double seconds = since(began);
  echo.join();
  ::close(fds[0]);
  ::close(fds[1]);
  return seconds;
}

}  // namespace

int main() {
  constexpr int kPairs = 1'000'000, kTrips = 20'000, kWarmUp = 1'000;

  ferry::Lock lock;
  double lock_seconds = in_processes(2, [&] {
    for (int i = 0; i < kPairs; ++i) {
      lock.lock();
      lock.unlock();
    }
  });

  ferry::Value<long> counter(0);
  double value_seconds = in_processes(2, [&] {
    for (int i = 0; i < kPairs; ++i) {
      std::lock_guard guard(counter.get_lock());
      counter.value() += 1;
    }
  });
  if (counter.load() != 2L * kPairs) return 1;

  auto [here, there] = ferry::Pipe<int>();
  ferry::Process echo([&] {
    here.close();
    for (int i = 0; i < kWarmUp + kTrips; ++i) there.send(there.recv());
  });
  echo.start();
  there.close();
  for (int i = 0; i < kWarmUp; ++i) {
    here.send(i);
    here.recv();
  }
  auto began = Clock::now();
  for (int i = 0; i < kTrips; ++i) {
    here.send(i);
    if (here.recv() != i) return 1;
  }
  double pipe_seconds = since(began);
  echo.join();

  ferry::Manager manager;
  auto entries = manager.dict<int, int>("entries");
  ferry::Value<double> manager_seconds(0);
  ferry::Process caller([&] {
    for (int i = 0; i < kWarmUp; ++i) entries.set(i, i);
    auto start = Clock::now();
    for (int i = 0; i < kTrips; ++i) entries.set(i, i);
    manager_seconds.store(since(start));
  });
  caller.start();
  caller.join();

  double raw_seconds = bare_round_trips(kWarmUp, kTrips, std::chrono::microseconds(0));
  double polling_seconds = bare_round_trips(kWarmUp, kTrips, std::chrono::microseconds(5));

  std::printf(
      "lock_pair %.12f\nvalue_increment %.12f\npipe_round_trip %.12f\nmanager_call %.12f\n"
      "socket_round_trip %.12f\npolling_round_trip %.12f\n",
      lock_seconds / (2.0 * kPairs), value_seconds / (2.0 * kPairs), pipe_seconds / kTrips,
      manager_seconds.load() / kTrips, raw_seconds / kTrips, polling_seconds / kTrips);
  return 0;
}
