// The command line of `ferry run`: GNU parallel's options, spelled as
// parallel spells them (-j4 and -j 4, --opt=value, bundled -kq), parsed here
// rather than by a general parser so that every mistake is one short line
// that says what is wrong.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "run/inputs.hpp"

namespace ferry::run {

// When to stop early (--halt), with GNU parallel's meaning.
struct HaltPolicy {
  enum class When { never, soon, now } when = When::never;  // soon: let running jobs finish
  enum class On { fail, success, done } on = On::fail;      // which ended jobs count
  double count = 0;  // that many jobs, or a percent of the jobs read so far
  bool percent = false;
};

// "never", "0", "1" (soon,fail=1), "2" (now,fail=1), "soon,fail=3",
// "now,success=10%", "now,done=1" ...
HaltPolicy parse_halt(const std::string& text);

// -j: "8", "0" (as many as the open-file limit allows), "150%" of the cores,
// "+2"/"-1" cores; at most 9999999, whatever the form.
int parse_jobs(const std::string& text, int cores);

enum class Resume { none, all, failed };
enum class OutputMode { group, line, ungroup };

struct RunOptions {
  CommandLine command_line;
  InputOptions input;
  bool link = false;  // --link: every group paired with the one before, not crossed
  bool shell = false;
  int jobs = 0;                              // 0: one slot per job, up to a cap set by the fd limit
  int attempts = 1;                          // --retries N: N attempts in all; 0: no limit
  std::chrono::milliseconds retry_delay{0};  // before the first retry; doubles after
  std::chrono::milliseconds timeout{0};      // per attempt; 0: none
  std::chrono::milliseconds kill_grace{2000};
  OutputMode output = OutputMode::group;
  bool keep_order = false;
  std::string joblog;
  Resume resume = Resume::none;
  HaltPolicy halt;
  bool bar = false;
  bool dry_run = false;
  std::string tmpdir;  // for output spooled to disk; default $TMPDIR or /tmp
  bool help = false;

  // Several inputs per job.
  std::string replace;           // -I STR: another name for {}
  int args_per_job = 0;          // -N/-n: that many inputs per job; 0: one
  bool fill_jobs = false;        // -m/-X: as many as fit, spread over the slots
  bool context_replace = false;  // -X
  // Columns.
  std::string colsep;   // --colsep REGEX: an input line's columns are {1} {2} ...
  bool header = false;  // --header: the first input line names the columns, {name}
  // Output.
  bool tag = false;       // --tag: each output line starts with the arguments and a tab
  std::string tagstring;  // --tagstring STR: ... with STR (replacement strings allowed)
  std::string results;    // --results DIR: each job's stdout, stderr and seq in files
  bool files = false;     // --files: each job's stdout in a file of --tmpdir; its name printed
  // Starting jobs.
  std::chrono::milliseconds delay{0};  // --delay: between two job starts
  bool shuffle = false;                // --shuf: run the inputs in random order
  int nice = 0;                        // --nice: niceness of ferry and every job
  double timeout_percent = 0;          // --timeout N%: of the median runtime so far
  std::uint64_t memfree = 0;           // --memfree: start no job with less memory available
  double max_load = 0;                 // --load: start no job while the load is higher
  std::string jobs_file;               // -j FILE: the number of slots, read again as it changes
  // --pipe: stdin cut into blocks of records, each a job's stdin.
  bool pipe = false;
  std::size_t block = 1 << 20;
  std::string recstart;
  std::string recend = "\n";
};

// Parses the words after `ferry run`. Throws UsageError.
RunOptions parse_run_options(const std::vector<std::string>& words, int cores);

// `ferry run --help`.
std::string run_help();

}  // namespace ferry::run
