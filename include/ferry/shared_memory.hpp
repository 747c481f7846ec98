// ferry::SharedMemory — a block of shared memory with a name.
//
// Python's multiprocessing.shared_memory.SharedMemory: one process creates a
// block of bytes under a name in /dev/shm, others attach to it by that name
// — related or not, ferry programs or Python ones (the names and the bytes
// are the same) — and all of them see the same bytes.
//
//   auto block = ferry::SharedMemory::create(1 << 20);   // a fresh name
//   send_to_another_process(block.name());
//   ...
//   auto same = ferry::SharedMemory::attach(name);       // in that process
//   std::span<std::byte> bytes = same.buf();
//
// The block is plain bytes: what is in it, and who writes when, is yours to
// arrange (a ferry::Lock or Semaphore by name, or a Value/Array, which carry
// their own lock). Unlike Python, the creator's handle removes the name
// from /dev/shm when it is destroyed, so a program that ends, even by an
// exception, leaves nothing behind; keep_name() keeps it for later
// processes, and then someone must unlink() it. Processes that have the
// block keep it until they close it, whatever happens to the name.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "ferry/detail/shared_region.hpp"

namespace ferry {

class SharedMemory {
 public:
  // A new block of `size` bytes (above 0), zeroed, under a fresh name
  // ("ferry-<pid>-<random>").
  static SharedMemory create(std::size_t size);
  // Under `name` (1 to 200 letters, digits, '.', '_', '-'); ferry::Error if
  // the name exists.
  static SharedMemory create(const std::string& name, std::size_t size);
  // The block named `name`, with the size it has.
  static SharedMemory attach(const std::string& name);

  SharedMemory(SharedMemory&&) noexcept = default;
  SharedMemory& operator=(SharedMemory&&) noexcept = default;

  const std::string& name() const { return name_; }
  std::size_t size() const { return region_.size(); }
  std::byte* data() const { return region_.data(); }
  std::span<std::byte> buf() const { return {region_.data(), region_.size()}; }

  // Unmaps the block in this process (data() is null after); the name stays.
  void close() { region_.unmap(); }
  // Removes the name: no process can attach any more; those attached keep it.
  void unlink() { region_.unlink(); }
  // Leaves the name after this handle is gone.
  void keep_name() { region_.keep_name(); }

 private:
  SharedMemory(detail::SharedRegion region, std::string name)
      : region_(std::move(region)), name_(std::move(name)) {}
  detail::SharedRegion region_;
  std::string name_;
};

}  // namespace ferry
