// The worker process's side of a Pool: read tasks, run them, send results.
//
// A worker reads tasks from one pipe and writes results to another. Frames
// both ways are a u64 payload length, then the payload:
//   to a worker:   u64 task number, u64 invoker address, u64 function address,
//                  u64 item count, the items' arguments
//   from a worker: u64 task number, the results (see ResultFormat)
// Task numbers count per worker from 1 (modulo 2^32, see TaskClaim). A worker
// runs the tasks it can claim, in order, and skips those the pool took back.
// Task number 0 tells it to exit (as does the end of the task pipe).
//
// A spawned worker first reads a setup frame (SpawnSetup) and answers with a
// frame for task 0 once it serves: a worker that dies before that could not
// start, and is not replaced.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pool/code_address.hpp"
#include "pool/task_claim.hpp"

namespace ferry::detail {

// A worker's exit status when its initializer threw, or the worker itself
// failed (a bug); the pool reports these instead of replacing it for ever.
constexpr int kInitializerFailed = 121;
constexpr int kWorkerFailed = 122;

// The environment variable that makes a run of the program a spawned worker:
// "TASKS RESULTS CLAIMS SLOT PARENT" (three inherited descriptors, the
// worker's slot among the claims, the parent's pid).
constexpr const char* kSpawnedWorkerVariable = "FERRY_POOL_WORKER";

// What a spawned worker is told first; a forked one knows it already.
struct SpawnSetup {
  std::uint64_t max_tasks = 0;    // 0: no limit
  std::uint64_t initializer = 0;  // the address of a void() function, or 0
  std::vector<LoadedModule> modules;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(max_tasks, initializer, modules);
  }
};

// Reads frames from a blocking pipe, many per read() when many came.
class FrameReader {
 public:
  explicit FrameReader(int fd);
  // The next frame's payload, valid until the next call; nullopt at the end.
  std::optional<std::string_view> next();

 private:
  int fd_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0, end_ = 0, consumed_ = 0;
};

struct WorkerSetup {
  int results = -1;  // the result pipe's write end
  TaskClaim* claim = nullptr;
  int max_tasks = 0;
  std::function<void()> initializer;
  AddressTranslation addresses;  // identity when forked
};

// Runs the initializer, then tasks until told to stop (or the task pipe
// ends) or max_tasks were run; then ends the process. Never returns.
[[noreturn]] void serve_tasks(WorkerSetup setup, FrameReader& frames);

// In a run of the program started as a spawned worker: serves tasks and ends
// the process. Elsewhere: returns at once. Runs during the program's static
// initialization (and from the Pool constructor, should a static pool come
// first), so that a spawned worker never reaches main().
void serve_if_spawned();

}  // namespace ferry::detail
