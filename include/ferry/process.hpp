// ferry::Process — run a function (or a program) in a child process.
//
// Like Python's multiprocessing.Process: construct it with what to run,
// start() it, join() it. The function runs in a child forked from this
// process, so it may capture anything: the child gets a copy of this
// process's memory as it was at start(). Its return ends the child with
// status 0; an exception ends it with status 1 after printing the message to
// stderr; std::exit(n) ends it with n at once, without running this
// process's atexit handlers and static destructors (they are the parent's:
// its pools, its Process objects).
//
//   ferry::Process child([&] { work(config); }, "worker-1");
//   child.start();
//   child.join();
//   if (child.exit_code() != 0) ...
//
// A Process never outlives its object: the destructor kills a child that is
// still running and reaps it, so no zombie or orphan is left behind. Nor
// does it outlive this process: a child gets SIGKILL when its parent dies,
// even of a signal. (Linux ties this to the thread that called start():
// start processes from a thread that lives as long as they should.)
//
// fork() copies only the calling thread. Start processes before starting
// threads, or make sure no other thread holds a lock the child will need
// (the same rule as Python's "fork" start method).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ferry {

class Process {
 public:
  // Runs `target` in the child.
  explicit Process(std::function<void()> target, std::string name = {});
  // Runs a program (searched in PATH) in the child.
  static Process command(std::vector<std::string> argv, std::string name = {});

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  // Starts the child. Throws ferry::Error if it was started before or the
  // system refuses (no program of that name, out of processes).
  void start();

  // Waits for the child to end; with a timeout, at most that long. Returns
  // whether it ended. Joining a process that was never started throws.
  bool join(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  void terminate();  // SIGTERM
  void kill();       // SIGKILL

  bool is_alive();
  pid_t pid() const { return pid_; }  // 0 before start()
  // nullopt while running (or before start); the exit status, or the negative
  // number of the signal that killed it, as Python reports it.
  std::optional<int> exit_code() const { return exit_code_; }
  const std::string& name() const { return name_; }

 private:
  Process() = default;
  bool reap(bool block);
  void release();

  std::function<void()> target_;
  std::vector<std::string> argv_;
  std::string name_;
  pid_t pid_ = 0;
  pid_t owner_ = 0;  // the process that started it
  int pidfd_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace ferry
