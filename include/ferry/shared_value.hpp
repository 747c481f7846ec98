// ferry::Value<T> and ferry::Array<T> — values and arrays in shared memory.
//
// Python's multiprocessing.Value and Array (sharedctypes): memory that every
// process started after it sees and changes, for any trivially copyable T
// (numbers, enums, structs of them, std::array of them). Each comes with a
// Lock (get_lock(), as Python's synchronized wrappers do) and, for types
// the processor updates atomically, std::atomic_ref access without one:
//
//   ferry::Value<long> counter(0);
//   ferry::Process child([&] {
//     std::lock_guard guard(counter.get_lock());
//     counter.value() += 1;                 // Python: with v.get_lock(): v.value += 1
//   });
//   counter.atomic().fetch_add(1);          // or, for a value kept lock-free, this
//
//   ferry::Array<double> samples(1000);     // zeros; samples[i] is a double&
//   auto shared = ferry::Array<int>::create("scores", {1, 2, 3});  // by name in /dev/shm
//
// Three ways in, pick one per value and keep to it:
//   - value() / operator[] are the memory itself: fastest, and correct when
//     every process that changes it holds get_lock() (or nothing else
//     touches it). Unguarded `v.value() += 1` from many processes loses
//     updates: that is the classic race.
//   - load() / store() take the lock for one read or write, as Python's
//     .value does: never torn, whatever the size of T.
//   - atomic() (atomic(i) for an Array) is a std::atomic_ref, for types the
//     processor updates atomically (integers, enums, structs of up to 8
//     bytes): no lock.
//
// Types that cannot live in shared memory (std::string, std::vector: they
// point into one process's heap) are refused at compile time. A raw pointer
// inside T compiles but points into one process only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "ferry/detail/shared_region.hpp"
#include "ferry/error.hpp"
#include "ferry/lock.hpp"

namespace ferry {

namespace detail {

template <class T>
constexpr void check_shareable() {
  static_assert(std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>,
                "ferry::Value<T> and ferry::Array<T>: T must be trivially copyable (and not a "
                "pointer) to live in shared memory; a std::string or a std::vector points into "
                "one process's heap: use a std::array of char, a struct of plain fields, or a "
                "ferry::Queue");
}

template <class T>
constexpr void check_atomic() {
  static_assert(std::atomic_ref<T>::is_always_lock_free,
                "ferry::Value<T>::atomic(): T is not lock-free atomic on this machine, and only "
                "lock-free atomics work between processes: use get_lock() instead");
}

// The lock first, then the elements.
template <class T>
ObjectSpec values_spec(SharedKind kind, std::size_t count, std::size_t lock_size) {
  return {.kind = kind,
          .payload_size = lock_size,
          .payload_align = 64,
          .element_size = sizeof(T),
          .element_align = std::max(alignof(T), std::atomic_ref<T>::required_alignment),
          .element_count = count,
          .type_hash = hash_type_name(typeid(T).name())};
}

}  // namespace detail

template <class T>
class Value : public detail::SharedHandle {
 public:
  explicit Value(const T& initial = T{}) : Value(detail::OpenMode::anonymous, {}, &initial) {}
  // A new value named `name` in /dev/shm; its creator's handle removes the name.
  static Value create(const std::string& name, const T& initial = T{}) {
    return Value(detail::OpenMode::create, name, &initial);
  }
  // The value another process created; refused if it holds another type.
  static Value attach(const std::string& name) {
    return Value(detail::OpenMode::attach, name, nullptr);
  }

  Value(Value&&) noexcept = default;
  Value& operator=(Value&&) noexcept = default;

  // One read or write under the lock.
  T load() {
    std::lock_guard guard(lock_);
    return *value_;
  }
  void store(const T& value) {
    std::lock_guard guard(lock_);
    *value_ = value;
  }
  // The shared memory itself: under get_lock(), or with nothing else touching it.
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  Lock& get_lock() { return lock_; }
  std::atomic_ref<T> atomic() {
    detail::check_atomic<T>();
    return std::atomic_ref<T>(*value_);
  }

 private:
  Value(detail::OpenMode mode, const std::string& name, const T* initial) {
    detail::check_shareable<T>();
    auto object = detail::open_object(
        mode, name, detail::values_spec<T>(detail::SharedKind::value, 1, Lock::state_size()),
        [&](const detail::SharedObject& fresh) {
          Lock::initialize_state(fresh.payload);
          std::memcpy(fresh.elements, initial, sizeof(T));
        });
    lock_ = Lock(object.region, object.payload);
    value_ = reinterpret_cast<T*>(object.elements);
    region_ = std::move(object.region);
  }
  Lock lock_{detail::SharedRegion{}, nullptr};
  T* value_ = nullptr;
};

template <class T>
class Array : public detail::SharedHandle {
 public:
  // `size` elements, each `fill`.
  explicit Array(std::size_t size, const T& fill = T{})
      : Array(detail::OpenMode::anonymous, {}, size, &fill, {}) {}
  Array(std::initializer_list<T> values) : Array(std::span<const T>(values)) {}
  explicit Array(std::span<const T> values)
      : Array(detail::OpenMode::anonymous, {}, values.size(), nullptr, values) {}
  static Array create(const std::string& name, std::size_t size, const T& fill = T{}) {
    return Array(detail::OpenMode::create, name, size, &fill, {});
  }
  static Array create(const std::string& name, std::initializer_list<T> values) {
    return create(name, std::span<const T>(values));
  }
  static Array create(const std::string& name, std::span<const T> values) {
    return Array(detail::OpenMode::create, name, values.size(), nullptr, values);
  }
  // The array another process created, with the size it has.
  static Array attach(const std::string& name) {
    return Array(detail::OpenMode::attach, name, 0, nullptr, {});
  }

  Array(Array&&) noexcept = default;
  Array& operator=(Array&&) noexcept = default;

  std::size_t size() const { return size_; }
  // The shared memory itself: under get_lock(), or with nothing else touching it.
  T& operator[](std::size_t index) { return data_[index]; }
  const T& operator[](std::size_t index) const { return data_[index]; }
  T& at(std::size_t index) {
    if (index >= size_)
      throw Error("index " + std::to_string(index) + " is past the end of an Array of " +
                  std::to_string(size_));
    return data_[index];
  }
  T* data() { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  std::span<T> span() { return {data_, size_}; }

  // Under the lock: one element, or all of them (Python's arr[:]).
  T load(std::size_t index) {
    std::lock_guard guard(lock_);
    return at(index);
  }
  void store(std::size_t index, const T& value) {
    std::lock_guard guard(lock_);
    at(index) = value;
  }
  std::vector<T> to_vector() {
    std::lock_guard guard(lock_);
    return std::vector<T>(data_, data_ + size_);
  }
  // Replaces every element; the sizes must match.
  void assign(std::span<const T> values) {
    if (values.size() != size_)
      throw Error("cannot assign " + std::to_string(values.size()) + " values to an Array of " +
                  std::to_string(size_));
    std::lock_guard guard(lock_);
    if (size_ > 0) std::memcpy(data_, values.data(), size_ * sizeof(T));
  }

  Lock& get_lock() { return lock_; }
  std::atomic_ref<T> atomic(std::size_t index) {
    detail::check_atomic<T>();
    return std::atomic_ref<T>(at(index));
  }

 private:
  Array(detail::OpenMode mode, const std::string& name, std::size_t size, const T* fill,
        std::span<const T> values) {
    detail::check_shareable<T>();
    auto object = detail::open_object(
        mode, name, detail::values_spec<T>(detail::SharedKind::array, size, Lock::state_size()),
        [&](const detail::SharedObject& fresh) {
          Lock::initialize_state(fresh.payload);
          for (std::size_t i = 0; i < size; ++i)
            std::memcpy(fresh.elements + i * sizeof(T), fill ? fill : &values[i], sizeof(T));
        });
    lock_ = Lock(object.region, object.payload);
    data_ = reinterpret_cast<T*>(object.elements);
    size_ = object.element_count;
    region_ = std::move(object.region);
  }
  Lock lock_{detail::SharedRegion{}, nullptr};
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace ferry
