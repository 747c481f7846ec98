// OutputOrder — when and how each job's output reaches ferry's stdout and
// stderr, so that it arrives whole, unaltered and never torn:
//
//   group (default)  a job's stdout, then its stderr, printed when it ends;
//                    never mixed with another job's output
//   line             whole lines as they come (--line-buffer); a job's lines
//                    never mix within a line with another's
//   -k (keep order)  outputs in input order: the earliest job not yet printed
//                    writes its stdout as it comes (it is next anyway, so the
//                    bytes are the same as grouping them), the others wait
//
// (-u, ungrouped, gives the jobs ferry's own stdout and stderr: no
// OutputOrder at all.) Output waiting its turn lives in Spools: past a
// memory budget, in temporary files. An attempt that will be retried prints
// nothing: only a job's final attempt is its output.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "exec/process_set.hpp"
#include "run/spool.hpp"

namespace ferry::run {

// ferry's stdout and stderr. A closed stdout (EPIPE: the reader went away)
// is remembered, and what would go there afterwards is dropped.
class OutputStreams {
 public:
  OutputStreams(int out_fd, int err_fd) : out_fd_(out_fd), err_fd_(err_fd) {}
  void write(exec::Stream stream, std::string_view data);
  bool stdout_closed() const { return stdout_closed_; }
  // Runs before any write (the progress bar erases itself).
  std::function<void()> before_write;

 private:
  int out_fd_;
  int err_fd_;
  bool stdout_closed_ = false;
};

class OutputOrder {
 public:
  enum class Mode { group, line };
  OutputOrder(Mode mode, bool keep_order, OutputStreams& streams, SpoolBudget& budget);

  // An attempt of job `seq` started; `final` when no retry can follow it.
  // A `tag` starts each line of its output (--tag).
  void started(std::uint64_t seq, bool final, std::string tag = "");
  void output(std::uint64_t seq, exec::Stream stream, std::string_view data);
  // The attempt ended. A final one prints its output (then `note`, on
  // stderr); any other drops it, as its job runs again.
  void ended(std::uint64_t seq, bool final, const std::string& note);
  // Job `seq` has no output and never runs (skipped, refused, not started):
  // the order goes on past it.
  void skipped(std::uint64_t seq);
  // At the end: prints what still waits, in order.
  void flush();

  // The earliest job whose output has not been printed (keep order).
  std::uint64_t next_to_print() const { return next_to_print_; }

 private:
  struct Entry {
    Spool out;
    Spool err;
    bool running = true;
    bool final = false;
    bool live = false;  // writing straight to the streams
    std::string tag;
    bool at_line_start[2] = {true, true};  // [stream]: the next byte begins a line
  };
  static std::string tagged(Entry& entry, exec::Stream stream, std::string_view data);
  Entry& entry(std::uint64_t seq);
  void print(Entry& entry);
  void advance();
  void go_live(Entry& entry);
  void write_lines(Spool& partial, exec::Stream stream, std::string_view data);

  Mode mode_;
  bool keep_order_;
  OutputStreams& streams_;
  SpoolBudget& budget_;
  std::map<std::uint64_t, Entry> entries_;  // running, or ended and waiting (keep order)
  std::uint64_t next_to_print_ = 1;
};

}  // namespace ferry::run
