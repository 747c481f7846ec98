#include "ferry/shared_value.hpp"

#include <gtest/gtest.h>

#include <array>
#include <mutex>
#include <thread>

#include "shm/test_support.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::run_processes;
using testing::test_name;

class SharedValueTest : public testing::SharedTest {};

TEST_F(SharedValueTest, IncrementsUnderItsLockAreExact) {
  Value<long> counter(0);
  constexpr int kProcesses = 8, kIncrements = 100'000;
  auto codes = run_processes(kProcesses, [&](int) {
    for (int i = 0; i < kIncrements; ++i) {
      std::lock_guard guard(counter.get_lock());
      counter.value() += 1;
    }
  });
  EXPECT_EQ(codes, std::vector<int>(kProcesses, 0));
  EXPECT_EQ(counter.load(), long{kProcesses} * kIncrements);
}

TEST_F(SharedValueTest, AtomicIncrementsNeedNoLock) {
  Value<long> counter(0);
  constexpr int kProcesses = 8, kIncrements = 100'000;
  auto codes = run_processes(kProcesses, [&](int) {
    for (int i = 0; i < kIncrements; ++i) counter.atomic().fetch_add(1);
  });
  EXPECT_EQ(codes, std::vector<int>(kProcesses, 0));
  EXPECT_EQ(counter.atomic().load(), long{kProcesses} * kIncrements);
  long expected = counter.atomic().load();
  EXPECT_TRUE(counter.atomic().compare_exchange_strong(expected, 7));
  EXPECT_EQ(counter.atomic().exchange(9), 7);
  Value<std::uint8_t> small(250);
  small.atomic().fetch_add(10);  // wraps, as unsigned arithmetic does
  EXPECT_EQ(small.value(), 4);
}

// A value too large to write atomically is never seen half-written through
// load() and store(), which take its lock.
TEST_F(SharedValueTest, LoadAndStoreNeverTearALargeValue) {
  struct Reading {
    long sequence;
    double values[6];
  };
  Value<Reading> latest(Reading{0, {}});
  constexpr int kWrites = 20'000;
  auto codes = run_processes(4, [&](int role) {
    for (long i = 1; i <= kWrites; ++i) {
      if (role < 2) {
        Reading reading{i, {}};
        for (double& value : reading.values) value = static_cast<double>(i);
        latest.store(reading);
      } else {
        Reading seen = latest.load();
        for (double value : seen.values)
          if (value != static_cast<double>(seen.sequence)) std::exit(6);
      }
    }
  });
  EXPECT_EQ(codes, std::vector<int>(4, 0));
  EXPECT_EQ(latest.load().sequence, kWrites);
}

TEST_F(SharedValueTest, ArraysAreSharedElementByElement) {
  Array<int> numbers(8);
  EXPECT_EQ(numbers.size(), 8u);
  EXPECT_EQ(numbers.to_vector(), std::vector<int>(8, 0));
  auto codes = run_processes(8, [&](int index) {
    if (index > 0) numbers[index] = index * index;  // [0] is the counter
    for (int i = 0; i < 1000; ++i) numbers.atomic(0).fetch_add(1);
  });
  EXPECT_EQ(codes, std::vector<int>(8, 0));
  EXPECT_EQ(numbers.load(0), 8000);
  for (int i = 1; i < 8; ++i) EXPECT_EQ(numbers[i], i * i);

  Array<double> listed{1.5, 2.5};
  EXPECT_EQ(listed.to_vector(), (std::vector<double>{1.5, 2.5}));
  listed.store(1, 4.0);
  EXPECT_EQ(listed.load(1), 4.0);
  std::vector<double> replacement{7, 8};
  listed.assign(replacement);
  EXPECT_EQ(listed.to_vector(), replacement);
  EXPECT_THROW(listed.assign(std::vector<double>{1}), Error);
  EXPECT_THROW(listed.at(2), Error);
  EXPECT_THROW(listed.load(5), Error);

  Array<char> filled(3, 'x');
  EXPECT_EQ(std::string(filled.begin(), filled.end()), "xxx");
  Array<int> empty(0);
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.to_vector().empty());
}

TEST_F(SharedValueTest, StructsAndArraysOfThem) {
  struct Point {
    double x, y;
  };
  Value<Point> point(Point{1, 2});
  run_processes(1, [&](int) { point.store({3, 4}); });
  EXPECT_EQ(point.load().x, 3);
  EXPECT_EQ(point.value().y, 4);
  Value<std::array<char, 16>> label;
  run_processes(1, [&](int) { std::snprintf(label.value().data(), 16, "from %s", "child"); });
  EXPECT_STREQ(label.value().data(), "from child");
}

TEST_F(SharedValueTest, ThreadsUseTheLockToo) {
  Value<long> counter(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20'000; ++i) {
        std::lock_guard guard(counter.get_lock());
        ++counter.value();
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.load(), 80'000);
}

TEST_F(SharedValueTest, NamedValuesAndArrays) {
  std::string value_name = test_name("value"), array_name = test_name("array");
  auto hits = Value<long>::create(value_name, 5);
  auto scores = Array<int>::create(array_name, {1, 2, 3});
  auto codes = run_processes(1, [&](int) {
    auto my_hits = Value<long>::attach(value_name);
    auto my_scores = Array<int>::attach(array_name);
    if (my_scores.size() != 3) std::exit(2);
    my_hits.atomic().fetch_add(my_scores[0] + my_scores[1] + my_scores[2]);
    my_scores[2] = 30;
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(hits.value(), 11);
  EXPECT_EQ(scores[2], 30);

  // Another element type, or another kind, is refused.
  try {
    Value<double>::attach(value_name);
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()),
              "'" + value_name + "' holds elements of another type (8 bytes each)");
  }
  EXPECT_THROW(Array<long>::attach(value_name), Error);
  EXPECT_THROW(Value<int>::attach(array_name), Error);
  EXPECT_THROW(Array<int>::create(array_name, 3), Error);
}

}  // namespace
}  // namespace ferry
