// A writer process and a reader process sharing a queue: Python's
//   q = Queue(); Process(target=write, args=(q,)); Process(target=read, args=(q,))
#include <ferry/process.hpp>
#include <ferry/queue.hpp>

#include <chrono>
#include <iostream>
#include <string>

int main() {
  ferry::Queue<std::string> queue;
  ferry::Process writer(
      [&] {
        for (const char* word : {"A", "B", "C"}) {
          std::cout << "put " << word << " to queue" << std::endl;
          queue.put(word);
        }
      },
      "writer");
  ferry::Process reader(
      [&] {
        // Ends when the queue stays empty for a second, like get(True, 1) and queue.Empty.
        while (auto word = queue.get(std::chrono::seconds(1)))
          std::cout << "get " << *word << " from queue" << std::endl;
      },
      "reader");
  writer.start();
  reader.start();
  writer.join();
  reader.join();
  return *writer.exit_code() + *reader.exit_code();
}
