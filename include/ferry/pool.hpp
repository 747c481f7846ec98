// ferry::Pool — a pool of worker processes, like Python's multiprocessing.Pool.
//
//   int square(int n) { return n * n; }
//
//   ferry::Pool pool(4);                                  // 4 worker processes
//   auto handle = pool.submit(square, 7);                 // apply_async
//   int x = handle.get();                                 // 49, or throws
//   std::vector<int> squares = pool.map(square, inputs);  // ordered
//   for (int y : pool.imap_unordered(square, std::views::iota(0, 1'000'000))) ...
//
// What a task is: workers are separate processes, so a task names a function
// by its address. Tasks are plain functions or lambdas without captures, with
// concrete parameter types. A parameter may be T, const T& or T&& (the worker
// decodes each argument into a value of its own and hands it over); T&
// (changes would be lost), pointers and views (they would point into another
// process) are refused at compile time, with a message saying why, as are
// capturing or generic lambdas and wrong argument counts. Arguments and
// results cross the process boundary through ferry/codec.hpp.
//
// How work moves: a thread of the pool dispatches tasks and collects results
// whether or not anyone waits, so submitted work always progresses (a caller
// waiting for a short task collects results itself for a moment, which
// saves a thread hop). Workers get their next task before they finish the
// current one when tasks are short (no round trip between tiny tasks); a
// task sent ahead but not yet started is taken back and given to a worker
// that fell idle, so no task waits behind a long one while a worker is free.
//
// Failures are values of the task, never of the pool: a task that throws
// fails with its message; one that crashes its worker (a segfault, exit(),
// abort()) or runs past `task_timeout` (counted from its start) fails with a
// TaskError saying so, and the pool replaces the worker and goes on. get()
// rethrows as ferry::TaskError.
//
// Lifetime, as in Python: close() takes no more tasks; join() waits for the
// queued ones and for the workers to exit (after close() or terminate());
// terminate() kills the workers at once, failing what was unfinished and
// waking every thread waiting on the pool. The destructor terminates a pool
// that was not joined, and reaps every worker: no child is leaked, nothing
// hangs. Workers die with the pool's process, even when it is killed.
//
// A Pool may be used from several threads at once. With the default fork
// start, a worker is a copy of this process made when the pool starts (or
// replaces a worker): tasks must not need a lock that another thread held
// at that moment. StartMethod::spawn starts workers as fresh runs of this
// program instead, at the cost of a slower start and no inherited state.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ferry/codec.hpp"
#include "ferry/detail/pool_tasks.hpp"
#include "ferry/error.hpp"

namespace ferry {

// How the pool starts its worker processes.
enum class StartMethod {
  // A copy of this process (fork): fast, and workers see this process's
  // memory as it was. Like Python's "fork".
  fork,
  // This program run afresh (/proc/self/exe), which serves tasks before its
  // main() would run: safe when other threads hold locks, but each start runs
  // the program's static initializers and inherits nothing else; the
  // initializer must be a plain function. Like Python's "spawn". Tasks must
  // be in the program or in a library it loaded at start. The worker serves
  // from ferry's own static initialization, so globals of files linked
  // before the ferry library (a program's own, as usual) are initialized,
  // those of files linked after it may not be.
  spawn,
};

struct PoolOptions {
  int processes = 0;                  // 0: the number of cores; negative: refused
  std::function<void()> initializer;  // run once in each worker as it starts
  int max_tasks_per_child = 0;        // 0: no limit; else a worker is replaced after that many
  std::chrono::milliseconds task_timeout{0};  // 0: none; per task (a chunk gets n times this)
  StartMethod start = StartMethod::fork;
};

template <class T>
class Completions;

// The handle of submitted work (Python's AsyncResult): one task from
// submit(), or a whole map from map_async()/starmap_async().
template <class T>
class AsyncResult {
 public:
  // Waits for the result; rethrows the task's failure as ferry::TaskError.
  T get() {
    wait();
    return collect_(*batch_);
  }
  // Throws ferry::TimeoutError when the result is not there within `timeout`.
  T get(std::chrono::milliseconds timeout) {
    if (!wait(timeout)) throw TimeoutError("the task did not finish within the timeout");
    return collect_(*batch_);
  }
  void wait() { wait_until(std::nullopt); }
  bool wait(std::chrono::milliseconds timeout) {
    return wait_until(detail::Clock::now() + timeout);
  }
  bool ready() { return wait(std::chrono::milliseconds(0)); }
  // Whether it finished without failing; throws ferry::Error if not ready.
  bool successful() {
    if (!ready()) throw Error("successful(): the task has not finished");
    try {
      collect_(*batch_);
      return true;
    } catch (const TaskError&) {
      return false;
    }
  }

 private:
  friend class Pool;
  template <class U>
  friend class AsyncResult;
  template <class U>
  friend class Completions;
  using Collect = T (*)(detail::Batch&);
  AsyncResult() = default;  // only for code a compile error has already refused
  AsyncResult(std::shared_ptr<detail::PoolCore> core, std::shared_ptr<detail::Batch> batch,
              Collect collect)
      : core_(std::move(core)), batch_(std::move(batch)), collect_(collect) {}
  bool wait_until(std::optional<detail::Clock::time_point> deadline) {
    detail::Batch& batch = *batch_;
    return detail::wait_until(
        *core_, batch.waiting, [&batch] { return batch.unfinished == 0; }, deadline);
  }
  std::shared_ptr<detail::PoolCore> core_;
  std::shared_ptr<detail::Batch> batch_;
  Collect collect_ = nullptr;
};

// The indices of a list of handles, each once, in the order their work
// finishes (Python's concurrent.futures.as_completed). See ferry::as_completed.
template <class T>
class Completions {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Completions* completions) : completions_(completions) { advance(); }
    std::size_t operator*() const { return *current_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    bool operator==(std::default_sentinel_t) const { return !current_; }

   private:
    void advance() { current_ = completions_->next(); }
    Completions* completions_ = nullptr;
    std::optional<std::size_t> current_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

  explicit Completions(const std::vector<AsyncResult<T>>& handles)
      : queue_(std::make_shared<detail::CompletionQueue>()), remaining_(handles.size()) {
    if (handles.empty()) return;
    core_ = handles.front().core_;
    for (const AsyncResult<T>& handle : handles)
      if (handle.core_ != core_) throw Error("as_completed: the handles come from different pools");
    // A batch that finished is reported at once; the others when they finish.
    detail::with_lock(*core_, [&] {
      for (std::size_t i = 0; i < handles.size(); ++i) {
        detail::Batch& batch = *handles[i].batch_;
        if (batch.unfinished == 0) {
          queue_->finished.push_back(i);
        } else {
          std::erase_if(batch.watchers,
                        [](const auto& watcher) { return watcher.queue.expired(); });
          batch.watchers.push_back({queue_, i});
        }
      }
    });
  }

 private:
  std::optional<std::size_t> next() {
    if (remaining_ == 0) return std::nullopt;
    std::size_t index = 0;
    detail::wait_until(
        *core_, queue_->waiting,
        [&] {
          if (queue_->finished.empty()) return false;
          index = queue_->finished.front();
          queue_->finished.pop_front();
          return true;
        },
        std::nullopt);
    --remaining_;
    return index;
  }
  std::shared_ptr<detail::PoolCore> core_;
  std::shared_ptr<detail::CompletionQueue> queue_;
  std::size_t remaining_;
};

// The indices of `handles` (from one pool), each once, as their work finishes:
//
//   for (std::size_t i : ferry::as_completed(handles)) use(handles[i].get());
template <class T>
Completions<T> as_completed(const std::vector<AsyncResult<T>>& handles) {
  return Completions<T>(handles);
}

// Results of imap (in input order) or imap_unordered (as they finish),
// computed lazily: a bounded number of chunks is in flight, so memory stays
// bounded however long the input is.
template <class R, class Task, class Range, bool kOrdered, bool kStar>
class ResultStream {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(ResultStream* stream) : stream_(stream) { advance(); }
    const R& operator*() const { return *current_; }
    const R* operator->() const { return &*current_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    bool operator==(std::default_sentinel_t) const { return !current_; }

   private:
    void advance() { current_ = stream_->next(); }
    ResultStream* stream_ = nullptr;
    std::optional<R> current_;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

  // Iterators point at the stream, and input_ may point into range_.
  ResultStream(const ResultStream&) = delete;
  ResultStream& operator=(const ResultStream&) = delete;

  ResultStream(std::shared_ptr<detail::PoolCore> core, std::uintptr_t function, Range&& range,
               std::size_t chunksize)
      : core_(std::move(core)),
        function_(function),
        range_(std::forward<Range>(range)),
        input_(std::ranges::begin(range_)),
        chunksize_(chunksize),
        max_in_flight_(static_cast<std::size_t>(detail::process_count(*core_)) * 8),
        finished_(std::make_shared<detail::CompletionQueue>()) {}

 private:
  std::optional<R> next() {
    for (;;) {
      // Each result is self-delimiting: a chunk is done when its bytes are.
      if (results_ && !results_->done()) return results_->next();
      results_.reset();
      fill();
      if (in_flight_.empty()) return std::nullopt;
      if constexpr (kOrdered) {
        current_ = std::move(in_flight_.front().second);
        in_flight_.pop_front();
        detail::Batch& batch = *current_;
        detail::wait_until(
            *core_, batch.waiting, [&batch] { return batch.unfinished == 0; }, std::nullopt);
      } else {
        std::size_t index = 0;
        detail::wait_until(
            *core_, finished_->waiting,
            [&] {
              if (finished_->finished.empty()) return false;
              index = finished_->finished.front();
              finished_->finished.pop_front();
              return true;
            },
            std::nullopt);
        auto found = std::find_if(in_flight_.begin(), in_flight_.end(),
                                  [&](const auto& entry) { return entry.first == index; });
        current_ = std::move(found->second);
        in_flight_.erase(found);
      }
      detail::Chunk& chunk = current_->chunks.front();
      if (chunk.error) throw *chunk.error;
      results_.emplace(chunk.results);
    }
  }

  void fill() {
    while (in_flight_.size() < max_in_flight_ && input_ != std::ranges::end(range_)) {
      auto arguments = std::make_shared<std::string>();
      Writer writer(*arguments);
      detail::ChunkBounds bounds;
      bounds.count =
          detail::encode_items<Task, kStar>(writer, input_, std::ranges::end(range_), chunksize_);
      bounds.size = arguments->size();
      auto batch = std::make_shared<detail::Batch>(1);
      std::size_t index = next_index_++;
      if constexpr (!kOrdered) batch->watchers.push_back({finished_, index});
      detail::submit(*core_, &detail::invoke_chunk<typename Task::Pointer>, function_, batch,
                     std::move(arguments), std::span(&bounds, 1));
      in_flight_.emplace_back(index, std::move(batch));
    }
  }

  std::shared_ptr<detail::PoolCore> core_;
  std::uintptr_t function_;
  Range range_;
  std::ranges::iterator_t<std::remove_reference_t<Range>> input_;  // the next to submit
  std::size_t chunksize_;
  std::size_t max_in_flight_;
  std::size_t next_index_ = 0;
  std::deque<std::pair<std::size_t, std::shared_ptr<detail::Batch>>> in_flight_;  // as submitted
  std::shared_ptr<detail::CompletionQueue> finished_;  // imap_unordered: what finished
  std::shared_ptr<detail::Batch> current_;             // results_ reads its bytes
  std::optional<detail::ChunkResults<R>> results_;
};

class Pool {
 public:
  // Starts the workers. Throws ferry::Error for options out of range
  // (processes < 0, as Python refuses them) or when workers cannot start.
  explicit Pool(PoolOptions options = {}) : core_(detail::make_pool_core(std::move(options))) {}
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  ~Pool() {
    if (core_) detail::terminate(*core_);
  }
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&& other) noexcept {
    if (this != &other) {
      if (core_) detail::terminate(*core_);
      core_ = std::move(other.core_);
    }
    return *this;
  }

  // Runs function(args...) in a worker (Python's apply_async).
  template <class F, class... A>
  auto submit(F function, A&&... args) {
    if constexpr (!detail::check_task<F>()) {
      return AsyncResult<void>();
    } else {
      using Task = detail::Signature<detail::TaskPointer<F>>;
      using R = typename Task::Result;
      if constexpr (!detail::ArgumentCheck<typename Task::Parameters, A...>::check()) {
        return AsyncResult<R>();
      } else {
        auto arguments = std::make_shared<std::string>();
        Writer writer(*arguments);
        detail::encode_arguments<typename Task::Parameters>(
            writer, std::make_index_sequence<Task::arity>{}, std::forward<A>(args)...);
        detail::ChunkBounds bounds{0, arguments->size(), 1};
        auto batch = std::make_shared<detail::Batch>(1);
        detail::submit(*core_, &detail::invoke_chunk<typename Task::Pointer>,
                       address_of<Task>(function), batch, std::move(arguments),
                       std::span(&bounds, 1));
        return AsyncResult<R>(core_, std::move(batch), &single_result<R>);
      }
    }
  }

  // function(item) for every item, results in input order. Throws the first
  // failure (in input order) as ferry::TaskError. chunksize 0 picks one as
  // Python does: about four chunks per worker. An input without a size
  // (a filtered view, say) is collected first, as Python does, so it is
  // chunked the same way.
  template <class F, std::ranges::input_range Range>
  auto map(F function, Range&& items, std::size_t chunksize = 0) {
    return map_async(function, std::forward<Range>(items), chunksize).get();
  }

  // function(std::get<0>(item), std::get<1>(item), ...) for every tuple item.
  template <class F, std::ranges::input_range Range>
  auto starmap(F function, Range&& items, std::size_t chunksize = 0) {
    return starmap_async(function, std::forward<Range>(items), chunksize).get();
  }

  // map without waiting: an AsyncResult whose get() returns the results (or
  // throws the first failure). The input is encoded before this returns.
  template <class F, std::ranges::input_range Range>
  auto map_async(F function, Range&& items, std::size_t chunksize = 0) {
    return map_async_impl<F, false>(function, std::forward<Range>(items), chunksize);
  }
  template <class F, std::ranges::input_range Range>
  auto starmap_async(F function, Range&& items, std::size_t chunksize = 0) {
    return map_async_impl<F, true>(function, std::forward<Range>(items), chunksize);
  }

  // function(item) for every item, results in input order, lazily: `items`
  // is consumed as results are taken (it must outlive the loop when passed
  // by reference). chunksize 1 as in Python; larger ones cost less per item.
  template <class F, std::ranges::input_range Range>
  auto imap(F function, Range&& items, std::size_t chunksize = 1) {
    return stream<F, true>(function, std::forward<Range>(items), chunksize);
  }

  // Like imap, with results in the order they finish.
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F function, Range&& items, std::size_t chunksize = 1) {
    return stream<F, false>(function, std::forward<Range>(items), chunksize);
  }

  // Waits until one of `handles` (all from this pool) is ready; returns its
  // index. ferry::as_completed(handles) yields every index in finishing order.
  template <class T>
  std::size_t wait_any(const std::vector<AsyncResult<T>>& handles) {
    if (handles.empty()) throw Error("wait_any needs at least one handle");
    return *as_completed(handles).begin();
  }

  void close() { detail::close(*core_); }
  void join() { detail::join(*core_); }
  void terminate() { detail::terminate(*core_); }
  int processes() const { return detail::process_count(*core_); }
  std::vector<pid_t> worker_pids() { return detail::worker_pids(*core_); }

 private:
  template <class Task, class F>
  static std::uintptr_t address_of(F function) {
    auto pointer = static_cast<typename Task::Pointer>(function);
    return reinterpret_cast<std::uintptr_t>(pointer);
  }

  template <class R>
  static R single_result(detail::Batch& batch) {
    detail::Chunk& chunk = batch.chunks.front();
    if (chunk.error) throw *chunk.error;
    return detail::ChunkResults<R>(chunk.results).next();
  }

  template <class R>
  static auto all_results(detail::Batch& batch) {
    for (detail::Chunk& chunk : batch.chunks)
      if (chunk.error) throw *chunk.error;
    if constexpr (std::is_void_v<R>) {
      for (detail::Chunk& chunk : batch.chunks)
        for (detail::ChunkResults<R> results(chunk.results); !results.done();) results.next();
    } else {
      std::vector<R> out;
      for (detail::Chunk& chunk : batch.chunks)
        detail::ChunkResults<R>(chunk.results).append_to(out);
      return out;
    }
  }
  template <class R>
  using MapResult = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;

  template <class F, bool kStar, class Range>
  auto map_async_impl(F function, Range&& items, std::size_t chunksize) {
    using Item = std::ranges::range_reference_t<Range>;
    if constexpr (!detail::check_task<F>()) {
      return AsyncResult<void>();
    } else {
      using Task = detail::Signature<detail::TaskPointer<F>>;
      using R = typename Task::Result;
      if constexpr (!detail::ItemCheck<typename Task::Parameters, Item, kStar>::check()) {
        return AsyncResult<MapResult<R>>();
      } else if constexpr (!std::ranges::sized_range<Range>) {
        // Python collects an input without a length before chunking it.
        std::vector<std::ranges::range_value_t<Range>> collected;
        for (auto&& item : items) collected.push_back(std::forward<decltype(item)>(item));
        return map_async_impl<F, kStar>(function, collected, chunksize);
      } else {
        std::size_t total = std::ranges::size(items);
        if (chunksize == 0) {
          std::size_t parts = static_cast<std::size_t>(processes()) * 4;
          chunksize = std::max<std::size_t>(1, (total + parts - 1) / parts);
        }
        // All chunks in one buffer, each sent from where it lies.
        auto arguments = std::make_shared<std::string>();
        Writer writer(*arguments);
        std::vector<detail::ChunkBounds> bounds;
        bounds.reserve((total + chunksize - 1) / chunksize);
        auto end = std::ranges::end(items);
        for (auto it = std::ranges::begin(items); it != end;) {
          detail::ChunkBounds chunk;
          chunk.offset = arguments->size();
          chunk.count = detail::encode_items<Task, kStar>(writer, it, end, chunksize);
          chunk.size = arguments->size() - chunk.offset;
          bounds.push_back(chunk);
        }
        auto batch = std::make_shared<detail::Batch>(bounds.size());
        detail::submit(*core_, &detail::invoke_chunk<typename Task::Pointer>,
                       address_of<Task>(function), batch, std::move(arguments), bounds);
        return AsyncResult<MapResult<R>>(core_, std::move(batch), &all_results<R>);
      }
    }
  }

  template <class F, bool kOrdered, class Range>
  auto stream(F function, Range&& items, std::size_t chunksize) {
    using Item = std::ranges::range_reference_t<Range>;
    if constexpr (!detail::check_task<F>()) {
      return std::ranges::empty_view<int>();
    } else {
      using Task = detail::Signature<detail::TaskPointer<F>>;
      using R = typename Task::Result;
      if constexpr (std::is_void_v<R>) {
        static_assert(!std::is_void_v<R>, "ferry::Pool: imap needs a task that returns a value");
        return std::ranges::empty_view<int>();
      } else if constexpr (!detail::ItemCheck<typename Task::Parameters, Item, false>::check()) {
        return std::ranges::empty_view<R>();
      } else {
        return ResultStream<R, Task, Range, kOrdered, false>(core_, address_of<Task>(function),
                                                             std::forward<Range>(items),
                                                             chunksize == 0 ? 1 : chunksize);
      }
    }
  }

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace ferry
