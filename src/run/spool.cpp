#include "run/spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace ferry::run {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& directory) {
  throw std::runtime_error(what + " a temporary file in '" + directory +
                           "': " + std::strerror(errno));
}

// An unlinked file: O_TMPFILE where the file system has it, else a named
// file removed at once.
int open_temporary(const std::string& directory) {
  int fd = ::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string pattern = directory + "/ferry-spool-XXXXXX";
  fd = ::mkostemp(pattern.data(), O_CLOEXEC);
  if (fd < 0) fail("cannot create", directory);
  ::unlink(pattern.c_str());
  return fd;
}

void write_all(int fd, std::string_view data, const std::string& directory) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write", directory);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::string temporary_directory(const std::string& preferred) {
  if (!preferred.empty()) return preferred;
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir && *tmpdir ? tmpdir : "/tmp";
}

Spool::~Spool() { release(); }

Spool::Spool(Spool&& other) noexcept
    : budget_(other.budget_),
      memory_(std::move(other.memory_)),
      fd_(std::exchange(other.fd_, -1)),
      file_size_(std::exchange(other.file_size_, 0)) {
  other.memory_.clear();
}

Spool& Spool::operator=(Spool&& other) noexcept {
  if (this != &other) {
    release();
    budget_ = other.budget_;
    memory_ = std::move(other.memory_);
    other.memory_.clear();
    fd_ = std::exchange(other.fd_, -1);
    file_size_ = std::exchange(other.file_size_, 0);
  }
  return *this;
}

void Spool::release() {
  budget_->in_memory -= memory_.size();
  memory_.clear();
  memory_.shrink_to_fit();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  file_size_ = 0;
}

void Spool::append(std::string_view data) {
  if (data.empty()) return;
  if (fd_ < 0) {
    bool fits = memory_.size() + data.size() <= budget_->per_spool &&
                budget_->in_memory + data.size() <= budget_->total;
    if (fits) {
      memory_.append(data);
      budget_->in_memory += data.size();
      return;
    }
    fd_ = open_temporary(budget_->directory);
    write_all(fd_, memory_, budget_->directory);
    file_size_ = memory_.size();
    budget_->in_memory -= memory_.size();
    memory_.clear();
    memory_.shrink_to_fit();
  }
  write_all(fd_, data, budget_->directory);
  file_size_ += data.size();
}

void Spool::drain(const std::function<void(std::string_view)>& sink) {
  if (fd_ >= 0) {
    std::string chunk(1 << 20, '\0');
    for (std::uint64_t offset = 0; offset < file_size_;) {
      ssize_t n = ::pread(fd_, chunk.data(), chunk.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("cannot read back", budget_->directory);
      sink(std::string_view(chunk.data(), static_cast<std::size_t>(n)));
      offset += static_cast<std::uint64_t>(n);
    }
  } else if (!memory_.empty()) {
    sink(memory_);
  }
  release();
}

}  // namespace ferry::run
