// A producer and a consumer sharing a Condition: Python's
//   cond = Condition()
//   with cond: cond.wait_for(lambda: item.value == 0); item.value = n; cond.notify()
// The producer waits for an empty slot, the consumer for a full one; each
// wakes the other when it changes the slot.
#include <ferry/condition.hpp>
#include <ferry/process.hpp>
#include <ferry/shared_value.hpp>

#include <iostream>
#include <mutex>

int main() {
  ferry::Condition changed;
  ferry::Value<int> slot(0);  // 0: empty; else the item
  constexpr int kItems = 5;
  ferry::Process producer(
      [&] {
        for (int item = 1; item <= kItems; ++item) {
          std::unique_lock guard(changed);
          changed.wait([&] { return slot.value() == 0; });
          slot.value() = item;
          std::cout << "produced " << item << std::endl;
          changed.notify();
        }
      },
      "producer");
  ferry::Process consumer(
      [&] {
        int total = 0;
        for (int n = 0; n < kItems; ++n) {
          std::unique_lock guard(changed);
          changed.wait([&] { return slot.value() != 0; });
          std::cout << "consumed " << slot.value() << std::endl;
          total += slot.value();
          slot.value() = 0;
          changed.notify();
        }
        std::exit(total == kItems * (kItems + 1) / 2 ? 0 : 1);
      },
      "consumer");
  consumer.start();
  producer.start();
  producer.join();
  consumer.join();
  return *producer.exit_code() + *consumer.exit_code();
}
