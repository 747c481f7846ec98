// ferry::Manager — a process that holds dicts, lists and queues for others.
//
// Python's multiprocessing.Manager(): a server process keeps containers by
// name, and other processes use them through proxies, each call a round
// trip to the server. Start it before the processes that use it (they
// inherit it), or connect to it by its address from any process of the same
// user on this machine:
//
//   ferry::Manager manager;                                    // its server starts
//   auto scores = manager.dict<std::string, int>("scores");
//   auto log = manager.list<std::string>("log");
//   ferry::Process child([&] { scores.set("child", 1); log.append("hello"); });
//   child.start();
//   child.join();
//   for (auto& [name, score] : scores.items()) ...
//
//   auto same = ferry::Manager::connect(address);              // another program
//   auto tasks = same.queue<int>("tasks");
//
// A container is made on first use of its name, with the kind and element
// types of that use; using the name as another kind or with other types is
// refused with ferry::Error. Keys and values cross through ferry/codec.hpp.
// Each call is atomic; a read-modify-write (`d.set(k, d.get(k, 0) + 1)`)
// is not: guard it with a ferry::Lock, as in Python.
//
// Choose by need: Value and Array live in shared memory and change in
// nanoseconds; a Manager's containers grow, hold any codec type and cost a
// round trip (microseconds) per call. The server dies with the Manager
// object (or with the process that made it): what it held is gone. Only
// processes of the user who started it may connect (the server checks the
// peer's credentials).
//
// Other machines: a Manager listens on this machine only. Python's remote
// managers (a queue of tasks on one host, workers on others, an authkey)
// are what `ferry server` with ferry::Client and ferry::Worker do, durably
// and over authenticated HTTP: see examples/task_manager.cpp and the README.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "ferry/codec.hpp"
#include "ferry/detail/shared_region.hpp"
#include "ferry/detail/timeouts.hpp"
#include "ferry/error.hpp"
#include "ferry/pipe.hpp"
#include "ferry/process.hpp"

namespace ferry {

namespace detail {

enum class ManagerOp : std::uint8_t {
  dict_set = 1,
  dict_get,
  dict_erase,
  dict_contains,
  dict_size,
  dict_clear,
  dict_items,
  list_append,
  list_get,
  list_set,
  list_pop,
  list_size,
  list_clear,
  list_items,
  queue_put,
  queue_get,
  queue_size,
};

struct ManagerRequest {
  ManagerOp op{};
  std::string container;
  std::uint64_t types = 0;  // which element types the caller uses
  std::string key;
  std::string value;
  std::int64_t number = 0;      // an index
  std::int64_t timeout_ms = 0;  // queue_get: < 0 waits forever
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(op, container, types, key, value, number, timeout_ms);
  }
};

struct ManagerReply {
  enum Status : std::uint8_t { ok = 0, missing = 1, error = 2 };
  std::uint8_t status = ok;
  std::string value;  // one value; an error's message
  std::vector<std::string> keys;
  std::vector<std::string> values;
  std::int64_t number = 0;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(status, value, keys, values, number);
  }
};

// One process's connection to a manager's server: calls from this process
// (any thread) go through it, one at a time; a forked child makes its own
// on its first call.
class ManagerConnection {
 public:
  explicit ManagerConnection(std::string address) : address_(std::move(address)) {}
  ManagerReply call(const ManagerRequest& request);
  const std::string& address() const { return address_; }

 private:
  std::string address_;
  std::mutex mutex_;
  ByteConnection socket_;
  pid_t owner_ = 0;  // the process that opened socket_ (a child opens its own)
};

template <class... Types>
std::uint64_t hash_types() {
  std::uint64_t hash = 0;
  ((hash = hash * 31 + hash_type_name(typeid(Types).name())), ...);
  return hash;
}

// The base of the proxies: a container's name and the call to its server.
class Proxy {
 public:
  const std::string& name() const { return name_; }

 protected:
  Proxy(std::shared_ptr<ManagerConnection> link, std::string name, std::uint64_t types)
      : link_(std::move(link)), name_(std::move(name)), types_(types) {}
  ManagerReply call(ManagerOp op, std::string key = {}, std::string value = {},
                    std::int64_t number = 0, std::int64_t timeout_ms = 0) const {
    return link_->call({op, name_, types_, std::move(key), std::move(value), number, timeout_ms});
  }

 private:
  std::shared_ptr<ManagerConnection> link_;
  std::string name_;
  std::uint64_t types_;
};

}  // namespace detail

// Python's DictProxy: manager.dict<K, V>(name).
template <class K, class V>
class DictProxy : public detail::Proxy {
 public:
  void set(const K& key, const V& value) {
    call(detail::ManagerOp::dict_set, to_bytes(key), to_bytes(value));
  }
  std::optional<V> get(const K& key) {
    auto reply = call(detail::ManagerOp::dict_get, to_bytes(key));
    if (reply.status == detail::ManagerReply::missing) return std::nullopt;
    return from_bytes<V>(reply.value);
  }
  V get(const K& key, const V& otherwise) { return get(key).value_or(otherwise); }
  // Whether it was there.
  bool erase(const K& key) { return call(detail::ManagerOp::dict_erase, to_bytes(key)).number; }
  bool contains(const K& key) {
    return call(detail::ManagerOp::dict_contains, to_bytes(key)).number;
  }
  std::size_t size() { return static_cast<std::size_t>(call(detail::ManagerOp::dict_size).number); }
  void clear() { call(detail::ManagerOp::dict_clear); }
  // A copy of every entry: in key order when keys have a <, else in an
  // order that stays the same while the keys do.
  std::vector<std::pair<K, V>> items() {
    auto reply = call(detail::ManagerOp::dict_items);
    std::vector<std::pair<K, V>> entries;
    entries.reserve(reply.keys.size());
    for (std::size_t i = 0; i < reply.keys.size(); ++i)
      entries.emplace_back(from_bytes<K>(reply.keys[i]), from_bytes<V>(reply.values[i]));
    if constexpr (std::totally_ordered<K>)
      std::sort(entries.begin(), entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
    return entries;
  }

 private:
  friend class Manager;
  using Proxy::Proxy;
};

// Python's ListProxy: manager.list<T>(name). Indices may be negative,
// counting from the end, as in Python; out of range is ferry::Error.
template <class T>
class ListProxy : public detail::Proxy {
 public:
  void append(const T& value) { call(detail::ManagerOp::list_append, {}, to_bytes(value)); }
  T get(std::int64_t index) {
    return from_bytes<T>(call(detail::ManagerOp::list_get, {}, {}, index).value);
  }
  void set(std::int64_t index, const T& value) {
    call(detail::ManagerOp::list_set, {}, to_bytes(value), index);
  }
  // Removes and returns the element at `index` (the last by default).
  T pop(std::int64_t index = -1) {
    return from_bytes<T>(call(detail::ManagerOp::list_pop, {}, {}, index).value);
  }
  std::size_t size() { return static_cast<std::size_t>(call(detail::ManagerOp::list_size).number); }
  void clear() { call(detail::ManagerOp::list_clear); }
  std::vector<T> items() {
    auto reply = call(detail::ManagerOp::list_items);
    std::vector<T> values;
    values.reserve(reply.values.size());
    for (auto& value : reply.values) values.push_back(from_bytes<T>(value));
    return values;
  }

 private:
  friend class Manager;
  using Proxy::Proxy;
};

// Python's manager.Queue(): put and get from any process.
template <class T>
class QueueProxy : public detail::Proxy {
 public:
  void put(const T& value) { call(detail::ManagerOp::queue_put, {}, to_bytes(value)); }
  T get() { return from_bytes<T>(call(detail::ManagerOp::queue_get, {}, {}, 0, -1).value); }
  // nullopt when the queue stayed empty for `timeout`.
  template <class Rep, class Period>
  std::optional<T> get(const std::chrono::duration<Rep, Period>& timeout) {
    auto milliseconds = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    auto reply = call(detail::ManagerOp::queue_get, {}, {}, 0,
                      std::max<std::int64_t>(0, static_cast<std::int64_t>(milliseconds)));
    if (reply.status == detail::ManagerReply::missing) return std::nullopt;
    return from_bytes<T>(reply.value);
  }
  std::size_t size() {
    return static_cast<std::size_t>(call(detail::ManagerOp::queue_size).number);
  }

 private:
  friend class Manager;
  using Proxy::Proxy;
};

class Manager {
 public:
  // Starts the server process.
  Manager();
  // A manager another process started (its address()).
  static Manager connect(const std::string& address);

  Manager(Manager&&) noexcept = default;
  Manager& operator=(Manager&&) noexcept = default;
  // Stops the server this object started; its containers are gone.
  ~Manager() = default;

  // Where processes connect: "@" and a name in the abstract Unix socket
  // namespace (nothing in the file system to clean up).
  const std::string& address() const { return link_->address(); }

  template <class K, class V>
  DictProxy<K, V> dict(const std::string& name) {
    return DictProxy<K, V>(link_, name, detail::hash_types<K, V>());
  }
  template <class T>
  ListProxy<T> list(const std::string& name) {
    return ListProxy<T>(link_, name, detail::hash_types<T>());
  }
  template <class T>
  QueueProxy<T> queue(const std::string& name) {
    return QueueProxy<T>(link_, name, detail::hash_types<T>());
  }

  // Stops the server now (Python's shutdown()); proxies then throw ferry::Error.
  void shutdown();

 private:
  explicit Manager(std::shared_ptr<detail::ManagerConnection> link) : link_(std::move(link)) {}
  std::shared_ptr<detail::ManagerConnection> link_;
  std::unique_ptr<Process> server_;  // when this object started it
};

}  // namespace ferry
