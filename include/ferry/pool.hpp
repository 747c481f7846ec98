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
// What can be sent: the workers are forked when the pool starts, so a task
// names a function by its address, which is the same in every worker. Tasks
// are therefore plain functions or lambdas without captures, with concrete
// parameter types; anything else (a capturing lambda, a generic lambda, a
// std::function) is rejected at compile time. Arguments and results cross
// the process boundary through ferry/codec.hpp.
//
// Failures are values of the task, never of the pool: a task that throws
// fails with its message; one that crashes its worker (a segfault, exit(),
// abort()) or runs past `task_timeout` fails with a TaskError saying so, and
// the pool replaces the worker and goes on. get() rethrows as ferry::TaskError.
//
// Lifetime, as in Python: close() takes no more tasks; join() waits for the
// queued ones and for the workers to exit (after close() or terminate());
// terminate() kills the workers at once, failing what was unfinished. The
// destructor terminates a pool that was not joined, and reaps every worker:
// no child is ever leaked, and nothing hangs.
//
// A Pool may be used from several threads at once. Workers are forked from
// whichever thread replaces them, so the rule of ferry/process.hpp applies:
// tasks must not need a lock that another thread of the parent held.
#pragma once

#include <sys/types.h>

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
#include "ferry/error.hpp"

namespace ferry {

struct PoolOptions {
  int processes = 0;                  // 0: the number of cores
  std::function<void()> initializer;  // run once in each worker as it starts
  int max_tasks_per_child = 0;        // 0: no limit; else a worker is replaced after that many
  std::chrono::milliseconds task_timeout{0};  // 0: none; per task (a chunk gets n times this)
};

namespace detail {

using Clock = std::chrono::steady_clock;

// Runs one chunk in a worker: decodes `count` argument tuples, calls the
// function on each, and writes for each a status byte (1 ok, 0 error) and the
// result or the error message.
using Invoker = void (*)(std::uintptr_t function, Reader& arguments, Writer& results);

// The shared state of one submitted chunk. Written by the pool under its lock.
struct TaskState {
  bool done = false;
  std::string results;             // as written by the Invoker
  std::optional<TaskError> error;  // the whole chunk failed (timeout, worker lost, terminated)
  // Where to report completion. Weak: the list holds the states it was told of.
  std::weak_ptr<std::deque<std::shared_ptr<TaskState>>> completions;
};

class PoolCore;

// The engine: a non-template class that moves bytes (src/pool/pool_core.cpp).
std::shared_ptr<PoolCore> make_pool_core(PoolOptions options);
std::shared_ptr<TaskState> submit(
    PoolCore& core, Invoker invoker, std::uintptr_t function, std::string arguments,
    std::shared_ptr<std::deque<std::shared_ptr<TaskState>>> completions = nullptr);
// Waits until `condition` holds (it is evaluated under the pool's lock) or
// `deadline` passes; drives the pool meanwhile. Returns whether it holds.
bool wait_until(PoolCore& core, const std::function<bool()>& condition,
                std::optional<Clock::time_point> deadline);
void close(PoolCore& core);
void join(PoolCore& core);
void terminate(PoolCore& core);
int process_count(const PoolCore& core);
std::vector<pid_t> worker_pids(PoolCore& core);

template <class F>
struct FunctionPointer;
template <class R, class... Args>
struct FunctionPointer<R (*)(Args...)> {
  using type = R (*)(Args...);
  using result = R;
  using arguments = std::tuple<std::decay_t<Args>...>;
};
template <class R, class... Args>
struct FunctionPointer<R (*)(Args...) noexcept> : FunctionPointer<R (*)(Args...)> {};

template <class Method>
struct CallOperator;
template <class C, class R, class... Args>
struct CallOperator<R (C::*)(Args...) const> {
  using type = R (*)(Args...);
};
template <class C, class R, class... Args>
struct CallOperator<R (C::*)(Args...) const noexcept> {
  using type = R (*)(Args...);
};
template <class C, class R, class... Args>
struct CallOperator<R (C::*)(Args...)> {
  using type = R (*)(Args...);
};

template <class F>
auto to_function_pointer(F function) {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
    return function;
  } else if constexpr (requires { &F::operator(); }) {
    using Pointer = typename CallOperator<decltype(&F::operator())>::type;
    static_assert(std::is_convertible_v<F, Pointer>,
                  "ferry::Pool: a task must be a plain function or a lambda without captures: "
                  "workers are separate processes started before the task existed");
    return static_cast<Pointer>(function);
  } else {
    static_assert(sizeof(F) == 0,
                  "ferry::Pool: a task must be a plain function or a lambda with concrete "
                  "parameter types (not auto)");
  }
}

// A chunk's results start with their format.
enum ResultFormat : std::uint8_t {
  kEachItem = 1,  // per item: 1 and the result, or 0 and the error message
  kBulk = 2,      // every item succeeded: the results' bytes, back to back
};

// Arithmetic types encode as their raw bytes, so a run of them is one copy.
template <class T>
inline constexpr bool kRaw = std::is_arithmetic_v<T> || std::is_enum_v<T>;

template <class Arguments>
struct SingleRawArgument : std::false_type {};
template <class T>
struct SingleRawArgument<std::tuple<T>> : std::bool_constant<kRaw<T>> {
  using type = T;
};

template <class R, class Arguments>
void invoke_chunk(std::uintptr_t function, Reader& in, Writer& out) {
  using Pointer = decltype(std::apply([](auto... a) { return (R(*)(decltype(a)...)) nullptr; },
                                      std::declval<Arguments>()));
  auto call = reinterpret_cast<Pointer>(function);
  std::size_t count = in.size();
  std::vector<std::pair<std::size_t, std::string>> errors;
  auto run = [&](std::size_t i, auto&& body) {
    try {
      body();
    } catch (const std::exception& error) {
      errors.emplace_back(i, error.what());
    } catch (...) {
      errors.emplace_back(i, "the task threw an exception that is not a std::exception");
    }
  };
  auto next_arguments = [&] {
    if constexpr (SingleRawArgument<Arguments>::value) {
      typename SingleRawArgument<Arguments>::type value;
      in.read(&value, sizeof value);
      return Arguments(value);
    } else {
      return ferry::decode<Arguments>(in);
    }
  };
  auto write_each = [&](auto&& write_result) {
    ferry::encode(out, std::uint8_t{kEachItem});
    auto error = errors.begin();
    for (std::size_t i = 0; i < count; ++i) {
      if (error != errors.end() && error->first == i) {
        ferry::encode(out, std::uint8_t{0});
        ferry::encode(out, (error++)->second);
      } else {
        ferry::encode(out, std::uint8_t{1});
        write_result(i);
      }
    }
  };
  if constexpr (std::is_void_v<R>) {
    for (std::size_t i = 0; i < count; ++i) run(i, [&] { std::apply(call, next_arguments()); });
    write_each([](std::size_t) {});
  } else if constexpr (kRaw<R>) {
    std::vector<R> results(count);
    for (std::size_t i = 0; i < count; ++i)
      run(i, [&] { results[i] = std::apply(call, next_arguments()); });
    if (errors.empty()) {
      out.reserve(1 + count * sizeof(R));
      ferry::encode(out, std::uint8_t{kBulk});
      out.write(results.data(), count * sizeof(R));  // what encoding each would write
    } else {
      write_each([&](std::size_t i) { ferry::encode(out, results[i]); });
    }
  } else {
    std::vector<std::optional<R>> results(count);
    for (std::size_t i = 0; i < count; ++i)
      run(i, [&] { results[i].emplace(std::apply(call, next_arguments())); });
    write_each([&](std::size_t i) { ferry::encode(out, *results[i]); });
  }
}

// Reads the results of one chunk, item by item.
template <class R>
class ChunkResults {
 public:
  explicit ChunkResults(std::string_view bytes) : reader_(bytes) {
    format_ = ferry::decode<std::uint8_t>(reader_);
  }
  bool done() const { return reader_.empty(); }
  // The next item's result; throws its failure as TaskError.
  auto next() {
    if (format_ == kEachItem && ferry::decode<std::uint8_t>(reader_) == 0)
      throw TaskError(TaskError::Reason::exception, ferry::decode<std::string>(reader_));
    if constexpr (!std::is_void_v<R>) return ferry::decode<R>(reader_);
  }
  // Appends every remaining result to `out`: one copy for a bulk chunk.
  template <class Vector>
  void append_to(Vector& out) {
    if constexpr (kRaw<R>) {
      if (format_ == kBulk) {
        std::string_view bytes = reader_.take(reader_.remaining());
        std::size_t old = out.size();
        out.resize(old + bytes.size() / sizeof(R));
        std::memcpy(out.data() + old, bytes.data(), bytes.size());
        return;
      }
    }
    while (!done()) out.push_back(next());
  }

 private:
  Reader reader_;
  std::uint8_t format_;
};

// Encodes a chunk: its item count, then each item's arguments.
template <class Arguments, class Iterator, class Sentinel>
std::string encode_chunk(Iterator& it, Sentinel end, std::size_t chunksize) {
  std::string bytes;
  Writer writer(bytes);
  writer.size(0);  // the count, patched below
  std::uint64_t count = 0;
  if constexpr (SingleRawArgument<Arguments>::value && std::contiguous_iterator<Iterator> &&
                std::is_same_v<std::iter_value_t<Iterator>,
                               typename SingleRawArgument<Arguments>::type>) {
    count = static_cast<std::uint64_t>(std::min<std::ptrdiff_t>(
        static_cast<std::ptrdiff_t>(chunksize), std::ranges::distance(it, end)));
    writer.write(std::to_address(it), count * sizeof(*it));  // the same bytes, in one copy
    it += static_cast<std::ptrdiff_t>(count);
  } else {
    for (; count < chunksize && it != end; ++count, ++it) ferry::encode(writer, Arguments(*it));
  }
  std::memcpy(bytes.data(), &count, sizeof count);
  return bytes;
}

}  // namespace detail

// The handle of one submitted task (Python's AsyncResult).
template <class R>
class AsyncResult {
 public:
  // Waits for the result; rethrows the task's failure as ferry::TaskError.
  R get() {
    wait();
    return result();
  }
  // Throws ferry::TimeoutError when the result is not there within `timeout`.
  R get(std::chrono::milliseconds timeout) {
    if (!wait(timeout)) throw TimeoutError("the task did not finish within the timeout");
    return result();
  }
  void wait() {
    detail::wait_until(
        *core_, [this] { return state_->done; }, std::nullopt);
  }
  bool wait(std::chrono::milliseconds timeout) {
    return detail::wait_until(
        *core_, [this] { return state_->done; }, detail::Clock::now() + timeout);
  }
  bool ready() { return wait(std::chrono::milliseconds(0)); }
  // Whether it finished without failing; throws ferry::Error if not ready.
  bool successful() {
    if (!ready()) throw Error("successful(): the task has not finished");
    try {
      result();
      return true;
    } catch (const TaskError&) {
      return false;
    }
  }

 private:
  friend class Pool;
  AsyncResult(std::shared_ptr<detail::PoolCore> core, std::shared_ptr<detail::TaskState> state)
      : core_(std::move(core)), state_(std::move(state)) {}
  R result() {
    if (state_->error) throw *state_->error;
    return detail::ChunkResults<R>(state_->results).next();
  }
  std::shared_ptr<detail::PoolCore> core_;
  std::shared_ptr<detail::TaskState> state_;
};

// Results in the order they finish, computed lazily: at most a few chunks per
// worker are in flight, so memory stays bounded however long the input is.
template <class R, class Range, class Arguments>
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

  ResultStream(std::shared_ptr<detail::PoolCore> core, detail::Invoker invoker,
               std::uintptr_t function, Range&& range, std::size_t chunksize)
      : core_(std::move(core)),
        invoker_(invoker),
        function_(function),
        range_(std::forward<Range>(range)),
        input_(std::ranges::begin(range_)),
        chunksize_(chunksize),
        max_in_flight_(static_cast<std::size_t>(detail::process_count(*core_)) * 2),
        completions_(std::make_shared<std::deque<std::shared_ptr<detail::TaskState>>>()) {}

 private:
  std::optional<R> next() {
    for (;;) {
      // Each result is self-delimiting: a chunk is done when its bytes are.
      if (results_ && !results_->done()) return results_->next();
      fill();
      if (in_flight_ == 0) return std::nullopt;
      // The pool appends to completions_ under its lock: take from it under the lock too.
      detail::wait_until(
          *core_,
          [this] {
            if (completions_->empty()) return false;
            current_chunk_ = completions_->front();
            completions_->pop_front();
            return true;
          },
          std::nullopt);
      --in_flight_;
      if (current_chunk_->error) throw *current_chunk_->error;
      results_.emplace(current_chunk_->results);
    }
  }

  void fill() {
    while (in_flight_ < max_in_flight_ && input_ != std::ranges::end(range_)) {
      detail::submit(*core_, invoker_, function_,
                     detail::encode_chunk<Arguments>(input_, std::ranges::end(range_), chunksize_),
                     completions_);
      ++in_flight_;
    }
  }

  std::shared_ptr<detail::PoolCore> core_;
  detail::Invoker invoker_;
  std::uintptr_t function_;
  Range range_;
  std::ranges::iterator_t<std::remove_reference_t<Range>> input_;  // the next to submit
  std::size_t chunksize_;
  std::size_t max_in_flight_;
  std::size_t in_flight_ = 0;
  std::shared_ptr<std::deque<std::shared_ptr<detail::TaskState>>> completions_;
  std::shared_ptr<detail::TaskState> current_chunk_;  // results_ reads its bytes
  std::optional<detail::ChunkResults<R>> results_;
};

class Pool {
 public:
  explicit Pool(PoolOptions options = {}) : core_(detail::make_pool_core(std::move(options))) {}
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  ~Pool() {
    if (core_) detail::terminate(*core_);
  }
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept = default;

  // Runs function(args...) in a worker (Python's apply_async).
  template <class F, class... A>
  auto submit(F function, A&&... args) {
    auto pointer = detail::to_function_pointer(function);
    using Traits = detail::FunctionPointer<decltype(pointer)>;
    using R = typename Traits::result;
    using Arguments = typename Traits::arguments;
    std::string bytes;
    Writer writer(bytes);
    writer.size(1);  // a chunk of one
    ferry::encode(writer, Arguments(std::forward<A>(args)...));
    auto state = detail::submit(*core_, &detail::invoke_chunk<R, Arguments>,
                                reinterpret_cast<std::uintptr_t>(pointer), std::move(bytes));
    return AsyncResult<R>(core_, std::move(state));
  }

  // function(item) for every item, results in input order. Throws the first
  // failure (in input order) as ferry::TaskError. chunksize 0 picks one like
  // Python: about four chunks per worker.
  template <class F, std::ranges::input_range Range>
  auto map(F function, Range&& items, std::size_t chunksize = 0) {
    return map_impl(function, std::forward<Range>(items), chunksize);
  }

  // function(std::get<0>(item), std::get<1>(item), ...) for every tuple item.
  template <class F, std::ranges::input_range Range>
  auto starmap(F function, Range&& items, std::size_t chunksize = 0) {
    return map_impl(function, std::forward<Range>(items), chunksize);  // tuples convert
  }

  // function(item) for every item, results as they finish; lazily consumes
  // `items` (which must outlive the loop when passed by reference).
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F function, Range&& items, std::size_t chunksize = 1) {
    auto pointer = detail::to_function_pointer(function);
    using Traits = detail::FunctionPointer<decltype(pointer)>;
    using R = typename Traits::result;
    static_assert(!std::is_void_v<R>, "imap_unordered needs a function that returns a value");
    using Arguments = typename Traits::arguments;
    return ResultStream<R, Range, Arguments>(
        core_, &detail::invoke_chunk<R, Arguments>, reinterpret_cast<std::uintptr_t>(pointer),
        std::forward<Range>(items), chunksize == 0 ? 1 : chunksize);
  }

  // Waits until one of `handles` (all from this pool) is ready; returns its
  // index. With the ones already handled removed, it yields results as they
  // finish.
  template <class R>
  std::size_t wait_any(const std::vector<AsyncResult<R>>& handles) {
    if (handles.empty()) throw Error("wait_any needs at least one handle");
    std::size_t ready = 0;
    detail::wait_until(
        *core_,
        [&] {
          for (std::size_t i = 0; i < handles.size(); ++i)
            if (handles[i].state_->done) return (ready = i), true;
          return false;
        },
        std::nullopt);
    return ready;
  }

  void close() { detail::close(*core_); }
  void join() { detail::join(*core_); }
  void terminate() { detail::terminate(*core_); }
  int processes() const { return detail::process_count(*core_); }
  std::vector<pid_t> worker_pids() { return detail::worker_pids(*core_); }

 private:
  template <class F, class Range>
  auto map_impl(F function, Range&& items, std::size_t chunksize) {
    auto pointer = detail::to_function_pointer(function);
    using Traits = detail::FunctionPointer<decltype(pointer)>;
    using R = typename Traits::result;
    using Arguments = typename Traits::arguments;
    std::size_t total = 0;
    if constexpr (std::ranges::sized_range<Range>) total = std::ranges::size(items);
    if (chunksize == 0) {
      std::size_t parts = static_cast<std::size_t>(processes()) * 4;
      chunksize = total == 0 ? 1 : (total + parts - 1) / parts;
    }
    // Every chunk reports to one list, so waiting for all is a size check.
    auto done = std::make_shared<std::deque<std::shared_ptr<detail::TaskState>>>();
    std::vector<std::shared_ptr<detail::TaskState>> states;
    auto invoker = &detail::invoke_chunk<R, Arguments>;
    for (auto it = std::ranges::begin(items); it != std::ranges::end(items);)
      states.push_back(detail::submit(
          *core_, invoker, reinterpret_cast<std::uintptr_t>(pointer),
          detail::encode_chunk<Arguments>(it, std::ranges::end(items), chunksize), done));
    detail::wait_until(
        *core_, [&] { return done->size() == states.size(); }, std::nullopt);
    if constexpr (std::is_void_v<R>) {
      for (auto& state : states) {
        if (state->error) throw *state->error;
        for (detail::ChunkResults<R> results(state->results); !results.done();) results.next();
      }
    } else {
      std::vector<R> results;
      results.reserve(total);
      for (auto& state : states) {
        if (state->error) throw *state->error;
        detail::ChunkResults<R>(state->results).append_to(results);
      }
      return results;
    }
  }

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace ferry
