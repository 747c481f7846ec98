// The job log of `ferry run`: one tab-separated row per attempt, with GNU
// parallel's header and columns, so existing tools read it. Rows are
// appended with one write() each as attempts end, so a crash or an interrupt
// leaves every finished attempt recorded. The format is documented in
// docs/joblog.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>

namespace ferry::run {

inline constexpr const char* kJoblogHeader =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

struct JoblogRow {
  std::uint64_t seq = 0;
  std::string host = ":";      // ":" is this machine, as in parallel
  double start = 0;            // seconds since the Unix epoch
  double runtime = 0;          // seconds
  std::uint64_t sent = 0;      // bytes written to stdin
  std::uint64_t received = 0;  // bytes of output
  int exit_code = 0;
  int signal = 0;
  std::string command;  // one line of sh (see command_line_for_sh): no tab, no newline
};

std::string format_row(const JoblogRow& row);

class Joblog {
 public:
  // Opens `path` for appending; truncates it first unless `keep` (resume).
  // Writes the header when the file is empty. A torn last line (a crash
  // while writing it) is cut off first, so the next row starts a line of its
  // own. Throws UsageError on failure.
  Joblog(const std::string& path, bool keep);
  ~Joblog();
  Joblog(const Joblog&) = delete;
  Joblog& operator=(const Joblog&) = delete;

  void append(const JoblogRow& row);

 private:
  void cut_torn_line(off_t size);

  int fd_ = -1;
  std::string path_;
};

struct JoblogSummary {
  std::set<std::uint64_t> recorded;   // every Seq with a row
  std::set<std::uint64_t> succeeded;  // Seqs with a row that succeeded (exit 0, no signal)
};

// Reads the joblog at `path`; empty when it does not exist. Like GNU
// parallel, --resume matches jobs by Seq. A torn last line is ignored.
// Throws UsageError when the file is not a joblog or a complete row is
// malformed.
JoblogSummary read_joblog(const std::string& path);

}  // namespace ferry::run
