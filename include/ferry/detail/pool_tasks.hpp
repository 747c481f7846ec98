// Internal to ferry/pool.hpp: how a call of a task crosses to a worker
// process and its result comes back. Not an API: it may change at any time.
//
// A task is named by the address of a plain function. The pool sends that
// address with the address of an "invoker", invoke_chunk<Pointer>, made for
// the function's exact type: in the worker, the invoker turns the address
// back into that same type (a round trip through an integer, which is
// exact), decodes the arguments into values it owns and calls the function
// with them. Parameters T, const T& and T&& all bind to such a value.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ferry/codec.hpp"
#include "ferry/error.hpp"

namespace ferry {

struct PoolOptions;

namespace detail {

using Clock = std::chrono::steady_clock;

// Runs one chunk in a worker: decodes `count` argument tuples, calls the
// function on each, and writes the results (see ResultFormat).
using Invoker = void (*)(std::uintptr_t function, std::size_t count, Reader& arguments,
                         Writer& results);

template <class>
inline constexpr bool kAlwaysFalse = false;

// ---------------------------------------------------------------------------
// What a task may be, checked at compile time with one message per mistake.

template <class Pointer>
struct Signature;
template <class R, class... P>
struct Signature<R (*)(P...)> {
  using Pointer = R (*)(P...);
  using Result = std::remove_cv_t<R>;
  using Parameters = std::tuple<P...>;
  using Arguments = std::tuple<std::remove_cvref_t<P>...>;  // as decoded in the worker
  static constexpr std::size_t arity = sizeof...(P);
};
template <class R, class... P>
struct Signature<R (*)(P...) noexcept> : Signature<R (*)(P...)> {
  using Pointer = R (*)(P...) noexcept;
};

// The function pointer type a lambda without captures converts to.
template <class Method>
struct CallOperator {};
template <class C, class R, class... P>
struct CallOperator<R (C::*)(P...) const> {
  using type = R (*)(P...);
};
template <class C, class R, class... P>
struct CallOperator<R (C::*)(P...) const noexcept> {
  using type = R (*)(P...) noexcept;
};
template <class C, class R, class... P>
struct CallOperator<R (C::*)(P...)> {
  using type = R (*)(P...);
};
template <class C, class R, class... P>
struct CallOperator<R (C::*)(P...) noexcept> {
  using type = R (*)(P...) noexcept;
};

template <class F>
constexpr auto task_pointer() {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
    return std::type_identity<F>{};
  } else if constexpr (requires { &F::operator(); }) {
    using Pointer = typename CallOperator<decltype(&F::operator())>::type;
    if constexpr (std::is_convertible_v<F, Pointer>)
      return std::type_identity<Pointer>{};
    else
      return std::type_identity<void>{};
  } else {
    return std::type_identity<void>{};
  }
}
// The plain function pointer a task is called through; void when there is none.
template <class F>
using TaskPointer = typename decltype(task_pointer<F>())::type;

template <class F>
constexpr bool check_callable() {
  if constexpr (!std::is_void_v<TaskPointer<F>>) {
    return true;
  } else if constexpr (requires { &F::operator(); }) {
    static_assert(kAlwaysFalse<F>,
                  "ferry::Pool: a task must be a plain function or a lambda without captures "
                  "(not a capturing lambda, a std::function or another object): workers are "
                  "separate processes, which know a function by its address only");
    return false;
  } else {
    static_assert(kAlwaysFalse<F>,
                  "ferry::Pool: a task must be a plain function or a lambda with concrete "
                  "parameter types (not auto): a template has no address until instantiated");
    return false;
  }
}

template <class P>
constexpr bool check_parameter() {
  using Value = std::remove_cvref_t<P>;
  if constexpr (std::is_lvalue_reference_v<P> && !std::is_const_v<std::remove_reference_t<P>>) {
    static_assert(kAlwaysFalse<P>,
                  "ferry::Pool: a task cannot take a parameter by non-const reference (T&): it "
                  "would change a copy in the worker process, never the caller's object; take T "
                  "or const T&, and return what the caller needs");
    return false;
  } else if constexpr (std::is_pointer_v<Value> || std::ranges::view<Value>) {
    static_assert(kAlwaysFalse<P>,
                  "ferry::Pool: a task cannot take a pointer or a view (const char*, "
                  "std::string_view, std::span): it would point into another process's memory; "
                  "take an owning type (std::string, std::vector)");
    return false;
  } else if constexpr (!Transferable<Value>) {
    static_assert(kAlwaysFalse<P>,
                  "ferry::Pool: a task parameter's type cannot cross a process boundary; give it "
                  "a ferry_fields member or a ferry::Codec specialization (see ferry/codec.hpp)");
    return false;
  } else {
    return true;
  }
}

template <class R>
constexpr bool check_result() {
  if constexpr (std::is_void_v<R>) {
    return true;
  } else if constexpr (std::is_reference_v<R> || std::is_pointer_v<R> || std::ranges::view<R>) {
    static_assert(kAlwaysFalse<R>,
                  "ferry::Pool: a task must return a value (or nothing), not a reference, a "
                  "pointer or a view: its result comes from another process");
    return false;
  } else if constexpr (!Transferable<R>) {
    static_assert(kAlwaysFalse<R>,
                  "ferry::Pool: a task's result type cannot cross a process boundary; give it a "
                  "ferry_fields member or a ferry::Codec specialization (see ferry/codec.hpp)");
    return false;
  } else {
    return true;
  }
}

template <class Parameters>
struct ParameterCheck;
template <class... P>
struct ParameterCheck<std::tuple<P...>> {
  static constexpr bool value = (check_parameter<P>() && ...);
};

// Whether F can be a task; each way it cannot is a compile error of its own.
template <class F>
constexpr bool check_task() {
  if constexpr (!check_callable<F>()) {
    return false;
  } else {
    using Task = Signature<TaskPointer<F>>;
    return check_result<typename Task::Result>() &&
           ParameterCheck<typename Task::Parameters>::value;
  }
}

// Whether arguments A... fit the task's parameters, for submit(). The
// parameter and argument types appear in the compiler's note about this
// template, under the message.
template <class Parameters, class... A>
struct ArgumentCheck;
template <class... P, class... A>
struct ArgumentCheck<std::tuple<P...>, A...> {
  static constexpr bool check() {
    if constexpr (sizeof...(P) != sizeof...(A)) {
      static_assert(sizeof...(P) == sizeof...(A),
                    "ferry::Pool::submit: the number of arguments differs from the number of the "
                    "task's parameters (the instantiation above names them: P the parameters, A "
                    "the arguments)");
      return false;
    } else if constexpr (!(std::is_convertible_v<A&&, std::remove_cvref_t<P>> && ...)) {
      static_assert((std::is_convertible_v<A&&, std::remove_cvref_t<P>> && ...),
                    "ferry::Pool::submit: an argument does not convert to the type of the "
                    "task's parameter in its place (the instantiation above names them: P the "
                    "parameters, A the arguments)");
      return false;
    } else {
      return true;
    }
  }
};

// Whether an item of a map's input fits the task: its one parameter, or for
// starmap its parameters, one per element of a tuple-like item.
template <class Parameters, class Item, bool kStar>
struct ItemCheck;
template <class... P, class Item>
struct ItemCheck<std::tuple<P...>, Item, false> {
  static constexpr bool check() {
    if constexpr (sizeof...(P) != 1) {
      static_assert(sizeof...(P) == 1,
                    "ferry::Pool::map: the task must take exactly one parameter (starmap calls a "
                    "task of several parameters with the elements of each item)");
      return false;
    } else if constexpr (!(std::is_convertible_v<Item, std::remove_cvref_t<P>> && ...)) {
      static_assert(kAlwaysFalse<Item>,
                    "ferry::Pool::map: the input's items do not convert to the task's parameter "
                    "type (the instantiation above names them: P the parameter, Item the item)");
      return false;
    } else {
      return true;
    }
  }
};
template <class... P, class Item>
struct ItemCheck<std::tuple<P...>, Item, true> {
  template <std::size_t... I>
  static constexpr bool elements_convert(std::index_sequence<I...>) {
    return (std::is_convertible_v<decltype(std::get<I>(std::declval<Item>())),
                                  std::remove_cvref_t<P>> &&
            ...);
  }
  static constexpr bool check() {
    using Tuple = std::remove_cvref_t<Item>;
    if constexpr (!requires { std::tuple_size<Tuple>::value; }) {
      static_assert(kAlwaysFalse<Item>,
                    "ferry::Pool::starmap: each item must be a tuple or a pair of the task's "
                    "arguments");
      return false;
    } else if constexpr (std::tuple_size_v<Tuple> != sizeof...(P)) {
      static_assert(std::tuple_size_v<Tuple> == sizeof...(P),
                    "ferry::Pool::starmap: an item's number of elements differs from the number "
                    "of the task's parameters (the instantiation above names them: P the "
                    "parameters, Item the item)");
      return false;
    } else if constexpr (!elements_convert(std::index_sequence_for<P...>{})) {
      static_assert(kAlwaysFalse<Item>,
                    "ferry::Pool::starmap: an item's element does not convert to the type of the "
                    "task's parameter in its place (the instantiation above names them: P the "
                    "parameters, Item the item)");
      return false;
    } else {
      return true;
    }
  }
};

// ---------------------------------------------------------------------------
// Arguments, encoded in the caller.

// Encodes an argument as the parameter's type: as it is when it already has
// that type (no copy), else converted once (a string literal to std::string).
template <class P, class A>
void encode_argument(Writer& writer, A&& argument) {
  using Value = std::remove_cvref_t<P>;
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, Value>)
    ferry::encode(writer, argument);
  else
    ferry::encode(writer, static_cast<Value>(std::forward<A>(argument)));
}

template <class Parameters, std::size_t... I, class... A>
void encode_arguments(Writer& writer, std::index_sequence<I...>, A&&... arguments) {
  (encode_argument<std::tuple_element_t<I, Parameters>>(writer, std::forward<A>(arguments)), ...);
}

template <class Parameters, class Item, std::size_t... I>
void encode_elements(Writer& writer, Item&& item, std::index_sequence<I...>) {
  (encode_argument<std::tuple_element_t<I, Parameters>>(writer, std::get<I>(item)), ...);
}

// Arithmetic types and enums encode as their raw bytes, so runs of them move
// as one copy.
template <class T>
inline constexpr bool kRaw = std::is_arithmetic_v<T> || std::is_enum_v<T>;

// The one raw parameter type of a task, when it has exactly one.
template <class Arguments>
struct SingleRaw : std::false_type {};
template <class T>
struct SingleRaw<std::tuple<T>> : std::bool_constant<kRaw<T>> {
  using type = T;
};

// Encodes up to `limit` items of a map's input, advancing `it`; returns how
// many. For map, each item is the one argument; for starmap, a tuple of them.
template <class Task, bool kStar, class Iterator, class Sentinel>
std::size_t encode_items(Writer& writer, Iterator& it, Sentinel end, std::size_t limit) {
  using Parameters = typename Task::Parameters;
  using Arguments = typename Task::Arguments;
  if constexpr (!kStar && SingleRaw<Arguments>::value && std::contiguous_iterator<Iterator> &&
                std::sized_sentinel_for<Sentinel, Iterator> &&
                std::is_same_v<std::iter_value_t<Iterator>, typename SingleRaw<Arguments>::type>) {
    auto count = static_cast<std::size_t>(
        std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(limit), end - it));
    writer.write(std::to_address(it), count * sizeof(*it));  // the same bytes, in one copy
    it += static_cast<std::ptrdiff_t>(count);
    return count;
  } else {
    std::size_t count = 0;
    for (; count < limit && it != end; ++count, ++it) {
      if constexpr (kStar)
        encode_elements<Parameters>(writer, *it, std::make_index_sequence<Task::arity>{});
      else
        encode_argument<std::tuple_element_t<0, Parameters>>(writer, *it);
    }
    return count;
  }
}

// ---------------------------------------------------------------------------
// Results, written in the worker and read in the caller.

// A chunk's results start with their format.
enum ResultFormat : std::uint8_t {
  kEachItem = 1,  // per item: 1 and the result, or 0 and the error message
  kBulk = 2,      // every item succeeded and is raw: the results' bytes, back to back
};

// Every item of a chunk failed with `message` (the worker could not run it).
inline void write_chunk_failure(Writer& out, std::size_t count, const std::string& message) {
  ferry::encode(out, std::uint8_t{kEachItem});
  for (std::size_t i = 0; i < count; ++i) {
    ferry::encode(out, std::uint8_t{0});
    ferry::encode(out, message);
  }
}

// Runs one chunk in a worker; see Invoker. `Pointer` is the task's exact type.
template <class Pointer>
void invoke_chunk(std::uintptr_t function, std::size_t count, Reader& in, Writer& out) {
  using Task = Signature<Pointer>;
  using R = typename Task::Result;
  using Arguments = typename Task::Arguments;
  // The address was made from a Pointer: converting it back is exact.
  auto call = reinterpret_cast<Pointer>(function);
  auto next_arguments = [&]() -> Arguments {
    if constexpr (SingleRaw<Arguments>::value) {
      typename SingleRaw<Arguments>::type value;
      in.read(&value, sizeof value);
      return Arguments(value);
    } else {
      return ferry::decode<Arguments>(in);
    }
  };
  // The worker owns the decoded values, so they are moved into the call: a
  // parameter T takes one, and const T& or T&& binds to it.
  auto call_next = [&]() -> R { return std::apply(call, next_arguments()); };
  // Runs `body`; returns the message of what it threw, if it threw.
  auto failure_of = [](auto&& body) -> std::optional<std::string> {
    try {
      body();
      return std::nullopt;
    } catch (const std::exception& error) {
      return error.what();
    } catch (...) {
      return "the task threw an exception that is not a std::exception";
    }
  };
  if constexpr (kRaw<R>) {
    // All results first: if none failed, they go back as one block.
    std::unique_ptr<R[]> results(new R[count]());
    std::vector<std::pair<std::size_t, std::string>> errors;
    for (std::size_t i = 0; i < count; ++i)
      if (auto error = failure_of([&] { results[i] = call_next(); }))
        errors.emplace_back(i, std::move(*error));
    if (errors.empty()) {
      out.reserve(1 + count * sizeof(R));
      ferry::encode(out, std::uint8_t{kBulk});
      out.write(results.get(), count * sizeof(R));  // what encoding each would write
      return;
    }
    ferry::encode(out, std::uint8_t{kEachItem});
    auto error = errors.begin();
    for (std::size_t i = 0; i < count; ++i) {
      bool failed = error != errors.end() && error->first == i;
      ferry::encode(out, static_cast<std::uint8_t>(failed ? 0 : 1));
      if (failed)
        ferry::encode(out, (error++)->second);
      else
        ferry::encode(out, results[i]);
    }
  } else {
    ferry::encode(out, std::uint8_t{kEachItem});
    for (std::size_t i = 0; i < count; ++i) {
      std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> result;
      auto error = failure_of([&] {
        if constexpr (std::is_void_v<R>) {
          call_next();
          result.emplace();
        } else {
          result.emplace(call_next());
        }
      });
      ferry::encode(out, static_cast<std::uint8_t>(error ? 0 : 1));
      if (error)
        ferry::encode(out, *error);
      else if constexpr (!std::is_void_v<R>)
        ferry::encode(out, *result);
    }
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
  R next() {
    if (format_ == kEachItem && ferry::decode<std::uint8_t>(reader_) == 0)
      throw TaskError(TaskError::Reason::exception, ferry::decode<std::string>(reader_));
    if constexpr (!std::is_void_v<R>) return ferry::decode<R>(reader_);
  }
  // Appends every remaining result to `out`: one copy for a bulk chunk.
  template <class Vector>
  void append_to(Vector& out) {
    if constexpr (kRaw<R> && !std::is_same_v<R, bool>) {
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

// ---------------------------------------------------------------------------
// What callers wait for. The pool writes these under its lock; a caller
// reads a chunk's results once its batch is finished (the lock orders it).

struct Chunk {
  std::string results;             // as written by the invoker
  std::optional<TaskError> error;  // the whole chunk failed (timeout, worker lost, terminated)
};

// Where finished batches are reported, for as_completed and imap_unordered.
struct CompletionQueue {
  std::deque<std::size_t> finished;  // the indices given with each batch, in finishing order
  int waiting = 0;                   // callers waiting for it
};

// The chunks of one submission: one for submit(), several for a map.
struct Batch {
  explicit Batch(std::size_t chunk_count) : chunks(chunk_count), unfinished(chunk_count) {}
  std::vector<Chunk> chunks;
  std::size_t unfinished;
  int waiting = 0;  // callers waiting for it
  struct Watcher {
    std::weak_ptr<CompletionQueue> queue;
    std::size_t index;
  };
  std::vector<Watcher> watchers;  // told when it finishes
};

// Where a chunk's arguments are in a buffer shared by a batch's chunks.
struct ChunkBounds {
  std::size_t offset = 0;
  std::size_t size = 0;
  std::size_t count = 0;  // items
};

// ---------------------------------------------------------------------------
// The engine: a non-template class that moves bytes (src/pool/pool_core.cpp).

class PoolCore;

std::shared_ptr<PoolCore> make_pool_core(PoolOptions options);
// Queues the chunks of `batch`, chunk i being bounds[i] of `arguments`.
void submit(PoolCore& core, Invoker invoker, std::uintptr_t function, std::shared_ptr<Batch> batch,
            std::shared_ptr<const std::string> arguments, std::span<const ChunkBounds> bounds);
// Waits until `condition` holds (it is evaluated under the pool's lock) or
// `deadline` passes; returns whether it holds. `waiting` counts the callers
// waiting for the object the condition is about, so the pool wakes them.
bool wait_until(PoolCore& core, int& waiting, const std::function<bool()>& condition,
                std::optional<Clock::time_point> deadline);
// Runs `work` under the pool's lock.
void with_lock(PoolCore& core, const std::function<void()>& work);
void close(PoolCore& core);
void join(PoolCore& core);
void terminate(PoolCore& core);
int process_count(const PoolCore& core);
std::vector<pid_t> worker_pids(PoolCore& core);

}  // namespace detail
}  // namespace ferry
