// A process killed with SIGKILL while it holds a lock, and the next owner
// recovering. With Python's multiprocessing.Lock the others would wait
// forever; a ferry::Lock is robust: the next process to lock it gets it,
// with an OwnerDiedError saying the data may be half-changed, and repairs
// it while it holds the lock.
#include <ferry/event.hpp>
#include <ferry/lock.hpp>
#include <ferry/process.hpp>
#include <ferry/shared_value.hpp>

#include <unistd.h>
#include <csignal>
#include <iostream>
#include <mutex>

struct Account {
  long balance;
  long committed;  // the balance after the last complete change
};

int main() {
  ferry::Lock lock;
  ferry::Value<Account> account(Account{100, 100});
  ferry::Event inside;

  ferry::Process victim(
      [&] {
        std::lock_guard guard(lock);
        account.value().balance -= 1000;  // half of a transfer...
        inside.set();
        for (;;) ::pause();  // ...and it is killed before the other half
      },
      "victim");
  victim.start();
  inside.wait();
  victim.kill();
  victim.join();
  std::cout << "the victim was killed holding the lock (exit code " << *victim.exit_code() << ")"
            << std::endl;

  ferry::Process next(
      [&] {
        try {
          std::lock_guard guard(lock);
          account.value().balance += 1;
        } catch (const ferry::OwnerDiedError& died) {
          std::cout << "next owner: " << died.what() << std::endl;
          // The lock is held until the end of this block: repair, then go on.
          account.value().balance = account.value().committed;
          std::cout << "next owner: balance restored to " << account.value().balance << std::endl;
          account.value().balance += 1;
          account.value().committed = account.value().balance;
        }
      },
      "next");
  next.start();
  next.join();
  std::cout << "balance " << account.load().balance << std::endl;
  return account.load().balance == 101 ? 0 : 1;
}
