// A writer and a reader over a Pipe: Python's
//   reader_end, writer_end = Pipe(False)
//   Process(target=reader, args=(reader_end,)); writer(writer_end)
// The reader stops at the end of the pipe: when the writer has closed its
// end (here, by exiting), recv() throws ferry::EOFError instead of waiting.
#include <ferry/pipe.hpp>
#include <ferry/process.hpp>

#include <iostream>
#include <string>

int main() {
  auto [reader_end, writer_end] = ferry::Pipe<std::string>(false);  // one way
  ferry::Process reader(
      [&] {
        writer_end.close();  // this process only reads
        int received = 0;
        try {
          for (;;) {
            std::string message = reader_end.recv();
            std::cout << "reader got: " << message << std::endl;
            ++received;
          }
        } catch (const ferry::EOFError&) {
          std::cout << "reader: the writer is done after " << received << " messages" << std::endl;
        }
        std::exit(received == 5 ? 0 : 1);
      },
      "reader");
  ferry::Process writer(
      [&] {
        reader_end.close();
        for (int i = 1; i <= 5; ++i) writer_end.send("message " + std::to_string(i));
      },  // exiting closes this process's copy of the writing end
      "writer");
  reader.start();
  writer.start();
  reader_end.close();  // the parent keeps no copy of either end
  writer_end.close();
  writer.join();
  reader.join();
  return *writer.exit_code() + *reader.exit_code();
}
