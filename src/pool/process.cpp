#include "ferry/process.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "ferry/error.hpp"

extern char** environ;

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
    pidfd_ = std::exchange(other.pidfd_, -1);
    exit_code_ = std::exchange(other.exit_code_, std::nullopt);
  }
  return *this;
}

Process::~Process() { release(); }

// A child still running dies with its object: nothing is left behind.
void Process::release() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

void Process::start() {
  if (pid_ != 0) throw Error(fmt::format("process '{}' was already started", name_));
  std::fflush(nullptr);  // or buffered output would be written twice, by both processes
  if (!argv_.empty()) {
    std::vector<char*> argv;
    for (auto& arg : argv_) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawnp(&pid_, argv[0], nullptr, nullptr, argv.data(), environ);
    if (rc != 0) {
      pid_ = 0;
      throw Error(fmt::format("cannot run '{}': {}", argv_[0], std::strerror(rc)));
    }
  } else {
    pid_t pid = ::fork();
    if (pid < 0)
      throw Error(fmt::format("cannot start process '{}': {}", name_, std::strerror(errno)));
    if (pid == 0) {
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
