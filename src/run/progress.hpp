// The progress line of `ferry run --bar`: a bar, counts, rate and ETA,
// rendered as one line that fits the terminal width.
#pragma once

#include <cstdint>
#include <string>

namespace ferry::run {

struct Progress {
  std::uint64_t total = 0;  // jobs in this run (read so far, until the input ended)
  bool total_known = true;  // the input ended: no more jobs will come
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;  // finished without success (failed or cancelled)
  std::uint64_t running = 0;
  double elapsed = 0;  // seconds since the run started
};

// "0:07", "12:34", "1:02:03".
std::string format_duration(double seconds);

// The estimated seconds left, or a negative number when nothing finished yet.
double eta_seconds(const Progress& progress);

// One line of at most `width` columns (no newline).
std::string render_progress(const Progress& progress, int width);

}  // namespace ferry::run
