#include "run/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ferry::run {

std::string format_duration(double seconds) {
  auto total = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  long long hours = total / 3600, minutes = total / 60 % 60, secs = total % 60;
  if (hours > 0) return fmt::format("{}:{:02}:{:02}", hours, minutes, secs);
  return fmt::format("{}:{:02}", minutes, secs);
}

double eta_seconds(const Progress& p) {
  std::uint64_t done = p.succeeded + p.failed;
  if (done == 0 || p.elapsed <= 0 || !p.total_known) return -1;
  return p.elapsed / static_cast<double>(done) * static_cast<double>(p.total - done);
}

std::string render_progress(const Progress& p, int width) {
  std::uint64_t done = p.succeeded + p.failed;
  double fraction = p.total ? static_cast<double>(done) / static_cast<double>(p.total) : 1.0;
  double eta = eta_seconds(p);
  double rate = p.elapsed > 0 ? static_cast<double>(done) / p.elapsed : 0;
  std::string counts = fmt::format(" {}/{}{}", done, p.total, p.total_known ? "" : "+");
  if (p.failed) counts += fmt::format(" failed {}", p.failed);
  counts += fmt::format(" running {} {:.1f}/s ETA {}", p.running, rate,
                        eta < 0 ? "?" : format_duration(eta));
  std::string percent = fmt::format("{:3}% ", static_cast<int>(fraction * 100));

  int bar_width = width - static_cast<int>(percent.size() + counts.size()) - 2;
  if (bar_width < 10) {  // too narrow for a bar: the numbers alone, cut to fit
    std::string line = percent + counts.substr(1);
    return line.substr(0, static_cast<std::size_t>(std::max(width, 0)));
  }
  auto filled = static_cast<int>(fraction * bar_width);
  std::string bar = "[" + std::string(static_cast<std::size_t>(filled), '=');
  if (filled < bar_width)
    bar += '>' + std::string(static_cast<std::size_t>(bar_width - filled - 1), ' ');
  return percent + bar + "]" + counts;
}

}  // namespace ferry::run
