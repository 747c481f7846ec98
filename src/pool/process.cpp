#include "ferry/process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "ferry/error.hpp"
#include "pool/child.hpp"

namespace ferry {
namespace {
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
}  // namespace

Process::Process(std::function<void()> target, std::string name)
    : target_(std::move(target)), name_(std::move(name)) {}

Process Process::command(std::vector<std::string> argv, std::string name) {
  if (argv.empty()) throw Error("Process::command needs a program to run");
  Process process;
  process.name_ = name.empty() ? argv[0] : std::move(name);
  process.argv_ = std::move(argv);
  return process;
}

Process::Process(Process&& other) noexcept { *this = std::move(other); }

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    release();
    target_ = std::move(other.target_);
    argv_ = std::move(other.argv_);
    name_ = std::move(other.name_);
    pid_ = std::exchange(other.pid_, 0);
    owner_ = std::exchange(other.owner_, 0);
    pidfd_ = std::exchange(other.pidfd_, -1);
    exit_code_ = std::exchange(other.exit_code_, std::nullopt);
  }
  return *this;
}

Process::~Process() { release(); }

// A child still running dies with its object: nothing is left behind. In
// another process (a child that inherited this object), the child is not
// its to end.
void Process::release() {
  if (pid_ > 0 && !exit_code_ && ::getpid() == owner_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

void Process::start() {
  if (pid_ != 0) throw Error(fmt::format("process '{}' was already started", name_));
  std::fflush(nullptr);  // or buffered output would be written twice, by both processes
  pid_t parent = ::getpid();
  if (!argv_.empty()) {
    // fork and exec rather than posix_spawn, so that the child can ask to die
    // with its parent before it runs the program. A pipe closed by a
    // successful exec carries the error of a failed one.
    std::vector<char*> argv;
    for (auto& arg : argv_) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int status_pipe[2];
    if (::pipe2(status_pipe, O_CLOEXEC) < 0)
      throw Error(fmt::format("cannot run '{}': {}", argv_[0], std::strerror(errno)));
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(status_pipe[0]);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::raise(SIGKILL);
      ::execvp(argv[0], argv.data());
      int error = errno;
      [[maybe_unused]] ssize_t n = ::write(status_pipe[1], &error, sizeof error);
      ::_exit(127);
    }
    int fork_error = errno;
    ::close(status_pipe[1]);
    if (pid < 0) {
      ::close(status_pipe[0]);
      throw Error(fmt::format("cannot run '{}': {}", argv_[0], std::strerror(fork_error)));
    }
    int exec_error = 0;
    ssize_t n;
    while ((n = ::read(status_pipe[0], &exec_error, sizeof exec_error)) < 0 && errno == EINTR) {
    }
    ::close(status_pipe[0]);
    pid_ = pid;
    owner_ = parent;
    if (n > 0) {
      reap(true);
      pid_ = 0;
      exit_code_.reset();
      throw Error(fmt::format("cannot run '{}': {}", argv_[0], std::strerror(exec_error)));
    }
  } else {
    pid_t pid = ::fork();
    if (pid < 0)
      throw Error(fmt::format("cannot start process '{}': {}", name_, std::strerror(errno)));
    if (pid == 0) {
      detail::become_child(parent);
      int status = 0;
      try {
        target_();
      } catch (const std::exception& error) {
        std::fprintf(stderr, "ferry: process %s%s%d failed: %s\n", name_.c_str(),
                     name_.empty() ? "" : " ", ::getpid(), error.what());
        status = 1;
      } catch (...) {
        std::fprintf(stderr, "ferry: process %s failed with an unknown exception\n", name_.c_str());
        status = 1;
      }
      std::fflush(nullptr);
      ::_exit(status);  // the parent's atexit handlers and destructors are not ours to run
    }
    pid_ = pid;
    owner_ = parent;
  }
  pidfd_ = open_pidfd(pid_);
  if (pidfd_ < 0) {
    int error = errno;
    ::kill(pid_, SIGKILL);
    reap(true);
    throw Error(fmt::format("cannot watch process '{}': {}", name_, std::strerror(error)));
  }
}

bool Process::reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t done;
  while ((done = ::waitpid(pid_, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
  }
  if (done != pid_) return false;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return true;
}

bool Process::join(std::optional<std::chrono::milliseconds> timeout) {
  if (pid_ == 0) throw Error(fmt::format("cannot join process '{}': it was not started", name_));
  if (exit_code_) return true;
  if (timeout) {
    auto deadline = std::chrono::steady_clock::now() + *timeout;
    for (;;) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd watch{pidfd_, POLLIN, 0};
      int n = ::poll(&watch, 1, static_cast<int>(std::max<long long>(0, left.count())));
      if (n > 0) break;
      if (n == 0) return false;
      if (errno != EINTR) throw Error(fmt::format("poll: {}", std::strerror(errno)));
    }
  }
  return reap(true);
}

void Process::terminate() {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, SIGTERM);
}

void Process::kill() {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, SIGKILL);
}

bool Process::is_alive() { return pid_ > 0 && !reap(false); }

}  // namespace ferry
