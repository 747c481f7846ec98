// The engine under ferry::Pool: worker processes, their pipes, dispatch,
// timeouts and replacement. See include/ferry/pool.hpp for the contract and
// src/pool/worker.hpp for the frames on a worker's pipes.
//
// One thread at a time drives the pool: it waits (epoll) on every worker's
// result pipe and pidfd, reads results, hands out tasks, enforces timeouts and
// replaces workers that died. A dispatcher thread, started with the pool,
// drives whenever no caller does, so work progresses whether anyone waits or
// not. A caller that waits for a result drives itself when the role is free,
// which saves a thread hop per result (the result wakes the caller, not the
// dispatcher which would then wake the caller); the dispatcher steps aside
// while callers keep driving, and takes over as soon as a caller leaves with
// work outstanding, or kGrace after the last caller drove. terminate() stops
// whoever drives and wakes every waiter.
//
// Workers get tasks ahead of time when tasks are short (see dispatch()). A
// task sent ahead that its worker has not started can be taken back through
// the worker's TaskClaim, and is, as soon as another worker is idle while
// nothing else waits (see rebalance()).
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <thread>

#include "ferry/pool.hpp"
#include "pool/child.hpp"
#include "pool/code_address.hpp"
#include "pool/task_claim.hpp"
#include "pool/worker.hpp"

extern char** environ;

namespace ferry::detail {
namespace {

// How many tasks a worker may hold: enough to never wait for the parent
// between tiny tasks, one when tasks are slow, so they spread over workers.
constexpr std::size_t kMaxDepth = 64;
constexpr auto kQueuedWorkTarget = std::chrono::microseconds(500);
// A worker whose task has run this many times the usual task time gets no
// more tasks ahead: they would likely be taken back.
constexpr int kLongTaskFactor = 4;
// Frames up to this size are copied into a worker's outbox, to go out
// together; larger arguments are sent from where they lie.
constexpr std::size_t kCopyLimit = 4096;
// What an epoll event is about: the wake-up eventfd, or a worker's id
// shifted left by two and one of the tags.
constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};
constexpr std::uint64_t kResultsTag = 0, kExitTag = 1, kWritableTag = 2;
// Pipes as large as an unprivileged process may make them: a large chunk
// goes through in fewer wake-ups.
constexpr int kPipeSize = 1 << 20;
// How long the dispatcher leaves the driving to callers after one drove:
// longer than the gap between a caller's get() and its next submit()+get().
constexpr auto kGrace = std::chrono::milliseconds(1);

[[noreturn]] void fail(const char* what) {
  throw Error(fmt::format("ferry::Pool: {}: {}", what, std::strerror(errno)));
}

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// This process's id, without a system call each time (the pool checks it on
// every call): a fork clears the cache in the child.
std::atomic<pid_t> cached_process_id{0};
pid_t this_process_id() {
  pid_t pid = cached_process_id.load(std::memory_order_relaxed);
  if (pid == 0) {
    static const bool registered = [] {
      ::pthread_atfork(nullptr, nullptr, [] { cached_process_id.store(0); });
      return true;
    }();
    (void)registered;
    pid = ::getpid();
    cached_process_id.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return name ? fmt::format("killed by SIG{}", name)
                : fmt::format("killed by signal {}", WTERMSIG(status));
  }
  return "ended";
}

void reap(pid_t pid, int* status = nullptr) {
  while (::waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
}

std::uint64_t get_u64(const char* data) {
  std::uint64_t value;
  std::memcpy(&value, data, sizeof value);
  return value;
}

// A task (one chunk of a batch) on its way to a worker.
struct Task {
  std::shared_ptr<Batch> batch;
  std::size_t chunk = 0;  // its index in the batch
  Invoker invoker = nullptr;
  std::uintptr_t function = 0;
  std::shared_ptr<const std::string> arguments;  // kept until done: re-sent if taken back
  ChunkBounds bounds;
  std::uint32_t number = 0;  // on the worker it was last sent to
};

// The bytes waiting to go out on a worker's task pipe. Small frames are copied
// together into one piece; large arguments are sent from their buffer.
class Outbox {
 public:
  void append(const char* data, std::size_t size) {
    if (pieces_.empty() || pieces_.back().shared || pieces_.back().copy.size() > kCopyLimit * 16) {
      pieces_.emplace_back().copy.swap(spare_);  // a buffer sent before, with its capacity
      pieces_.back().copy.clear();
    }
    pieces_.back().copy.append(data, size);
  }
  void append(std::shared_ptr<const std::string> buffer, std::size_t offset, std::size_t size) {
    if (size <= kCopyLimit) return append(buffer->data() + offset, size);
    Piece& piece = pieces_.emplace_back();
    piece.shared = std::move(buffer);
    piece.offset = offset;
    piece.size = size;
  }
  bool empty() const { return pieces_.empty(); }

  // Writes what the pipe takes now.
  void send_to(int pipe) {
    while (!pieces_.empty()) {
      iovec parts[64];
      std::size_t count = std::min<std::size_t>(pieces_.size(), 64);
      for (std::size_t i = 0; i < count; ++i) {
        auto bytes = pieces_[i].unsent();
        parts[i] = {const_cast<char*>(bytes.data()), bytes.size()};
      }
      ssize_t n = ::writev(pipe, parts, static_cast<int>(count));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // full: wait until it is writable
      for (auto sent = static_cast<std::size_t>(n); sent > 0;) {
        Piece& front = pieces_.front();
        std::size_t taken = std::min(sent, front.unsent().size());
        front.sent += taken;
        sent -= taken;
        if (!front.unsent().empty()) continue;
        if (!front.shared) spare_.swap(front.copy);
        pieces_.pop_front();
      }
    }
  }

 private:
  struct Piece {
    std::string copy;
    std::shared_ptr<const std::string> shared;
    std::size_t offset = 0, size = 0;
    std::size_t sent = 0;
    std::string_view unsent() const {
      std::string_view all = shared ? std::string_view(*shared).substr(offset, size) : copy;
      return all.substr(sent);
    }
  };
  std::deque<Piece> pieces_;
  std::string spare_;
};

struct Worker {
  std::uint64_t id = 0;  // unique in the pool's life, unlike slots and pids
  std::size_t slot = 0;  // its TaskClaim
  TaskClaim* claim = nullptr;
  pid_t pid = 0;
  int pidfd = -1;
  // Pipes rather than a socket pair: a round trip costs half as much in the
  // kernel. The pool keeps a read end of the task pipe as well, so that its
  // writes never meet a pipe without readers (SIGPIPE) when a worker died.
  int tasks = -1;         // the task pipe's write end, non-blocking
  int tasks_reader = -1;  // its read end
  int results = -1;       // the result pipe's read end, non-blocking
  bool results_ended = false;
  bool ready = false;  // serving: forked workers are; spawned ones say so
  Outbox outbox;
  bool watching_writable = false;
  std::vector<char> incoming = std::vector<char>(1 << 16);  // received, not yet handled
  std::size_t incoming_begin = 0, incoming_end = 0;
  std::deque<Task> in_flight;  // sent, no result yet, in the order sent
  std::uint32_t last_number = 0;
  int assigned = 0;                         // tasks it will have started, for max_tasks_per_child
  Clock::time_point busy_since;             // the start of its current stretch of work
  std::optional<std::uint32_t> killed_for;  // the task it was killed for (timeout)
};

}  // namespace

class PoolCore {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();

  void submit(Invoker invoker, std::uintptr_t function, std::shared_ptr<Batch> batch,
              std::shared_ptr<const std::string> arguments, std::span<const ChunkBounds> bounds);
  bool wait_until(int& waiting, const std::function<bool()>& condition,
                  std::optional<Clock::time_point> deadline);
  void with_lock(const std::function<void()>& work);
  void close();
  void join();
  void terminate();
  int processes() const { return processes_; }
  std::vector<pid_t> worker_pids();

 private:
  enum class Phase { open, closed, joined, terminated };
  enum class Stop { none, drain, kill };
  enum class Driver { nobody, dispatcher, caller };

  // The state of a pool; a process that is not the pool's owner (a child
  // forked from it) must never touch it, nor destroy it: its mutex may have
  // been copied locked, and its threads and workers are not there.
  struct State;

  void check_owner() const;
  void start();
  void release_resources();
  void run();
  void drive(std::unique_lock<std::mutex>& lock, std::optional<Clock::time_point> deadline);
  bool work_outstanding() const;
  void break_pool(const std::exception& error);
  void spawn_worker(std::size_t slot);
  void send(Worker& worker, Task task);
  void dispatch();
  void rebalance();
  void take_back_unstarted(Worker& worker);
  void flush(Worker& worker);
  void release(Worker& worker);
  void watch(int fd, std::uint32_t events, std::uint64_t data, int operation = EPOLL_CTL_ADD);
  void read_results(Worker& worker);
  void on_exit(Worker& worker);
  void finish(Task& task, std::optional<TaskError> error, std::string results = {});
  void fail_everything(TaskError::Reason reason, const std::string& message);
  void stop_workers(Stop how);
  std::optional<Clock::time_point> enforce_timeouts(Clock::time_point now);
  std::size_t depth() const;
  bool running_long(const Worker& worker, Clock::time_point now) const;
  bool can_take(const Worker& worker) const;
  void wake();
  void notify_if_idle();
  void notify_waiters();

  PoolOptions options_;
  int processes_ = 0;
  pid_t owner_ = 0;
  std::unique_ptr<State> state_;
};

struct PoolCore::State {
  std::mutex mutex;
  std::condition_variable changed;  // a batch someone waits for finished, the driver role is
                                    // free, or the pool stopped
  std::condition_variable dispatcher_wakeup;  // the dispatcher may have to drive, or stop
  std::unique_ptr<std::thread> dispatcher;
  std::mutex dispatcher_join;  // one thread joins the dispatcher
  bool started = false;        // the dispatcher started the first workers (or failed to)
  std::exception_ptr start_error;
  int epoll_fd = -1;
  int wake_fd = -1;
  int claims_fd = -1;  // the workers' TaskClaims, in shared memory
  TaskClaim* claims = nullptr;
  std::vector<LoadedModule> modules;  // for spawned workers
  Phase phase = Phase::open;
  Stop stop = Stop::none;
  std::string broken;                            // why the pool cannot go on, when it cannot
  std::vector<std::unique_ptr<Worker>> workers;  // by slot; null while being replaced
  std::uint64_t next_worker_id = 1;
  std::deque<Task> pending;
  std::size_t in_flight = 0;  // tasks sent to workers, not finished
  int idle_waiting = 0;       // callers waiting for all work to finish (join)
  bool wake_waiters = false;  // to notify `changed` once the lock is released
  Driver driver = Driver::nobody;
  int role_wanted = 0;      // callers waiting to drive while the dispatcher does
  int callers_waiting = 0;  // callers in wait_until
  Clock::time_point last_caller_drive;
  bool handover = false;    // a caller left with work outstanding: the dispatcher drives now
  double task_time_ns = 0;  // moving average; 0 until the first task finished
};

PoolCore::PoolCore(PoolOptions options) : options_(std::move(options)), owner_(this_process_id()) {
  // A spawned worker whose program makes a pool during static initialization
  // serves tasks here, before it could start pools of its own.
  serve_if_spawned();
  if (options_.processes < 0)
    throw Error(
        fmt::format("ferry::Pool: processes must be at least 1, or 0 for one per core "
                    "(not {})",
                    options_.processes));
  if (options_.max_tasks_per_child < 0)
    throw Error("ferry::Pool: max_tasks_per_child must not be negative");
  if (options_.task_timeout.count() < 0)
    throw Error("ferry::Pool: task_timeout must not be negative");
  if (options_.start == StartMethod::spawn && options_.initializer &&
      !options_.initializer.target<void (*)()>())
    throw Error(
        "ferry::Pool: with StartMethod::spawn, the initializer must be a plain function (a "
        "fresh run of the program knows nothing else)");
  processes_ = options_.processes > 0
                   ? options_.processes
                   : static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  state_ = std::make_unique<State>();
  try {
    start();
  } catch (...) {
    release_resources();
    throw;
  }
}

void PoolCore::start() {
  State& s = *state_;
  s.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (s.epoll_fd < 0) fail("epoll_create1");
  s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.wake_fd < 0) fail("eventfd");
  watch(s.wake_fd, EPOLLIN, kWakeTag);
  // One TaskClaim per worker slot, shared with the workers (inherited by a
  // fork, mapped from the descriptor by a spawned worker).
  std::size_t claims_size = sizeof(TaskClaim) * static_cast<std::size_t>(processes_);
  s.claims_fd = ::memfd_create("ferry-pool-claims", MFD_CLOEXEC);
  if (s.claims_fd < 0) fail("memfd_create");
  if (::ftruncate(s.claims_fd, static_cast<off_t>(claims_size)) < 0) fail("ftruncate");
  void* claims = ::mmap(nullptr, claims_size, PROT_READ | PROT_WRITE, MAP_SHARED, s.claims_fd, 0);
  if (claims == MAP_FAILED) fail("mmap");
  s.claims = static_cast<TaskClaim*>(claims);
  for (int i = 0; i < processes_; ++i) new (&s.claims[i]) TaskClaim();
  if (options_.start == StartMethod::spawn) s.modules = loaded_modules();
  s.workers.resize(static_cast<std::size_t>(processes_));

  // The dispatcher takes no signals: they are for the program's threads. It
  // also forks every worker, so that their parent-death signal (see
  // become_child) follows the pool, not the thread that created it.
  sigset_t all, previous;
  ::sigfillset(&all);
  for (int synchronous : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::sigdelset(&all, synchronous);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  s.dispatcher = std::make_unique<std::thread>([this] { run(); });
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  std::unique_lock lock(s.mutex);
  s.changed.wait(lock, [&] { return s.started; });
  if (s.start_error) {
    lock.unlock();
    s.dispatcher->join();
    std::rethrow_exception(s.start_error);
  }
}

PoolCore::~PoolCore() {
  if (!state_) return;
  if (::getpid() != owner_) {
    // A copy in a child process (it exited, say): nothing here is its own.
    (void)state_.release();
    return;
  }
  terminate();
  release_resources();
}

void PoolCore::release_resources() {
  State& s = *state_;
  if (s.dispatcher && s.dispatcher->joinable()) s.dispatcher->join();
  if (s.wake_fd >= 0) ::close(s.wake_fd);
  if (s.epoll_fd >= 0) ::close(s.epoll_fd);
  if (s.claims) ::munmap(s.claims, sizeof(TaskClaim) * static_cast<std::size_t>(processes_));
  if (s.claims_fd >= 0) ::close(s.claims_fd);
}

void PoolCore::check_owner() const {
  if (this_process_id() != owner_)
    throw Error(fmt::format(
        "ferry::Pool: this pool belongs to process {}; a child process cannot use it", owner_));
}

void PoolCore::watch(int fd, std::uint32_t events, std::uint64_t data, int operation) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = data;
  if (::epoll_ctl(state_->epoll_fd, operation, fd, &event) < 0) fail("epoll_ctl");
}

void PoolCore::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(state_->wake_fd, &one, sizeof one);
}

// The dispatcher thread.
void PoolCore::run() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  try {
    for (std::size_t slot = 0; slot < s.workers.size(); ++slot) spawn_worker(slot);
  } catch (...) {
    s.start_error = std::current_exception();
    stop_workers(Stop::kill);
  }
  s.started = true;
  s.changed.notify_all();
  if (s.start_error) return;
  while (s.stop == Stop::none) {
    // The role is left to callers while one drives or wants to, and for
    // kGrace after one drove, unless it handed the role over.
    bool callers_drive = s.driver != Driver::nobody || s.role_wanted > 0;
    auto grace_end = s.last_caller_drive + kGrace;
    if (!callers_drive && (s.handover || Clock::now() >= grace_end)) {
      s.handover = false;
      s.driver = Driver::dispatcher;
      try {
        drive(lock, std::nullopt);
      } catch (const std::exception& error) {
        break_pool(error);
      }
      s.driver = Driver::nobody;
      if (s.role_wanted > 0) s.changed.notify_all();  // a caller asked for the role
    } else {
      notify_waiters();
      s.dispatcher_wakeup.wait_until(lock, std::max(grace_end, Clock::now() + kGrace / 4));
    }
  }
  // A caller in the middle of a round leaves at once (terminate() woke it).
  s.dispatcher_wakeup.wait(lock, [&] { return s.driver == Driver::nobody; });
  stop_workers(s.stop);
  if (s.broken.empty())
    fail_everything(TaskError::Reason::terminated,
                    "the pool was terminated before the task finished");
  else
    fail_everything(TaskError::Reason::worker_lost, s.broken);
}

// The pool cannot go on (no more processes, say): the dispatcher stops it,
// failing every task.
void PoolCore::break_pool(const std::exception& error) {
  State& s = *state_;
  if (s.broken.empty()) s.broken = fmt::format("the pool stopped: {}", error.what());
  s.stop = Stop::kill;
  s.dispatcher_wakeup.notify_all();
}

bool PoolCore::work_outstanding() const {
  return !state_->pending.empty() || state_->in_flight > 0;
}

// One round: wait for events (until `deadline` at most), handle them, then
// hand out tasks. Called with the lock held and the driver role taken; the
// lock is released while waiting.
void PoolCore::drive(std::unique_lock<std::mutex>& lock,
                     std::optional<Clock::time_point> deadline) {
  State& s = *state_;
  auto next = enforce_timeouts(Clock::now());
  if (deadline && (!next || *deadline < *next)) next = deadline;
  int timeout_ms = -1;
  if (next) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
  }
  bool wake_waiters = std::exchange(s.wake_waiters, false);
  lock.unlock();
  // Waiters woken after the unlock find the lock free, instead of waking
  // only to wait for it.
  if (wake_waiters) s.changed.notify_all();
  epoll_event events[64];
  int n = ::epoll_wait(s.epoll_fd, events, 64, timeout_ms);
  lock.lock();
  if (n < 0 && errno != EINTR) fail("epoll_wait");
  for (int i = 0; i < n; ++i) {
    std::uint64_t data = events[i].data.u64;
    if (data == kWakeTag) {
      std::uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(s.wake_fd, &count, sizeof count);
      continue;
    }
    // Workers are looked up by id: one released earlier in this round may
    // have been replaced in the same slot.
    auto it = std::find_if(s.workers.begin(), s.workers.end(),
                           [&](const auto& worker) { return worker && worker->id == data >> 2; });
    if (it == s.workers.end()) continue;
    Worker& worker = **it;
    switch (data & 3) {
      case kResultsTag:
        read_results(worker);
        break;
      case kExitTag:
        on_exit(worker);
        break;
      case kWritableTag:
        flush(worker);
        break;
    }
  }
  if (s.stop != Stop::none) return;
  enforce_timeouts(Clock::now());
  rebalance();
  dispatch();
  notify_if_idle();
}

void PoolCore::spawn_worker(std::size_t slot) {
  State& s = *state_;
  TaskClaim* claim = &s.claims[slot];
  claim->reset();
  int task_pipe[2], result_pipe[2];
  if (::pipe2(task_pipe, O_CLOEXEC) < 0) fail("pipe2");
  if (::pipe2(result_pipe, O_CLOEXEC) < 0) {
    int error = errno;
    ::close(task_pipe[0]);
    ::close(task_pipe[1]);
    errno = error;
    fail("pipe2");
  }
  for (int fd : {task_pipe[1], result_pipe[1]}) ::fcntl(fd, F_SETPIPE_SZ, kPipeSize);  // or not
  pid_t parent = ::getpid();
  pid_t pid = -1;
  if (options_.start == StartMethod::fork) {
    std::fflush(nullptr);  // or the child would write this process's buffered output again
    pid = ::fork();
    if (pid == 0) {
      // The child keeps only its own ends: the parent's descriptors, and the
      // other workers', would keep pipes open past their owners.
      ::close(task_pipe[1]);
      ::close(result_pipe[0]);
      ::close(s.epoll_fd);
      ::close(s.wake_fd);
      ::close(s.claims_fd);
      for (auto& other : s.workers) {
        if (!other) continue;
        for (int fd : {other->tasks, other->tasks_reader, other->results, other->pidfd})
          ::close(fd);
      }
      become_child(parent);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      // Nothing may unwind out of here: the frames below belong to the parent.
      try {
        WorkerSetup setup;
        setup.results = result_pipe[1];
        setup.claim = claim;
        setup.max_tasks = options_.max_tasks_per_child;
        setup.initializer = options_.initializer;
        FrameReader frames(task_pipe[0]);
        serve_tasks(std::move(setup), frames);
      } catch (const std::exception& error) {
        std::fprintf(stderr, "ferry: pool worker %d failed: %s\n", ::getpid(), error.what());
      } catch (...) {
      }
      std::fflush(nullptr);
      ::_exit(kWorkerFailed);
    }
  } else {
    // This program, afresh; it finds its pipes and claim in the environment.
    std::string variable = fmt::format("{}={} {} {} {} {}", kSpawnedWorkerVariable, task_pipe[0],
                                       result_pipe[1], s.claims_fd, slot, parent);
    std::vector<char*> environment;
    for (char** entry = environ; *entry; ++entry)
      if (std::strncmp(*entry, kSpawnedWorkerVariable, std::strlen(kSpawnedWorkerVariable)) != 0)
        environment.push_back(*entry);
    environment.push_back(variable.data());
    environment.push_back(nullptr);
    std::string name = "ferry-pool-worker";
    if (std::ifstream command_line("/proc/self/cmdline"); command_line)
      std::getline(command_line, name, '\0');
    char* argv[] = {name.data(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    ::posix_spawn_file_actions_init(&actions);
    // dup2 onto itself clears close-on-exec: these three are inherited.
    for (int fd : {task_pipe[0], result_pipe[1], s.claims_fd})
      ::posix_spawn_file_actions_adddup2(&actions, fd, fd);
    ::posix_spawnattr_init(&attributes);
    sigset_t none;
    sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attributes, &none);
    ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    int error =
        ::posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, environment.data());
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attributes);
    if (error != 0) {
      errno = error;
      pid = -1;
    }
  }
  ::close(result_pipe[1]);
  auto worker = std::make_unique<Worker>();
  worker->tasks = task_pipe[1];
  worker->tasks_reader = task_pipe[0];
  worker->results = result_pipe[0];
  if (pid < 0) {
    int error = errno;
    release(*worker);
    errno = error;
    fail("cannot start a worker process");
  }
  worker->id = s.next_worker_id++;
  worker->slot = slot;
  worker->claim = claim;
  worker->pid = pid;
  worker->ready = options_.start == StartMethod::fork;
  worker->pidfd = open_pidfd(pid);
  if (worker->pidfd < 0) {
    int error = errno;
    ::kill(pid, SIGKILL);
    reap(pid);
    release(*worker);
    errno = error;
    fail("pidfd_open");
  }
  for (int fd : {worker->tasks, worker->results})
    if (::fcntl(fd, F_SETFL, O_NONBLOCK) < 0) fail("fcntl");
  watch(worker->results, EPOLLIN, worker->id << 2 | kResultsTag);
  watch(worker->pidfd, EPOLLIN, worker->id << 2 | kExitTag);
  if (options_.start == StartMethod::spawn) {
    SpawnSetup setup;
    setup.max_tasks = static_cast<std::uint64_t>(options_.max_tasks_per_child);
    if (auto* initializer = options_.initializer.target<void (*)()>())
      setup.initializer = reinterpret_cast<std::uintptr_t>(*initializer);
    setup.modules = s.modules;
    std::string payload = to_bytes(setup);
    std::uint64_t length = payload.size();
    worker->outbox.append(reinterpret_cast<const char*>(&length), sizeof length);
    worker->outbox.append(payload.data(), payload.size());
    flush(*worker);
  }
  s.workers[slot] = std::move(worker);
}

// Closes a worker's descriptors (which also takes them out of the epoll set).
void PoolCore::release(Worker& worker) {
  for (int* fd : {&worker.tasks, &worker.tasks_reader, &worker.results, &worker.pidfd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void PoolCore::submit(Invoker invoker, std::uintptr_t function, std::shared_ptr<Batch> batch,
                      std::shared_ptr<const std::string> arguments,
                      std::span<const ChunkBounds> bounds) {
  check_owner();
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  if (!s.broken.empty()) throw Error(s.broken);
  if (s.phase != Phase::open)
    throw Error(s.phase == Phase::terminated ? "the pool no longer takes tasks: it was terminated"
                                             : "the pool no longer takes tasks: it was closed");
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    Task& task = s.pending.emplace_back();
    task.batch = batch;
    task.chunk = i;
    task.invoker = invoker;
    task.function = function;
    task.arguments = arguments;
    task.bounds = bounds[i];
  }
  if (bounds.empty()) return;
  dispatch();
  // The dispatcher's wait may need a nearer deadline for these.
  if (options_.task_timeout.count() > 0) wake();
}

// How many tasks a worker may hold ahead: enough for about
// kQueuedWorkTarget of work, from 2 until task times are known.
std::size_t PoolCore::depth() const {
  if (state_->task_time_ns <= 0) return 2;
  return std::clamp<std::size_t>(
      static_cast<std::size_t>(std::chrono::nanoseconds(kQueuedWorkTarget).count() /
                               state_->task_time_ns),
      1, kMaxDepth);
}

bool PoolCore::can_take(const Worker& worker) const {
  if (worker.killed_for) return false;
  return options_.max_tasks_per_child == 0 || worker.assigned < options_.max_tasks_per_child;
}

// Whether the worker's current task has run much longer than tasks usually
// do (so that tasks sent ahead to it would likely wait).
bool PoolCore::running_long(const Worker& worker, Clock::time_point now) const {
  if (worker.in_flight.empty() || worker.in_flight.front().number != worker.claim->started())
    return false;
  auto usual = std::chrono::nanoseconds(static_cast<long long>(state_->task_time_ns));
  return now - worker.claim->started_at() >
         std::max<Clock::duration>(usual * kLongTaskFactor, std::chrono::milliseconds(1));
}

void PoolCore::send(Worker& worker, Task task) {
  State& s = *state_;
  task.number = ++worker.last_number;
  if (worker.in_flight.empty()) worker.busy_since = Clock::now();
  std::uint64_t header[5] = {32 + task.bounds.size, task.number,
                             reinterpret_cast<std::uintptr_t>(task.invoker), task.function,
                             task.bounds.count};
  worker.outbox.append(reinterpret_cast<const char*>(header), sizeof header);
  worker.outbox.append(task.arguments, task.bounds.offset, task.bounds.size);
  worker.in_flight.push_back(std::move(task));
  ++worker.assigned;
  ++s.in_flight;
}

// Gives pending tasks to workers: one to each idle worker first, then a
// second to each, and so on up to depth(), so work spreads before it queues.
void PoolCore::dispatch() {
  State& s = *state_;
  if (s.pending.empty() || s.stop != Stop::none) return;
  auto now = Clock::now();
  std::size_t max_depth = depth();
  for (std::size_t level = 1; level <= max_depth && !s.pending.empty(); ++level) {
    for (auto& worker : s.workers) {
      if (s.pending.empty()) break;
      if (!worker || !can_take(*worker) || worker->in_flight.size() >= level) continue;
      if (level > 1 && running_long(*worker, now)) continue;
      send(*worker, std::move(s.pending.front()));
      s.pending.pop_front();
    }
  }
  for (auto& worker : s.workers)
    if (worker && !worker->outbox.empty()) flush(*worker);
}

// No free worker may stay idle while tasks wait on another: when one is
// idle and nothing is pending, the tasks others hold but have not started
// come back, to be handed out again.
void PoolCore::rebalance() {
  State& s = *state_;
  if (!s.pending.empty()) return;
  bool someone_idle = std::any_of(s.workers.begin(), s.workers.end(), [&](const auto& worker) {
    return worker && worker->in_flight.empty() && can_take(*worker);
  });
  if (!someone_idle) return;
  for (auto& worker : s.workers)
    if (worker && worker->in_flight.size() > 1) take_back_unstarted(*worker);
}

void PoolCore::take_back_unstarted(Worker& worker) {
  State& s = *state_;
  if (!TaskClaim::later(worker.last_number, worker.claim->started())) return;
  std::uint32_t started = worker.claim->revoke_unstarted(worker.last_number);
  // Back to the front of the queue, in their order. Their frames may still
  // be in the outbox or the pipe: the worker skips them.
  while (!worker.in_flight.empty() && TaskClaim::later(worker.in_flight.back().number, started)) {
    s.pending.push_front(std::move(worker.in_flight.back()));
    worker.in_flight.pop_back();
    --worker.assigned;
    --s.in_flight;
  }
}

void PoolCore::flush(Worker& worker) {
  worker.outbox.send_to(worker.tasks);
  bool pending = !worker.outbox.empty();
  if (pending != worker.watching_writable) {
    watch(worker.tasks, EPOLLOUT, worker.id << 2 | kWritableTag,
          pending ? EPOLL_CTL_ADD : EPOLL_CTL_DEL);
    worker.watching_writable = pending;
  }
}

void PoolCore::finish(Task& task, std::optional<TaskError> error, std::string results) {
  State& s = *state_;
  Batch& batch = *task.batch;
  Chunk& chunk = batch.chunks[task.chunk];
  chunk.results = std::move(results);
  chunk.error = std::move(error);
  if (--batch.unfinished > 0) return;
  // Wake the waiters only when someone waits for this: a map of many chunks
  // wakes its caller once.
  bool someone_waits = batch.waiting > 0;
  for (Batch::Watcher& watcher : batch.watchers) {
    if (auto queue = watcher.queue.lock()) {
      queue->finished.push_back(watcher.index);
      someone_waits = someone_waits || queue->waiting > 0;
    }
  }
  batch.watchers.clear();
  if (someone_waits) s.wake_waiters = true;
}

// Wakes the callers waiting for what the last round finished (see drive()).
void PoolCore::notify_waiters() {
  if (std::exchange(state_->wake_waiters, false)) state_->changed.notify_all();
}

void PoolCore::notify_if_idle() {
  State& s = *state_;
  if (s.idle_waiting > 0 && s.pending.empty() && s.in_flight == 0) s.wake_waiters = true;
}

void PoolCore::read_results(Worker& worker) {
  State& s = *state_;
  std::vector<char>& buffer = worker.incoming;
  bool drained = false;
  for (;;) {
    // Whole frames first; then make room and read straight into the buffer.
    std::size_t have = worker.incoming_end - worker.incoming_begin;
    std::size_t needed = 16;
    if (have >= 16) {
      const char* frame = buffer.data() + worker.incoming_begin;
      std::uint64_t length = get_u64(frame);
      needed = 8 + length;
      if (have >= needed) {
        auto number = static_cast<std::uint32_t>(get_u64(frame + 8));
        worker.incoming_begin += needed;
        if (number == 0 && !worker.ready) {  // a spawned worker serves now
          worker.ready = true;
          continue;
        }
        if (worker.in_flight.empty() || worker.in_flight.front().number != number) {
          ::kill(worker.pid, SIGKILL);  // out of step: its tasks are reported lost
          worker.results_ended = true;
          return;
        }
        Task task = std::move(worker.in_flight.front());
        worker.in_flight.pop_front();
        --s.in_flight;
        finish(task, std::nullopt, std::string(frame + 16, length - 8));
        auto now = Clock::now();
        // A moving average of how long a task holds a worker.
        double took = static_cast<double>((now - worker.busy_since).count());
        s.task_time_ns = s.task_time_ns == 0 ? took : 0.9 * s.task_time_ns + 0.1 * took;
        worker.busy_since = now;
        continue;
      }
    }
    std::memmove(buffer.data(), buffer.data() + worker.incoming_begin, have);
    worker.incoming_begin = 0;
    worker.incoming_end = have;
    if (buffer.size() < needed) buffer.resize(std::max(needed, buffer.size() * 2));
    if (drained || worker.results_ended) break;
    std::size_t space = buffer.size() - have;
    ssize_t n = ::read(worker.results, buffer.data() + have, space);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      // The worker ended: its pidfd says how. Unwatched, or the end would
      // be reported again and again until then.
      worker.results_ended = true;
      ::epoll_ctl(state_->epoll_fd, EPOLL_CTL_DEL, worker.results, nullptr);
    }
    if (n <= 0) break;  // EAGAIN, or the end
    worker.incoming_end += static_cast<std::size_t>(n);
    // Less than there was room for: the pipe is empty for now (epoll
    // reports it again when more comes), so no read() to learn that.
    drained = static_cast<std::size_t>(n) < space;
  }
}

void PoolCore::on_exit(Worker& worker) {
  State& s = *state_;
  read_results(worker);  // results it sent before it ended still count
  int status = 0;
  reap(worker.pid, &status);
  bool initializer_failed = WIFEXITED(status) && WEXITSTATUS(status) == kInitializerFailed;
  bool never_served = !worker.ready;
  // Its claim is final now: tasks it started and did not answer failed with
  // it; those it never started go back to the front of the queue, in order.
  std::uint32_t started = worker.claim->started();
  std::deque<Task> unstarted;
  for (Task& task : worker.in_flight) {
    --s.in_flight;
    if (TaskClaim::later(task.number, started)) {
      unstarted.push_back(std::move(task));
    } else if (worker.killed_for == task.number) {
      finish(task, TaskError(TaskError::Reason::timed_out,
                             fmt::format("the task ran longer than {} ms; its worker process "
                                         "{} was killed and replaced",
                                         options_.task_timeout.count() *
                                             static_cast<long long>(task.bounds.count),
                                         worker.pid)));
    } else {
      finish(task, TaskError(TaskError::Reason::worker_lost,
                             fmt::format("the worker process {} running the task died ({})",
                                         worker.pid, describe_status(status))));
    }
  }
  s.pending.insert(s.pending.begin(), std::make_move_iterator(unstarted.begin()),
                   std::make_move_iterator(unstarted.end()));
  std::size_t slot = worker.slot;
  release(worker);
  s.workers[slot].reset();

  if (s.stop != Stop::none) return;  // stopping: no replacement
  if (initializer_failed || never_served) {
    // A replacement would fail the same way: the pool cannot go on.
    s.broken = initializer_failed
                   ? "the pool's initializer failed in a new worker process (its message is on "
                     "stderr)"
                   : fmt::format("a spawned worker process ended before it could serve ({})",
                                 describe_status(status));
    stop_workers(Stop::kill);
    fail_everything(TaskError::Reason::worker_lost, s.broken);
    s.stop = Stop::kill;
    return;
  }
  spawn_worker(slot);
}

void PoolCore::fail_everything(TaskError::Reason reason, const std::string& message) {
  State& s = *state_;
  for (auto& worker : s.workers) {
    if (!worker) continue;
    for (Task& task : worker->in_flight) finish(task, TaskError(reason, message));
    s.in_flight -= worker->in_flight.size();
    worker->in_flight.clear();
  }
  for (Task& task : s.pending) finish(task, TaskError(reason, message));
  s.pending.clear();
  s.changed.notify_all();  // waiters of the pool itself (join), and any left
}

// Ends every worker and reaps it: at once (kill), or once it read a stop
// frame after its tasks (drain). A frame rather than the end of the pipe: a
// child this process forked meanwhile may hold the pipe open.
void PoolCore::stop_workers(Stop how) {
  State& s = *state_;
  for (auto& worker : s.workers) {
    if (!worker) continue;
    if (how == Stop::kill) {
      ::kill(worker->pid, SIGKILL);
      continue;
    }
    std::uint64_t stop[5] = {32, 0, 0, 0, 0};  // task number 0
    worker->outbox.append(reinterpret_cast<const char*>(stop), sizeof stop);
    // Until it is written, or the worker ended anyway.
    for (;;) {
      worker->outbox.send_to(worker->tasks);
      if (worker->outbox.empty()) break;
      pollfd watch[2] = {{worker->tasks, POLLOUT, 0}, {worker->pidfd, POLLIN, 0}};
      if (::poll(watch, 2, -1) < 0 && errno != EINTR) break;
      if (watch[1].revents) break;
    }
  }
  for (auto& worker : s.workers) {
    if (!worker) continue;
    reap(worker->pid);
    for (Task& task : worker->in_flight)
      finish(task, TaskError(TaskError::Reason::terminated,
                             "the pool was terminated before the task finished"));
    s.in_flight -= worker->in_flight.size();
    release(*worker);
    worker.reset();
  }
}

// Kills workers whose task ran past its time, counted from when the worker
// started it (its claim says when). Returns when to look again.
std::optional<Clock::time_point> PoolCore::enforce_timeouts(Clock::time_point now) {
  State& s = *state_;
  if (options_.task_timeout.count() <= 0) return std::nullopt;
  std::optional<Clock::time_point> next;
  auto sooner = [&](Clock::time_point when) {
    if (!next || when < *next) next = when;
  };
  for (auto& slot : s.workers) {
    if (!slot || slot->in_flight.empty() || slot->killed_for) continue;
    Worker& worker = *slot;
    std::uint32_t started = worker.claim->started();
    auto running = std::find_if(worker.in_flight.begin(), worker.in_flight.end(),
                                [&](const Task& task) { return task.number == started; });
    if (running == worker.in_flight.end()) {
      sooner(now + options_.task_timeout);  // its next task may start any moment
      continue;
    }
    auto deadline = worker.claim->started_at() +
                    options_.task_timeout * static_cast<long>(running->bounds.count);
    if (now < deadline) {
      sooner(deadline);
      continue;
    }
    // Its result may be here already.
    read_results(worker);
    if (worker.in_flight.empty() || worker.in_flight.front().number != started) continue;
    worker.killed_for = started;
    ::kill(worker.pid, SIGKILL);
  }
  return next;
}

bool PoolCore::wait_until(int& waiting, const std::function<bool()>& condition,
                          std::optional<Clock::time_point> deadline) {
  check_owner();
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  if (condition()) return true;
  ++waiting;
  ++s.callers_waiting;
  // A caller drives only for the first kGrace of its wait: a short wait is
  // then one wake-up (the result's), and a long one is the dispatcher's.
  auto drive_until = Clock::now() + kGrace;
  if (deadline) drive_until = std::min(drive_until, *deadline);
  bool met = false;
  bool drove = false;
  for (;;) {
    if (condition()) {
      met = true;
      break;
    }
    auto now = Clock::now();
    if (deadline && now >= *deadline) break;
    bool may_drive = now < drive_until && s.stop == Stop::none;
    if (may_drive && s.driver == Driver::nobody) {
      s.driver = Driver::caller;
      s.last_caller_drive = now;
      drove = true;
      try {
        drive(lock, drive_until);
      } catch (const std::exception& error) {
        break_pool(error);
      }
      s.driver = Driver::nobody;
      s.last_caller_drive = Clock::now();
      if (s.stop != Stop::none) s.dispatcher_wakeup.notify_all();
      continue;
    }
    if (may_drive && s.driver == Driver::dispatcher) {
      // Ask the dispatcher for the role: its wait ends at once.
      ++s.role_wanted;
      wake();
      s.changed.wait_until(lock, drive_until);
      --s.role_wanted;
      continue;
    }
    if (drove) {
      // A longer wait: the dispatcher drives from now on.
      drove = false;
      s.handover = true;
      s.dispatcher_wakeup.notify_one();
    }
    notify_waiters();
    if (deadline)
      s.changed.wait_until(lock, *deadline);
    else
      s.changed.wait(lock);
  }
  --waiting;
  --s.callers_waiting;
  notify_waiters();  // what this caller's last round finished for others
  if (drove) {
    // The role is free: for another waiting caller, or for the dispatcher,
    // at once when work is outstanding.
    if (s.callers_waiting > 0) s.changed.notify_all();
    if (work_outstanding()) {
      s.handover = true;
      s.dispatcher_wakeup.notify_one();
    }
  }
  return met;
}

void PoolCore::with_lock(const std::function<void()>& work) {
  check_owner();
  std::lock_guard lock(state_->mutex);
  work();
}

void PoolCore::close() {
  check_owner();
  std::lock_guard lock(state_->mutex);
  if (state_->phase == Phase::open) state_->phase = Phase::closed;
}

void PoolCore::join() {
  check_owner();
  State& s = *state_;
  {
    std::unique_lock lock(s.mutex);
    if (s.phase == Phase::open)
      throw Error("join() needs close() or terminate() first, as in Python");
    ++s.idle_waiting;
    s.changed.wait(lock, [&] {
      return s.phase != Phase::closed || s.stop != Stop::none ||
             (s.pending.empty() && s.in_flight == 0);
    });
    --s.idle_waiting;
    if (s.phase == Phase::closed) {
      s.phase = Phase::joined;
      s.stop = Stop::drain;
      wake();
      s.dispatcher_wakeup.notify_all();
    }
  }
  std::lock_guard joining(s.dispatcher_join);
  if (s.dispatcher->joinable()) s.dispatcher->join();
}

void PoolCore::terminate() {
  if (::getpid() != owner_) return;  // a child's copy: the pool is not its to end
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.phase != Phase::joined) s.phase = Phase::terminated;
    if (s.stop == Stop::none) {
      s.stop = Stop::kill;
      wake();  // whoever drives leaves its wait
      s.dispatcher_wakeup.notify_all();
    }
  }
  std::lock_guard joining(s.dispatcher_join);
  if (s.dispatcher->joinable()) s.dispatcher->join();
}

std::vector<pid_t> PoolCore::worker_pids() {
  check_owner();
  std::lock_guard lock(state_->mutex);
  std::vector<pid_t> pids;
  for (auto& worker : state_->workers)
    if (worker) pids.push_back(worker->pid);
  std::sort(pids.begin(), pids.end());
  return pids;
}

std::shared_ptr<PoolCore> make_pool_core(PoolOptions options) {
  return std::make_shared<PoolCore>(std::move(options));
}

void submit(PoolCore& core, Invoker invoker, std::uintptr_t function, std::shared_ptr<Batch> batch,
            std::shared_ptr<const std::string> arguments, std::span<const ChunkBounds> bounds) {
  core.submit(invoker, function, std::move(batch), std::move(arguments), bounds);
}

bool wait_until(PoolCore& core, int& waiting, const std::function<bool()>& condition,
                std::optional<Clock::time_point> deadline) {
  return core.wait_until(waiting, condition, deadline);
}

void with_lock(PoolCore& core, const std::function<void()>& work) { core.with_lock(work); }
void close(PoolCore& core) { core.close(); }
void join(PoolCore& core) { core.join(); }
void terminate(PoolCore& core) { core.terminate(); }
int process_count(const PoolCore& core) { return core.processes(); }
std::vector<pid_t> worker_pids(PoolCore& core) { return core.worker_pids(); }

}  // namespace ferry::detail
