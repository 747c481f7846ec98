// The engine under ferry::Pool: worker processes, their sockets, dispatch,
// timeouts and replacement. See include/ferry/pool.hpp for the contract.
//
// Each worker is forked and talks to the parent over one Unix stream socket.
// Frames both ways are a u64 payload length, then the payload:
//   to a worker:   u64 task id, u64 invoker address, u64 function address, arguments
//   from a worker: u64 task id, results
// A worker runs its tasks in order, so the parent matches each result with
// the oldest task it sent to that worker. Up to two tasks are in flight per
// worker, so a worker never idles waiting for its next task.
//
// No thread of its own: whichever caller waits drives the pool (epoll over
// every socket and pidfd), with the others waiting on a condition variable.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "ferry/pool.hpp"

namespace ferry::detail {
namespace {

// How many tasks a worker may hold: enough to never wait for the parent
// between tiny tasks, one when tasks are slow, so they spread over workers.
constexpr std::size_t kMaxDepth = 64;
constexpr auto kQueuedWorkTarget = std::chrono::microseconds(500);
constexpr auto kSpinTime = std::chrono::nanoseconds(50'000);
constexpr int kInitializerFailed = 121;  // a worker's exit status when its initializer threw
constexpr int kWorkerFailed = 122;       // ... when the worker itself failed (a bug)
constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return name ? fmt::format("killed by SIG{}", name)
                : fmt::format("killed by signal {}", WTERMSIG(status));
  }
  return "ended";
}

// Reads a worker's frames from its blocking socket, many per read() when
// the parent sent many.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd), buffer_(1 << 16) {}

  // The next frame's payload, valid until the next call; nullopt at the end.
  std::optional<std::string_view> next() {
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

 private:
  int fd_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0, end_ = 0, consumed_ = 0;
};

bool write_exact(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void put_u64(std::string& out, std::uint64_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

std::uint64_t get_u64(const char* data) {
  std::uint64_t value;
  std::memcpy(&value, data, sizeof value);
  return value;
}

// The body of a worker process; never returns. `_exit` skips the parent's
// atexit handlers and static destructors, which belong to the parent.
[[noreturn]] void worker_main(int socket, const PoolOptions& options) {
  if (options.initializer) {
    try {
      options.initializer();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ferry: pool worker %d: the initializer failed: %s\n", ::getpid(),
                   error.what());
      std::fflush(nullptr);
      ::_exit(kInitializerFailed);
    }
  }
  FrameReader frames(socket);
  std::string reply;
  int finished = 0;
  while (auto frame = frames.next()) {  // until the pool closes the socket or dies
    Reader reader(*frame);
    auto id = decode<std::uint64_t>(reader);
    auto invoker = reinterpret_cast<Invoker>(decode<std::uint64_t>(reader));
    auto function = static_cast<std::uintptr_t>(decode<std::uint64_t>(reader));
    reply.assign(16, '\0');
    Writer writer(reply);
    invoker(function, reader, writer);
    std::fflush(nullptr);  // what the task printed, before the parent hears it finished
    std::uint64_t reply_length = reply.size() - 8;
    std::memcpy(reply.data(), &reply_length, 8);
    std::memcpy(reply.data() + 8, &id, 8);
    if (!write_exact(socket, reply.data(), reply.size())) break;
    if (options.max_tasks_per_child > 0 && ++finished >= options.max_tasks_per_child) break;
  }
  std::fflush(nullptr);
  ::_exit(0);
}

struct Task {
  std::uint64_t id = 0;
  Invoker invoker = nullptr;
  std::uintptr_t function = 0;
  std::uint64_t count = 0;  // items in the chunk
  std::string header;       // the frame's length, id, invoker and function
  std::string arguments;    // kept until done: re-sent if its worker dies first
  std::shared_ptr<TaskState> state;
};

struct Worker {
  std::uint64_t id = 0;
  pid_t pid = 0;
  int pidfd = -1;
  int socket = -1;
  std::deque<std::string_view> unsent;  // into in_flight tasks, which outlive them
  bool watching_writable = false;
  std::vector<char> incoming = std::vector<char>(1 << 16);  // received, not yet handled
  std::size_t incoming_begin = 0, incoming_end = 0;
  std::deque<Task> in_flight;  // in the order sent; the front one is running
  Clock::time_point front_started;
  int assigned = 0;
  bool killed_for_timeout = false;
};

}  // namespace

class PoolCore {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();

  std::shared_ptr<TaskState> submit(Invoker invoker, std::uintptr_t function, std::string arguments,
                                    std::shared_ptr<std::deque<std::shared_ptr<TaskState>>> done);
  bool wait_until(const std::function<bool()>& condition,
                  std::optional<Clock::time_point> deadline);
  void close();
  void join();
  void terminate();
  int processes() const { return processes_; }
  std::vector<pid_t> worker_pids();

 private:
  enum class Phase { open, closed, joined, terminated };

  void spawn_worker();
  void dispatch();
  void flush(Worker& worker);
  void watch(int fd, std::uint32_t events, std::uint64_t data, int operation = EPOLL_CTL_ADD);
  void on_readable(Worker& worker);
  void on_exit(std::uint64_t worker_id);
  void finish(Task& task, std::optional<TaskError> error, std::string results = {});
  void fail_everything(TaskError::Reason reason, const std::string& message);
  std::optional<Clock::time_point> enforce_timeouts(Clock::time_point now);
  void drive(std::unique_lock<std::mutex>& lock, std::optional<Clock::time_point> deadline);
  void wake();
  void release(Worker& worker);

  PoolOptions options_;
  int processes_ = 0;
  std::mutex mutex_;
  std::condition_variable round_done_;
  bool driving_ = false;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  Phase phase_ = Phase::open;
  std::string broken_;  // why the pool cannot go on, when it cannot
  std::unordered_map<std::uint64_t, std::unique_ptr<Worker>> workers_;
  std::uint64_t next_worker_id_ = 1;
  std::deque<Task> pending_;
  std::uint64_t next_task_id_ = 1;
  double task_time_ns_ = 0;  // moving average; 0 until the first task finished
};

PoolCore::PoolCore(PoolOptions options) : options_(std::move(options)) {
  processes_ = options_.processes > 0
                   ? options_.processes
                   : static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  if (options_.max_tasks_per_child < 0) throw Error("max_tasks_per_child must not be negative");
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) fail("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) fail("eventfd");
  watch(wake_fd_, EPOLLIN, kWakeTag);
  std::lock_guard lock(mutex_);
  for (int i = 0; i < processes_; ++i) spawn_worker();
}

PoolCore::~PoolCore() {
  terminate();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void PoolCore::watch(int fd, std::uint32_t events, std::uint64_t data, int operation) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = data;
  if (::epoll_ctl(epoll_fd_, operation, fd, &event) < 0) fail("epoll_ctl");
}

void PoolCore::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void PoolCore::spawn_worker() {
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) < 0) fail("socketpair");
  std::fflush(nullptr);  // or the child would write this process's buffered output again
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sockets[0]);
    ::close(sockets[1]);
    fail("fork");
  }
  if (pid == 0) {
    // The child keeps only its own end: the parent's descriptors, and the
    // other workers', would keep sockets open past their owners.
    ::close(sockets[0]);
    ::close(epoll_fd_);
    ::close(wake_fd_);
    for (auto& [id, worker] : workers_) {
      ::close(worker->socket);
      ::close(worker->pidfd);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Nothing may unwind out of here: the caller's frames belong to the parent.
    try {
      worker_main(sockets[1], options_);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ferry: pool worker %d failed: %s\n", ::getpid(), error.what());
    } catch (...) {
    }
    std::fflush(nullptr);
    ::_exit(kWorkerFailed);
  }
  ::close(sockets[1]);
  auto worker = std::make_unique<Worker>();
  worker->id = next_worker_id_++;
  worker->pid = pid;
  worker->socket = sockets[0];
  worker->pidfd = open_pidfd(pid);
  if (worker->pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(worker->socket);
    fail("pidfd_open");
  }
  if (::fcntl(worker->socket, F_SETFL, O_RDWR | O_NONBLOCK) < 0) fail("fcntl");
  watch(worker->socket, EPOLLIN, worker->id << 1);
  watch(worker->pidfd, EPOLLIN, worker->id << 1 | 1);
  workers_.emplace(worker->id, std::move(worker));
}

std::shared_ptr<TaskState> PoolCore::submit(
    Invoker invoker, std::uintptr_t function, std::string arguments,
    std::shared_ptr<std::deque<std::shared_ptr<TaskState>>> done) {
  std::lock_guard lock(mutex_);
  if (!broken_.empty()) throw Error(broken_);
  if (phase_ != Phase::open) throw Error("the pool no longer takes tasks: it was closed");
  Task task;
  task.id = next_task_id_++;
  task.invoker = invoker;
  task.function = function;
  task.count = arguments.size() >= 8 ? get_u64(arguments.data()) : 0;
  task.arguments = std::move(arguments);
  task.state = std::make_shared<TaskState>();
  task.state->completions = done;
  auto state = task.state;
  pending_.push_back(std::move(task));
  dispatch();
  return state;
}

// Gives pending tasks to workers: first one to each idle worker, then a second
// to each, so that work spreads before it queues.
void PoolCore::dispatch() {
  std::size_t max_depth = 2;  // until a task time was measured
  if (task_time_ns_ > 0)
    max_depth = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::chrono::nanoseconds(kQueuedWorkTarget).count() /
                                 task_time_ns_),
        1, kMaxDepth);
  for (std::size_t depth = 1; depth <= max_depth && !pending_.empty(); ++depth) {
    for (auto& [id, worker] : workers_) {
      if (pending_.empty()) break;
      if (worker->in_flight.size() >= depth || worker->killed_for_timeout) continue;
      if (options_.max_tasks_per_child > 0 && worker->assigned >= options_.max_tasks_per_child)
        continue;
      Task& task = worker->in_flight.emplace_back(std::move(pending_.front()));
      pending_.pop_front();
      task.header.clear();
      put_u64(task.header, 24 + task.arguments.size());
      put_u64(task.header, task.id);
      put_u64(task.header, reinterpret_cast<std::uintptr_t>(task.invoker));
      put_u64(task.header, task.function);
      worker->unsent.push_back(task.header);
      if (!task.arguments.empty()) worker->unsent.push_back(task.arguments);
      if (worker->in_flight.size() == 1) worker->front_started = Clock::now();
      ++worker->assigned;
      flush(*worker);
    }
  }
}

void PoolCore::flush(Worker& worker) {
  while (!worker.unsent.empty()) {
    iovec parts[64];
    std::size_t count = std::min<std::size_t>(worker.unsent.size(), 64);
    for (std::size_t i = 0; i < count; ++i)
      parts[i] = {const_cast<char*>(worker.unsent[i].data()), worker.unsent[i].size()};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = count;
    ssize_t n = ::sendmsg(worker.socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: wait for EPOLLOUT; EPIPE: the pidfd will report the death
    for (auto sent = static_cast<std::size_t>(n); sent > 0;) {
      std::string_view& front = worker.unsent.front();
      std::size_t taken = std::min(sent, front.size());
      front.remove_prefix(taken);
      sent -= taken;
      if (front.empty()) worker.unsent.pop_front();
    }
  }
  bool pending = !worker.unsent.empty();
  if (pending != worker.watching_writable) {
    watch(worker.socket, pending ? EPOLLIN | EPOLLOUT : EPOLLIN, worker.id << 1, EPOLL_CTL_MOD);
    worker.watching_writable = pending;
  }
}

void PoolCore::finish(Task& task, std::optional<TaskError> error, std::string results) {
  TaskState& state = *task.state;
  state.results = std::move(results);
  state.error = std::move(error);
  state.done = true;
  if (auto completions = state.completions.lock()) completions->push_back(task.state);
}

void PoolCore::on_readable(Worker& worker) {
  std::vector<char>& buffer = worker.incoming;
  for (;;) {
    // Whole frames first; then make room and read straight into the buffer.
    std::size_t have = worker.incoming_end - worker.incoming_begin;
    std::size_t needed = 16;
    if (have >= 16) {
      const char* frame = buffer.data() + worker.incoming_begin;
      std::uint64_t length = get_u64(frame);
      needed = 8 + length;
      if (have >= needed) {
        std::uint64_t id = get_u64(frame + 8);
        if (worker.in_flight.empty() || worker.in_flight.front().id != id) {
          ::kill(worker.pid, SIGKILL);  // out of step: its tasks are reported lost
          return;
        }
        Task task = std::move(worker.in_flight.front());
        worker.in_flight.pop_front();
        finish(task, std::nullopt, std::string(frame + 16, length - 8));
        worker.incoming_begin += needed;
        auto now = Clock::now();
        // A moving average of how long a task holds a worker.
        double took = static_cast<double>((now - worker.front_started).count());
        task_time_ns_ = task_time_ns_ == 0 ? took : 0.9 * task_time_ns_ + 0.1 * took;
        worker.front_started = now;
        continue;
      }
    }
    std::memmove(buffer.data(), buffer.data() + worker.incoming_begin, have);
    worker.incoming_begin = 0;
    worker.incoming_end = have;
    if (buffer.size() < needed) buffer.resize(std::max(needed, buffer.size() * 2));
    ssize_t n = ::recv(worker.socket, buffer.data() + have, buffer.size() - have, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN, or the end: the pidfd reports deaths
    worker.incoming_end += static_cast<std::size_t>(n);
  }
  dispatch();
}

void PoolCore::release(Worker& worker) {
  ::close(worker.socket);  // closing also removes it from the epoll set
  ::close(worker.pidfd);
}

void PoolCore::on_exit(std::uint64_t worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  Worker& worker = *it->second;
  on_readable(worker);  // results it sent before dying still count
  int status = 0;
  while (::waitpid(worker.pid, &status, 0) < 0 && errno == EINTR) {
  }
  bool initializer_failed = WIFEXITED(status) && WEXITSTATUS(status) == kInitializerFailed;
  if (!worker.in_flight.empty() && !initializer_failed) {
    Task& running = worker.in_flight.front();
    if (worker.killed_for_timeout) {
      finish(running,
             TaskError(TaskError::Reason::timed_out,
                       fmt::format("the task ran longer than {} ms; its worker process "
                                   "{} was killed and replaced",
                                   options_.task_timeout.count() * running.count, worker.pid)));
    } else {
      finish(running, TaskError(TaskError::Reason::worker_lost,
                                fmt::format("the worker process {} running the task died ({})",
                                            worker.pid, describe_status(status))));
    }
    worker.in_flight.pop_front();
  }
  // Tasks sent but not started go back to the front of the queue, in order.
  for (auto task = worker.in_flight.rbegin(); task != worker.in_flight.rend(); ++task)
    pending_.push_front(std::move(*task));
  release(worker);
  workers_.erase(it);

  if (initializer_failed) {
    broken_ = "the pool's initializer failed in a new worker process (its message is on stderr)";
    fail_everything(TaskError::Reason::worker_lost, broken_);
    return;
  }
  if (phase_ == Phase::open || phase_ == Phase::closed) spawn_worker();
  dispatch();
}

void PoolCore::fail_everything(TaskError::Reason reason, const std::string& message) {
  for (auto& [id, worker] : workers_) {
    ::kill(worker->pid, SIGKILL);
    while (::waitpid(worker->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    for (Task& task : worker->in_flight) finish(task, TaskError(reason, message));
    release(*worker);
  }
  workers_.clear();
  for (Task& task : pending_) finish(task, TaskError(reason, message));
  pending_.clear();
}

std::optional<Clock::time_point> PoolCore::enforce_timeouts(Clock::time_point now) {
  if (options_.task_timeout.count() <= 0) return std::nullopt;
  std::optional<Clock::time_point> next;
  for (auto& [id, worker] : workers_) {
    if (worker->in_flight.empty() || worker->killed_for_timeout) continue;
    auto deadline = worker->front_started +
                    options_.task_timeout * static_cast<long>(worker->in_flight.front().count);
    if (now >= deadline) {
      worker->killed_for_timeout = true;
      ::kill(worker->pid, SIGKILL);
    } else if (!next || deadline < *next) {
      next = deadline;
    }
  }
  return next;
}

// One round of waiting for events and handling them. Called with the lock
// held and driving_ set; the lock is released while waiting.
void PoolCore::drive(std::unique_lock<std::mutex>& lock,
                     std::optional<Clock::time_point> deadline) {
  auto next = enforce_timeouts(Clock::now());
  if (deadline && (!next || *deadline < *next)) next = deadline;
  int timeout_ms = -1;
  if (next) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
  }
  // When a caller waits on a few short tasks, their results are microseconds
  // away: poll briefly before sleeping, as a wake-up costs more than that.
  // Not with deep queues: then the workers need the CPU, and no one waits idle.
  std::size_t in_flight = 0;
  for (auto& [id, worker] : workers_) in_flight += worker->in_flight.size();
  bool spin = task_time_ns_ > 0 && task_time_ns_ < static_cast<double>(kSpinTime.count()) &&
              timeout_ms != 0 && in_flight > 0 && in_flight <= workers_.size();
  lock.unlock();
  epoll_event events[64];
  int n = 0;
  if (spin) {
    auto stop = Clock::now() + kSpinTime;
    while ((n = ::epoll_wait(epoll_fd_, events, 64, 0)) == 0 && Clock::now() < stop) {
    }
  }
  if (n == 0) n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
  lock.lock();
  if (n < 0 && errno != EINTR) fail("epoll_wait");
  for (int i = 0; i < n; ++i) {
    std::uint64_t data = events[i].data.u64;
    if (data == kWakeTag) {
      std::uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
      continue;
    }
    auto it = workers_.find(data >> 1);
    if (it == workers_.end()) continue;  // a worker released earlier in this round
    if (data & 1) {
      on_exit(data >> 1);
    } else {
      if (events[i].events & EPOLLOUT) flush(*it->second);
      if (events[i].events & (EPOLLIN | EPOLLHUP)) on_readable(*it->second);
    }
  }
  enforce_timeouts(Clock::now());
}

bool PoolCore::wait_until(const std::function<bool()>& condition,
                          std::optional<Clock::time_point> deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (condition()) return true;
    bool expired = deadline && Clock::now() >= *deadline;
    if (driving_) {
      if (expired) return false;
      if (deadline)
        round_done_.wait_until(lock, *deadline);
      else
        round_done_.wait(lock);
      continue;
    }
    driving_ = true;
    try {
      drive(lock, expired ? std::optional(Clock::now()) : deadline);
    } catch (...) {
      driving_ = false;
      round_done_.notify_all();
      throw;
    }
    driving_ = false;
    round_done_.notify_all();
    if (expired) return condition();
  }
}

void PoolCore::close() {
  std::lock_guard lock(mutex_);
  if (phase_ == Phase::open) phase_ = Phase::closed;
}

void PoolCore::join() {
  {
    std::lock_guard lock(mutex_);
    if (phase_ == Phase::open)
      throw Error("join() needs close() or terminate() first, as in Python");
    if (phase_ == Phase::terminated || phase_ == Phase::joined) return;
  }
  wait_until(
      [this] {
        if (!pending_.empty()) return false;
        for (auto& [id, worker] : workers_)
          if (!worker->in_flight.empty()) return false;
        return true;
      },
      std::nullopt);
  std::unique_lock lock(mutex_);
  wake();
  round_done_.wait(lock, [this] { return !driving_; });
  phase_ = Phase::joined;
  // Closing its socket tells an idle worker to exit.
  for (auto& [id, worker] : workers_) ::shutdown(worker->socket, SHUT_RDWR);
  for (auto& [id, worker] : workers_) {
    while (::waitpid(worker->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    release(*worker);
  }
  workers_.clear();
}

void PoolCore::terminate() {
  std::unique_lock lock(mutex_);
  if (phase_ == Phase::terminated || phase_ == Phase::joined) return;
  phase_ = Phase::terminated;
  wake();  // a driver blocked in epoll_wait must let go of the workers
  round_done_.wait(lock, [this] { return !driving_; });
  fail_everything(TaskError::Reason::terminated,
                  "the pool was terminated before the task finished");
  round_done_.notify_all();
}

std::vector<pid_t> PoolCore::worker_pids() {
  std::lock_guard lock(mutex_);
  std::vector<pid_t> pids;
  for (auto& [id, worker] : workers_) pids.push_back(worker->pid);
  std::sort(pids.begin(), pids.end());
  return pids;
}

std::shared_ptr<PoolCore> make_pool_core(PoolOptions options) {
  return std::make_shared<PoolCore>(std::move(options));
}

std::shared_ptr<TaskState> submit(PoolCore& core, Invoker invoker, std::uintptr_t function,
                                  std::string arguments,
                                  std::shared_ptr<std::deque<std::shared_ptr<TaskState>>> done) {
  return core.submit(invoker, function, std::move(arguments), std::move(done));
}

bool wait_until(PoolCore& core, const std::function<bool()>& condition,
                std::optional<Clock::time_point> deadline) {
  return core.wait_until(condition, deadline);
}

void close(PoolCore& core) { core.close(); }
void join(PoolCore& core) { core.join(); }
void terminate(PoolCore& core) { core.terminate(); }
int process_count(const PoolCore& core) { return core.processes(); }
std::vector<pid_t> worker_pids(PoolCore& core) { return core.worker_pids(); }

}  // namespace ferry::detail
