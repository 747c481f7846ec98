// ferry::Queue<T> — a queue between processes.
//
// Create it before starting the processes that use it (they inherit it);
// then any of them may put() and any may get(). Each item is one message of
// a Unix datagram socket pair, so concurrent puts and gets never tear an
// item, and the kernel holds the items in between: there is no server
// process and no lock. Items are encoded with ferry/codec.hpp.
//
//   ferry::Queue<std::string> queue;
//   ferry::Process writer([&] { queue.put("hello"); });
//   writer.start();
//   auto item = queue.get(std::chrono::seconds(1));  // nullopt if none came
//
// put() blocks while the queue holds as many bytes as the system allows
// (a few MiB); an item larger than max_item_bytes() is refused with
// ferry::Error.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "ferry/codec.hpp"

namespace ferry {

namespace detail {
// The untyped channel under Queue<T>.
class MessageChannel {
 public:
  MessageChannel();
  ~MessageChannel();
  MessageChannel(const MessageChannel&) = delete;
  MessageChannel& operator=(const MessageChannel&) = delete;
  void send(std::string_view message);
  // nullopt when nothing arrived within `timeout` (nullopt timeout: wait forever).
  std::optional<std::string> receive(std::optional<std::chrono::milliseconds> timeout);
  std::size_t max_message_bytes() const { return max_bytes_; }

 private:
  int send_fd_ = -1;
  int receive_fd_ = -1;
  std::size_t max_bytes_ = 0;
};
}  // namespace detail

template <class T>
class Queue {
 public:
  void put(const T& item) { channel_.send(to_bytes(item)); }

  // Waits for an item.
  T get() { return from_bytes<T>(*channel_.receive(std::nullopt)); }

  // Waits at most `timeout`; nullopt when the queue stayed empty.
  std::optional<T> get(std::chrono::milliseconds timeout) {
    auto message = channel_.receive(timeout);
    if (!message) return std::nullopt;
    return from_bytes<T>(*message);
  }

  std::optional<T> try_get() { return get(std::chrono::milliseconds(0)); }

  std::size_t max_item_bytes() const { return channel_.max_message_bytes(); }

 private:
  detail::MessageChannel channel_;
};

}  // namespace ferry
