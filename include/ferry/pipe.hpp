// ferry::Pipe<T> — two connected ends for two processes to talk.
//
// Python's multiprocessing.Pipe: make it before starting the process that
// uses the other end (it inherits it), then send values one way or both:
//
//   auto [parent_end, child_end] = ferry::Pipe<std::string>();
//   ferry::Process child([&] {
//     child_end.send("hello");
//     std::string reply = child_end.recv();
//   });
//   child.start();
//   child_end.close();                     // this process uses the other end
//   std::string greeting = parent_end.recv();
//   parent_end.send("hi");
//
// Pipe<T>() is duplex: each end sends and receives. Pipe<T>(false) is one
// way, as in Python: the first end only receives, the second only sends.
// Values cross through ferry/codec.hpp, so T is anything a Queue carries.
//
// The end of the conversation is an exception, never a hang: once the other
// end is closed in every process that had it (closed, or its processes
// exited), recv() throws ferry::EOFError after the messages already sent,
// and send() throws it at once. So, as in Python, close in each process the
// end it does not use: a copy left open in a forked process keeps the pipe
// alive. Ends are closed in exec'd programs.
//
// A message is one or more packets of a Unix socket pair (SOCK_SEQPACKET):
// up to 64 KiB a message is one packet, sent whole, so several processes
// may send on one end at once; a larger one is several packets, so, as in
// Python, an end then has one sender and one receiver at a time.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ferry/codec.hpp"
#include "ferry/detail/timeouts.hpp"
#include "ferry/error.hpp"

namespace ferry {

namespace detail {
// The untyped end under Connection<T>.
class ByteConnection {
 public:
  ByteConnection() = default;
  ByteConnection(int fd, bool readable, bool writable);
  ByteConnection(ByteConnection&& other) noexcept;
  ByteConnection& operator=(ByteConnection&& other) noexcept;
  ~ByteConnection();

  void send(std::string_view message);
  // nullopt when nothing came before the deadline (nullopt: wait forever).
  std::optional<std::string> receive(std::optional<Clock::time_point> deadline);
  // Whether receive() would return at once (a message, or the end).
  bool poll(std::optional<Clock::time_point> deadline);
  void close();
  bool closed() const { return fd_ < 0; }
  bool readable() const { return readable_; }
  bool writable() const { return writable_; }
  int fd() const { return fd_; }

 private:
  void check(bool receiving) const;
  int fd_ = -1;
  bool readable_ = false;
  bool writable_ = false;
  std::string buffer_;  // one packet
};
// Two connected ends; the first only reads and the second only writes
// unless `duplex`.
std::pair<ByteConnection, ByteConnection> connected_pair(bool duplex);
}  // namespace detail

template <class T>
class Connection {
 public:
  Connection() = default;  // closed
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;

  // Throws ferry::EOFError when no process has the other end open.
  void send(const T& value) { end_.send(to_bytes(value)); }

  // Waits for a value; ferry::EOFError once the other end is closed everywhere
  // and every value sent was received.
  T recv() { return from_bytes<T>(*end_.receive(std::nullopt)); }
  // Waits at most `timeout`: nullopt when nothing came.
  template <class Rep, class Period>
  std::optional<T> recv(const std::chrono::duration<Rep, Period>& timeout) {
    auto message = end_.receive(detail::deadline_in(timeout));
    if (!message) return std::nullopt;
    return from_bytes<T>(*message);
  }

  // Whether recv() would return at once: a value is there, or the end.
  bool poll() { return end_.poll(detail::Clock::now()); }
  template <class Rep, class Period>
  bool poll(const std::chrono::duration<Rep, Period>& timeout) {
    return end_.poll(detail::deadline_in(timeout));
  }

  // Closes this end in this process; other processes' copies stay open.
  void close() { end_.close(); }
  bool closed() const { return end_.closed(); }
  bool readable() const { return end_.readable(); }
  bool writable() const { return end_.writable(); }
  int fileno() const { return end_.fd(); }

 private:
  template <class U>
  friend class Pipe;
  explicit Connection(detail::ByteConnection end) : end_(std::move(end)) {}
  detail::ByteConnection end_;
};

// Two connected ends: `auto [a, b] = ferry::Pipe<T>();`.
template <class T>
class Pipe : public std::pair<Connection<T>, Connection<T>> {
 public:
  explicit Pipe(bool duplex = true) : Pipe(detail::connected_pair(duplex)) {}

 private:
  explicit Pipe(std::pair<detail::ByteConnection, detail::ByteConnection> ends)
      : std::pair<Connection<T>, Connection<T>>(Connection<T>(std::move(ends.first)),
                                                Connection<T>(std::move(ends.second))) {}
};

}  // namespace ferry
