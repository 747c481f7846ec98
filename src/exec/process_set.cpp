#include "exec/process_set.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

extern char** environ;

namespace ferry::exec {
namespace {

// epoll data: the child's id in the high bits, what the fd is in the low two.
enum FdKind : std::uint64_t { kStdout = 0, kStderr = 1, kStdin = 2, kPidfd = 3 };
constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};
constexpr int kReadsPerEvent = 16;  // 1 MiB of one child's output per round of events

std::uint64_t tag(ProcessSet::Id id, FdKind kind) { return id << 2 | kind; }

// glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage, so C++
// cannot link against it; the system call is the same.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// For the parent's end of a fresh pipe, whose only status flag is its
// access mode: one fcntl instead of a get-modify-set pair.
void set_nonblocking(int fd, int access_mode) {
  if (::fcntl(fd, F_SETFL, access_mode | O_NONBLOCK) < 0) fail("fcntl");
}

std::chrono::microseconds to_duration(const timeval& tv) {
  return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
}

// Builds "NAME=value" pointers for the child: the inherited environment with
// `overrides` replacing entries of the same name. The strings must outlive
// the spawn; they point into `overrides` and environ.
std::vector<char*> merged_environment(const std::vector<std::string>& overrides) {
  auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  std::vector<char*> result;
  for (char** entry = environ; *entry; ++entry) {
    std::string_view name = name_of(*entry);
    bool replaced = std::any_of(overrides.begin(), overrides.end(),
                                [&](const std::string& o) { return name_of(o) == name; });
    if (!replaced) result.push_back(*entry);
  }
  for (const std::string& entry : overrides) result.push_back(const_cast<char*>(entry.c_str()));
  result.push_back(nullptr);
  return result;
}

}  // namespace

Command shell_command(std::string script) {
  Command command;
  command.argv = {"/bin/sh", "-c", std::move(script)};
  return command;
}

std::string describe(const Result& result) {
  switch (result.end) {
    case End::exited:
      return "exit " + std::to_string(result.exit_code);
    case End::signaled: {
      const char* name = ::sigabbrev_np(result.signal);
      return name ? std::string("killed by SIG") + name
                  : "killed by signal " + std::to_string(result.signal);
    }
    case End::timed_out:
      return "timed out";
    case End::failed_to_start:
      return result.error;
  }
  return "unknown";
}

struct ProcessSet::Child {
  Id id = 0;
  pid_t pid = 0;
  int pidfd = -1;
  int out_fd = -1;
  int err_fd = -1;
  int in_fd = -1;
  std::string stdin_data;
  std::size_t stdin_written = 0;
  std::size_t output_limit = 0;
  OutputHandler on_output;
  milliseconds kill_grace{0};
  Clock::time_point started;
  std::optional<Clock::time_point> terminate_at;  // the timeout
  std::optional<Clock::time_point> kill_at;       // SIGTERM was sent; SIGKILL then
  bool killing = false;  // we signalled the group: finish off stragglers at exit
  Result result;
};

struct ProcessSet::Impl {
  int epoll_fd = -1;
  int dev_null = -1;  // every child's stdin unless it gets data: dup2 beats open in the child
  int registered_wake_fd = -1;
  Id next_id = 1;
  posix_spawnattr_t attributes;
  std::unordered_map<Id, std::unique_ptr<Child>> children;
  std::vector<Finished> finished;

  Impl() {
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) fail("epoll_create1");
    dev_null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (dev_null < 0) fail("open /dev/null");
    // The child gets its own process group, an empty signal mask and default
    // dispositions for the signals a supervisor typically blocks or ignores.
    posix_spawnattr_init(&attributes);
    sigset_t mask;
    sigemptyset(&mask);
    posix_spawnattr_setsigmask(&attributes, &mask);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signal : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD})
      sigaddset(&defaults, signal);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }

  ~Impl() {
    for (auto& [id, child] : children) {
      ::kill(-child->pid, SIGKILL);
      ::waitpid(child->pid, nullptr, 0);
      close_all(*child);
    }
    posix_spawnattr_destroy(&attributes);
    close_fd(dev_null);
    close_fd(epoll_fd);
  }

  static void close_all(Child& child) {
    close_fd(child.out_fd);
    close_fd(child.err_fd);
    close_fd(child.in_fd);
    close_fd(child.pidfd);
  }

  void watch(int fd, std::uint32_t events, std::uint64_t data) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = data;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) fail("epoll_ctl");
  }

  // Reads what the pipe holds now, at most `max_reads` chunks: one child's
  // flood of output must not starve the others (epoll is level-triggered,
  // so the rest is read on the next round). Closes it at end of file.
  static void drain(Child& child, Stream stream, int max_reads) {
    bool is_out = stream == Stream::out;
    int& fd = is_out ? child.out_fd : child.err_fd;
    Result& result = child.result;
    std::string& buffer = is_out ? result.out : result.err;
    std::uint64_t& dropped = is_out ? result.out_dropped : result.err_dropped;
    std::uint64_t& total = is_out ? result.out_bytes : result.err_bytes;
    char chunk[65536];
    for (int reads = 0; fd >= 0 && reads < max_reads;) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n > 0) {
        ++reads;
        auto size = static_cast<std::size_t>(n);
        total += size;
        if (child.on_output) {
          child.on_output(stream, std::string_view(chunk, size));
          continue;
        }
        buffer.append(chunk, size);
        // Trim only when twice over the limit, so trimming stays amortized O(1).
        if (buffer.size() > 2 * child.output_limit) {
          std::size_t excess = buffer.size() - child.output_limit;
          buffer.erase(0, excess);
          dropped += excess;
        }
      } else if (n == 0) {
        close_fd(fd);
      } else if (errno == EINTR) {
        continue;
      } else {
        if (errno != EAGAIN) close_fd(fd);
        return;
      }
    }
  }

  static void trim(std::string& buffer, std::uint64_t& dropped, std::size_t limit) {
    if (buffer.size() <= limit) return;
    std::size_t excess = buffer.size() - limit;
    buffer.erase(0, excess);
    dropped += excess;
  }

  static void feed_stdin(Child& child) {
    while (child.in_fd >= 0 && child.stdin_written < child.stdin_data.size()) {
      ssize_t n = ::write(child.in_fd, child.stdin_data.data() + child.stdin_written,
                          child.stdin_data.size() - child.stdin_written);
      if (n > 0) {
        child.stdin_written += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        if (n < 0 && errno == EAGAIN) return;
        break;  // EPIPE: the child does not want the rest
      }
    }
    close_fd(child.in_fd);  // end of input
    child.stdin_data.clear();
  }

  // The child exited: collect what its pipes still hold, reap it, report it.
  void reap(Child& child) {
    Result& result = child.result;
    drain(child, Stream::out, std::numeric_limits<int>::max());
    drain(child, Stream::err, std::numeric_limits<int>::max());
    // The group leader is a zombie until reaped, so its group id cannot be
    // reused yet: finishing off the rest of a group we were killing is safe.
    if (child.killing) ::kill(-child.pid, SIGKILL);
    int status = 0;
    rusage usage{};
    while (::wait4(child.pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    result.wall = Clock::now() - child.started;
    result.user_cpu = to_duration(usage.ru_utime);
    result.system_cpu = to_duration(usage.ru_stime);
    result.max_rss_kb = usage.ru_maxrss;
    bool timed_out = result.end == End::timed_out;
    if (WIFEXITED(status)) {
      result.exit_code = WEXITSTATUS(status);
      if (timed_out) result.signal = 0;  // it exited by itself after the SIGTERM
    } else if (WIFSIGNALED(status)) {
      if (!timed_out) result.end = End::signaled;
      result.signal = WTERMSIG(status);
    }
    trim(result.out, result.out_dropped, child.output_limit);
    trim(result.err, result.err_dropped, child.output_limit);
    close_all(child);
    Id id = child.id;
    finished.push_back({id, std::move(result)});
    children.erase(id);
  }

  void handle(std::uint64_t data) {
    auto it = children.find(data >> 2);
    if (it == children.end()) return;
    Child& child = *it->second;
    switch (static_cast<FdKind>(data & 3)) {
      case kStdout:
        drain(child, Stream::out, kReadsPerEvent);
        break;
      case kStderr:
        drain(child, Stream::err, kReadsPerEvent);
        break;
      case kStdin:
        feed_stdin(child);
        break;
      case kPidfd:
        reap(child);
        break;
    }
  }

  // Sends due SIGTERMs and SIGKILLs; returns the earliest pending one.
  std::optional<Clock::time_point> enforce_deadlines(Clock::time_point now) {
    std::optional<Clock::time_point> next;
    auto consider = [&](const std::optional<Clock::time_point>& t) {
      if (t && (!next || *t < *next)) next = t;
    };
    for (auto& [id, child] : children) {
      if (child->terminate_at && now >= *child->terminate_at) {
        child->terminate_at.reset();
        child->result.end = End::timed_out;
        child->result.signal = SIGTERM;
        child->killing = true;
        ::kill(-child->pid, SIGTERM);
        child->kill_at = now + child->kill_grace;
      }
      if (child->kill_at && now >= *child->kill_at) {
        child->kill_at.reset();
        if (child->result.end == End::timed_out) child->result.signal = SIGKILL;
        ::kill(-child->pid, SIGKILL);
      }
      consider(child->terminate_at);
      consider(child->kill_at);
    }
    return next;
  }
};

ProcessSet::ProcessSet() : impl_(std::make_unique<Impl>()) {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL)
    ::signal(SIGPIPE, SIG_IGN);
}

ProcessSet::~ProcessSet() = default;

ProcessSet::Id ProcessSet::start(const Command& command) {
  auto child = std::make_unique<Child>();
  child->id = impl_->next_id++;
  child->output_limit = command.output_limit;
  child->on_output = command.on_output;
  child->started = Clock::now();
  Id id = child->id;

  auto fail_to_start = [&](int code, std::string error) {
    child->result.end = End::failed_to_start;
    child->result.exit_code = code;
    child->result.error = std::move(error);
    impl_->finished.push_back({id, std::move(child->result)});
    return id;
  };
  if (command.argv.empty() || command.argv[0].empty())
    return fail_to_start(127, "cannot run an empty command");

  // A stream the caller redirects to one of its descriptors gets no pipe.
  int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
  auto close_pipes = [&] {
    for (int fd : {out[0], out[1], err[0], err[1], in[0], in[1]})
      if (fd >= 0) ::close(fd);
  };
  bool has_stdin = command.stdin_data.has_value();
  if ((command.stdout_fd < 0 && ::pipe2(out, O_CLOEXEC) < 0) ||
      (command.stderr_fd < 0 && ::pipe2(err, O_CLOEXEC) < 0) ||
      (has_stdin && ::pipe2(in, O_CLOEXEC) < 0)) {
    int error = errno;
    close_pipes();
    errno = error;
    fail("pipe2");
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (has_stdin)
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  else
    posix_spawn_file_actions_adddup2(&actions, impl_->dev_null, 0);
  posix_spawn_file_actions_adddup2(&actions, command.stdout_fd >= 0 ? command.stdout_fd : out[1],
                                   1);
  posix_spawn_file_actions_adddup2(&actions, command.stderr_fd >= 0 ? command.stderr_fd : err[1],
                                   2);
  if (!command.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, command.cwd.c_str());

  std::vector<char*> argv;
  argv.reserve(command.argv.size() + 1);
  for (const std::string& arg : command.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (!command.env.empty()) envp = merged_environment(command.env);

  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &impl_->attributes, argv.data(),
                          envp.empty() ? environ : envp.data());
  posix_spawn_file_actions_destroy(&actions);
  for (int* fd : {&out[1], &err[1], &in[0]}) close_fd(*fd);

  if (rc != 0) {
    close_pipes();
    std::string where = command.cwd.empty() ? "" : " in '" + command.cwd + "'";
    return fail_to_start(rc == ENOENT ? 127 : 126,
                         "cannot run '" + command.argv[0] + "'" + where + ": " + std::strerror(rc));
  }

  child->pid = pid;
  child->out_fd = out[0];
  child->err_fd = err[0];
  child->in_fd = in[1];
  child->pidfd = open_pidfd(pid);
  if (child->pidfd < 0) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    Impl::close_all(*child);
    fail("pidfd_open");
  }
  for (auto [fd, kind] : {std::pair{child->out_fd, kStdout}, std::pair{child->err_fd, kStderr}}) {
    if (fd < 0) continue;
    set_nonblocking(fd, O_RDONLY);
    impl_->watch(fd, EPOLLIN, tag(id, kind));
  }
  impl_->watch(child->pidfd, EPOLLIN, tag(id, kPidfd));
  if (has_stdin) {
    set_nonblocking(child->in_fd, O_WRONLY);
    child->stdin_data = *command.stdin_data;
    Impl::feed_stdin(*child);
    if (child->in_fd >= 0) impl_->watch(child->in_fd, EPOLLOUT, tag(id, kStdin));
  }
  child->kill_grace = command.kill_grace;
  if (command.timeout.count() > 0) child->terminate_at = child->started + command.timeout;
  impl_->children.emplace(id, std::move(child));
  return id;
}

pid_t ProcessSet::pid(Id id) const {
  auto it = impl_->children.find(id);
  return it == impl_->children.end() ? 0 : it->second->pid;
}

std::vector<ProcessSet::Finished> ProcessSet::wait(std::optional<Clock::time_point> deadline,
                                                   int wake_fd) {
  if (wake_fd != impl_->registered_wake_fd) {
    if (impl_->registered_wake_fd >= 0)
      ::epoll_ctl(impl_->epoll_fd, EPOLL_CTL_DEL, impl_->registered_wake_fd, nullptr);
    impl_->registered_wake_fd = -1;
    if (wake_fd >= 0) {
      impl_->watch(wake_fd, EPOLLIN, kWakeTag);
      impl_->registered_wake_fd = wake_fd;
    }
  }

  epoll_event events[256];
  for (;;) {
    auto now = Clock::now();
    auto next = impl_->enforce_deadlines(now);
    if (!impl_->finished.empty()) break;
    if (deadline && (!next || *deadline < *next)) next = deadline;
    if (next && *next <= now) break;
    timespec timeout{};
    if (next) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*next - now).count();
      timeout.tv_sec = left / 1'000'000'000;
      timeout.tv_nsec = left % 1'000'000'000;
    }
    int n = ::epoll_pwait2(impl_->epoll_fd, events, 256, next ? &timeout : nullptr, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("epoll_pwait2");
    }
    // reap() drains a child's pipes itself, so the order of events is free;
    // events of a child reaped earlier in this batch find no child and are ignored.
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeTag)
        woken = true;
      else
        impl_->handle(events[i].data.u64);
    }
    if (woken) break;
  }
  return std::exchange(impl_->finished, {});
}

void ProcessSet::terminate_all(milliseconds grace) {
  for (auto& [id, child] : impl_->children) terminate(id, grace);
}

void ProcessSet::terminate(Id id, milliseconds grace) {
  auto it = impl_->children.find(id);
  if (it == impl_->children.end()) return;
  Child& child = *it->second;
  auto kill_at = Clock::now() + grace;
  child.killing = true;
  child.terminate_at.reset();
  if (!child.kill_at || kill_at < *child.kill_at) child.kill_at = kill_at;
  ::kill(-child.pid, SIGTERM);
}

std::size_t ProcessSet::size() const { return impl_->children.size() + impl_->finished.size(); }

}  // namespace ferry::exec
