// A function run in a child process and joined: Python's
//   p = Process(target=f, args=("bob",)); p.start(); p.join()
#include <unistd.h>
#include <ferry/process.hpp>

#include <iostream>
#include <string>

int main() {
  std::string name = "bob";
  ferry::Process child(
      [&] { std::cout << "hello " << name << " from process " << ::getpid() << "\n"; }, "greeter");
  child.start();
  child.join();
  std::cout << "parent " << ::getpid() << ": " << child.name() << " exited with "
            << *child.exit_code() << "\n";
  return *child.exit_code();
}
