// BlockReader — `ferry run --pipe`: stdin cut into blocks of whole records,
// each the stdin of one job. A block is cut at the first record boundary at
// or past the block size (as GNU parallel does), so no record is split; the
// boundary is after --recend (default "\n") or, with --recstart, before it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace ferry::run {

class BlockReader {
 public:
  BlockReader(int fd, std::size_t block, std::string recstart, std::string recend);

  // The next block the buffer holds, or nullopt: then fill() or at_end().
  std::optional<std::string> next();
  // One read(2); blocks when a pipe holds nothing yet.
  void fill();
  bool at_end() const { return eof_ && buffer_.empty(); }
  int fd() const { return fd_; }
  bool pollable() const { return pollable_; }

 private:
  std::size_t boundary_at_or_after(std::size_t position) const;

  int fd_;
  std::size_t block_;
  std::string recstart_;
  std::string recend_;
  bool pollable_ = false;
  bool eof_ = false;
  std::string buffer_;
};

}  // namespace ferry::run
