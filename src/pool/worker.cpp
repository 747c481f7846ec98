// Included first: its static initialization (the standard streams) must come
// before a spawned worker starts serving tasks from this file's own.
#include <iostream>

#include "pool/worker.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "ferry/detail/pool_tasks.hpp"
#include "pool/child.hpp"

namespace ferry::detail {

FrameReader::FrameReader(int fd) : fd_(fd), buffer_(1 << 16) {}

std::optional<std::string_view> FrameReader::next() {
  begin_ += consumed_;
  consumed_ = 0;
  for (;;) {
    std::size_t have = end_ - begin_;
    std::size_t needed = 8;
    if (have >= 8) {
      std::uint64_t length;
      std::memcpy(&length, buffer_.data() + begin_, 8);
      needed = 8 + length;
      if (have >= needed) {
        consumed_ = needed;
        return std::string_view(buffer_.data() + begin_ + 8, length);
      }
    }
    std::memmove(buffer_.data(), buffer_.data() + begin_, have);
    begin_ = 0;
    end_ = have;
    if (buffer_.size() < needed) buffer_.resize(std::max(needed, buffer_.size() * 2));
    ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    end_ += static_cast<std::size_t>(n);
  }
}

namespace {

bool write_exact(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// A frame for task `number` holding `results`, in `frame` (reused).
void start_reply(std::string& frame, std::uint64_t number) {
  frame.assign(16, '\0');
  std::memcpy(frame.data() + 8, &number, 8);
}
bool send_reply(int pipe, std::string& frame) {
  std::uint64_t length = frame.size() - 8;
  std::memcpy(frame.data(), &length, 8);
  return write_exact(pipe, frame.data(), frame.size());
}

}  // namespace

void serve_tasks(WorkerSetup setup, FrameReader& frames) {
  if (setup.initializer) {
    try {
      setup.initializer();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ferry: pool worker %d: the initializer failed: %s\n", ::getpid(),
                   error.what());
      std::fflush(nullptr);
      ::_exit(kInitializerFailed);
    }
  }
  std::string reply;
  int finished = 0;
  while (auto frame = frames.next()) {
    Reader reader(*frame);
    auto number = decode<std::uint64_t>(reader);
    if (number == 0) break;  // the pool stops
    auto invoker = decode<std::uint64_t>(reader);
    auto function = decode<std::uint64_t>(reader);
    auto count = static_cast<std::size_t>(decode<std::uint64_t>(reader));
    // A task the pool took back (to give it to an idle worker) is skipped.
    if (!setup.claim->try_start(static_cast<std::uint32_t>(number), Clock::now())) continue;
    start_reply(reply, number);
    Writer writer(reply);
    auto local_invoker = setup.addresses.to_local(invoker);
    auto local_function = setup.addresses.to_local(function);
    if (local_invoker && local_function) {
      reinterpret_cast<Invoker> (*local_invoker)(*local_function, count, reader, writer);
    } else {
      write_chunk_failure(writer, count,
                          "the task's function is in a library that this spawned worker "
                          "process did not load at start");
    }
    std::fflush(nullptr);  // what the task printed, before the pool hears it finished
    if (!send_reply(setup.results, reply)) break;
    if (setup.max_tasks > 0 && ++finished >= setup.max_tasks) break;
  }
  std::fflush(nullptr);
  ::_exit(0);
}

void serve_if_spawned() {
  const char* value = std::getenv(kSpawnedWorkerVariable);
  if (!value) return;
  int tasks = -1, results = -1, claims = -1;
  unsigned long slot = 0;
  long parent = 0;
  bool parsed =
      std::sscanf(value, "%d %d %d %lu %ld", &tasks, &results, &claims, &slot, &parent) == 5;
  // Programs this worker's tasks start are not workers.
  ::unsetenv(kSpawnedWorkerVariable);
  if (!parsed) return;
  become_child(static_cast<pid_t>(parent));
  // Nothing may unwind out of here: this is static initialization.
  try {
    std::size_t offset = slot * sizeof(TaskClaim);
    void* memory =
        ::mmap(nullptr, offset + sizeof(TaskClaim), PROT_READ | PROT_WRITE, MAP_SHARED, claims, 0);
    if (memory == MAP_FAILED) throw std::runtime_error(std::strerror(errno));
    ::close(claims);
    FrameReader frames(tasks);
    auto first = frames.next();
    if (!first) ::_exit(0);  // the pool is gone already
    auto setup = from_bytes<SpawnSetup>(*first);
    WorkerSetup worker;
    worker.results = results;
    worker.claim = reinterpret_cast<TaskClaim*>(static_cast<char*>(memory) + offset);
    worker.max_tasks = static_cast<int>(setup.max_tasks);
    worker.addresses = AddressTranslation(setup.modules);
    if (setup.initializer) {
      auto initializer = worker.addresses.to_local(setup.initializer);
      if (!initializer) throw std::runtime_error("the initializer is not in this program");
      worker.initializer = reinterpret_cast<void (*)()>(*initializer);
    }
    std::string ready;
    start_reply(ready, 0);
    if (!send_reply(results, ready)) ::_exit(0);
    serve_tasks(std::move(worker), frames);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "ferry: spawned pool worker %d failed: %s\n", ::getpid(), error.what());
  }
  std::fflush(nullptr);
  ::_exit(kWorkerFailed);
}

namespace {
// A run of the program started as a spawned worker serves here, during
// static initialization, and never reaches main().
[[maybe_unused]] const bool serving_if_spawned = (serve_if_spawned(), true);
}  // namespace

}  // namespace ferry::detail
