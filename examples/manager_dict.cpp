// A dict and a list held by a manager process and changed by another
// process: Python's
//   with Manager() as manager:
//       d = manager.dict(); l = manager.list(range(10))
//       p = Process(target=f, args=(d, l)); p.start(); p.join()
//       print(d); print(l)
#include <ferry/manager.hpp>
#include <ferry/process.hpp>

#include <cstdint>
#include <iostream>
#include <string>

int main() {
  ferry::Manager manager;  // its server process runs until `manager` is gone
  auto d = manager.dict<int, std::string>("d");
  auto l = manager.list<int>("l");
  for (int i = 0; i < 10; ++i) l.append(i);

  ferry::Process f([&] {
    d.set(1, "1");
    d.set(2, "two");
    d.set(-1, "minus one");
    // Python's l.reverse(), from the outside: each call is one request.
    for (std::int64_t i = 0; i < 5; ++i) {
      int front = l.get(i), back = l.get(-1 - i);
      l.set(i, back);
      l.set(-1 - i, front);
    }
  });
  f.start();
  f.join();

  std::cout << "d = {";
  for (auto& [key, value] : d.items()) std::cout << " " << key << ": '" << value << "'";
  std::cout << " }\nl = [";
  for (int value : l.items()) std::cout << " " << value;
  std::cout << " ]\n";
  return d.size() == 3 && l.get(0) == 9 ? 0 : 1;
}
