#include "run/joblog.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "run/inputs.hpp"

namespace ferry::run {
namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (;;) {
    std::size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) return fields;
    start = tab + 1;
  }
}

template <typename Number>
bool parse_number(const std::string& text, Number& value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string format_row(const JoblogRow& row) {
  return fmt::format("{}\t{}\t{:.3f}\t{:.3f}\t{}\t{}\t{}\t{}\t{}\n", row.seq, row.host, row.start,
                     row.runtime, row.sent, row.received, row.exit_code, row.signal, row.command);
}

Joblog::Joblog(const std::string& path, bool keep) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (keep ? 0 : O_TRUNC), 0644);
  if (fd_ < 0)
    throw UsageError(fmt::format("cannot open joblog '{}': {}", path, std::strerror(errno)));
  struct stat info {};
  if (keep && ::fstat(fd_, &info) == 0 && info.st_size > 0) cut_torn_line(info.st_size);
  if (::fstat(fd_, &info) == 0 && info.st_size == 0) {
    std::string header = std::string(kJoblogHeader) + "\n";
    if (::write(fd_, header.data(), header.size()) != static_cast<ssize_t>(header.size()))
      throw UsageError(fmt::format("cannot write joblog '{}': {}", path, std::strerror(errno)));
  }
}

// The file ends in a line without its newline: a row whose write a crash
// interrupted. It is cut back to the last newline.
void Joblog::cut_torn_line(off_t size) {
  char last = 0;
  if (::pread(fd_, &last, 1, size - 1) != 1 || last == '\n') return;
  constexpr off_t kChunk = 4096;
  std::string chunk(kChunk, '\0');
  for (off_t end = size; end > 0;) {
    off_t start = std::max<off_t>(0, end - kChunk);
    ssize_t n = ::pread(fd_, chunk.data(), static_cast<std::size_t>(end - start), start);
    if (n != end - start) return;
    auto newline = std::string_view(chunk.data(), static_cast<std::size_t>(n)).rfind('\n');
    if (newline != std::string_view::npos) {
      if (::ftruncate(fd_, start + static_cast<off_t>(newline) + 1) < 0)
        throw UsageError(fmt::format("cannot repair joblog '{}': {}", path_, std::strerror(errno)));
      return;
    }
    end = start;
  }
  // Not one whole line, not even the header: start the file over.
  if (::ftruncate(fd_, 0) < 0)
    throw UsageError(fmt::format("cannot repair joblog '{}': {}", path_, std::strerror(errno)));
}

Joblog::~Joblog() {
  if (fd_ >= 0) ::close(fd_);
}

void Joblog::append(const JoblogRow& row) {
  std::string line = format_row(row);
  // One write per row: O_APPEND makes it land whole at the end.
  if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    throw std::runtime_error(
        fmt::format("cannot write joblog '{}': {}", path_, std::strerror(errno)));
}

JoblogSummary read_joblog(const std::string& path) {
  JoblogSummary summary;
  std::ifstream file(path, std::ios::binary);
  if (!file) return summary;
  std::stringstream content;
  content << file.rdbuf();
  std::string text = content.str();
  if (text.empty()) return summary;
  std::size_t header_end = text.find('\n');
  if (text.substr(0, header_end) != kJoblogHeader)
    throw UsageError(fmt::format("'{}' is not a joblog (its first line is not the header)", path));

  std::size_t start = header_end + 1;
  std::uint64_t line_number = 1;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // torn last line
    ++line_number;
    auto fields = split_tabs(text.substr(start, end - start));
    start = end + 1;
    std::uint64_t seq = 0;
    int exit_code = 0, signal = 0;
    if (fields.size() != 9 || !parse_number(fields[0], seq) ||
        !parse_number(fields[6], exit_code) || !parse_number(fields[7], signal))
      throw UsageError(fmt::format("joblog '{}' line {} is malformed", path, line_number));
    summary.recorded.insert(seq);
    if (exit_code == 0 && signal == 0) summary.succeeded.insert(seq);
  }
  return summary;
}

}  // namespace ferry::run
