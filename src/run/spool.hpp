// Spool — output held until it may be printed: in memory while small, in an
// unlinked temporary file once large. Output of any size passes through
// whole while ferry's memory stays bounded; a crash leaves no file behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace ferry::run {

// What all spools of a run may keep in memory, and where they spill.
struct SpoolBudget {
  std::string directory;                 // for temporary files
  std::size_t per_spool = 256 * 1024;    // a spool spills past this
  std::size_t total = 16 * 1024 * 1024;  // or when all spools together would
  std::size_t in_memory = 0;             // bytes held by all spools now
};

// The directory for temporary files: `preferred`, else $TMPDIR, else /tmp.
std::string temporary_directory(const std::string& preferred);

class Spool {
 public:
  explicit Spool(SpoolBudget& budget) : budget_(&budget) {}
  ~Spool();
  Spool(Spool&& other) noexcept;
  Spool& operator=(Spool&& other) noexcept;
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Throws std::runtime_error when the temporary file cannot be written.
  void append(std::string_view data);
  std::uint64_t size() const { return memory_.size() + file_size_; }
  bool empty() const { return size() == 0; }
  bool spilled() const { return fd_ >= 0; }

  // Hands everything to `sink`, in order and in pieces, then empties the spool.
  void drain(const std::function<void(std::string_view)>& sink);

 private:
  void release();

  SpoolBudget* budget_;
  std::string memory_;
  int fd_ = -1;
  std::uint64_t file_size_ = 0;
};

}  // namespace ferry::run
