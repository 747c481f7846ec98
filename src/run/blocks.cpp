#include "run/blocks.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace ferry::run {

BlockReader::BlockReader(int fd, std::size_t block, std::string recstart, std::string recend)
    : fd_(fd), block_(block), recstart_(std::move(recstart)), recend_(std::move(recend)) {
  struct stat info {};
  if (::fstat(fd, &info) == 0)
    pollable_ = S_ISFIFO(info.st_mode) || S_ISSOCK(info.st_mode) || ::isatty(fd);
}

// Where a block may end, at `position` or after: just past a recend
// (followed by a recstart, when both are given), or just before a recstart
// alone. npos when the buffer holds none yet.
std::size_t BlockReader::boundary_at_or_after(std::size_t position) const {
  if (!recstart_.empty() && recend_.empty()) {
    std::size_t at = buffer_.find(recstart_, std::max<std::size_t>(position, 1));
    return at;
  }
  std::size_t from = position >= recend_.size() ? position - recend_.size() : 0;
  for (;;) {
    std::size_t at = buffer_.find(recend_, from);
    if (at == std::string::npos) return at;
    std::size_t end = at + recend_.size();
    if (recstart_.empty()) return end;
    if (buffer_.size() < end + recstart_.size() && !eof_) return std::string::npos;
    if (buffer_.compare(end, recstart_.size(), recstart_) == 0) return end;
    from = at + 1;
  }
}

std::optional<std::string> BlockReader::next() {
  if (buffer_.empty()) return std::nullopt;
  if (buffer_.size() >= block_) {
    std::size_t cut = boundary_at_or_after(block_);
    if (cut != std::string::npos && cut > 0 && cut <= buffer_.size()) {
      std::string block = buffer_.substr(0, cut);
      buffer_.erase(0, cut);
      return block;
    }
  }
  if (!eof_) return std::nullopt;
  return std::exchange(buffer_, std::string());  // the rest, at the end of input
}

void BlockReader::fill() {
  if (eof_) return;
  std::size_t chunk = std::max<std::size_t>(64 * 1024, std::min<std::size_t>(block_, 1 << 20));
  std::size_t old_size = buffer_.size();
  buffer_.resize(old_size + chunk);
  ssize_t n;
  do {
    n = ::read(fd_, buffer_.data() + old_size, chunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int error = errno;
    buffer_.resize(old_size);
    throw std::runtime_error(std::string("cannot read the input: ") + std::strerror(error));
  }
  buffer_.resize(old_size + static_cast<std::size_t>(n));
  if (n == 0) eof_ = true;
}

}  // namespace ferry::run
