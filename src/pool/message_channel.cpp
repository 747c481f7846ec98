#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "ferry/queue.hpp"

namespace ferry::detail {

MessageChannel::MessageChannel() {
  int fds[2];
  // Datagrams keep every item whole, even with many writers and readers.
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) < 0)
    throw Error(fmt::format("cannot create a queue: {}", std::strerror(errno)));
  send_fd_ = fds[0];
  receive_fd_ = fds[1];
  int wanted = 8 << 20;  // the kernel caps this at net.core.wmem_max
  ::setsockopt(send_fd_, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted);
  int actual = 0;
  socklen_t size = sizeof actual;
  ::getsockopt(send_fd_, SOL_SOCKET, SO_SNDBUF, &actual, &size);
  max_bytes_ = static_cast<std::size_t>(actual) / 2;  // the kernel's figure counts bookkeeping
}

MessageChannel::~MessageChannel() {
  ::close(send_fd_);
  ::close(receive_fd_);
}

void MessageChannel::send(std::string_view message) {
  if (message.size() > max_bytes_)
    throw Error(fmt::format("a queue item of {} bytes is larger than the {} bytes a queue takes",
                            message.size(), max_bytes_));
  for (;;) {
    ssize_t n = ::send(send_fd_, message.data(), message.size(), MSG_NOSIGNAL);
    if (n >= 0) return;
    if (errno != EINTR)
      throw Error(fmt::format("cannot put an item on the queue: {}", std::strerror(errno)));
  }
}

std::optional<std::string> MessageChannel::receive(
    std::optional<std::chrono::milliseconds> timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  for (;;) {
    int wait_ms = -1;
    if (timeout) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<long long>(0, left.count()));
    }
    pollfd watch{receive_fd_, POLLIN, 0};
    int ready = ::poll(&watch, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw Error(fmt::format("cannot wait on the queue: {}", std::strerror(errno)));
    if (ready == 0) return std::nullopt;
    // Into a buffer that fits the largest item: peeking at the size first
    // would race with other readers taking a different item meanwhile.
    thread_local std::unique_ptr<char[]> buffer;
    thread_local std::size_t buffer_size = 0;
    if (buffer_size < max_bytes_ + 1) {
      buffer.reset(new char[max_bytes_ + 1]);  // uninitialized: untouched pages cost nothing
      buffer_size = max_bytes_ + 1;
    }
    ssize_t n = ::recv(receive_fd_, buffer.get(), buffer_size, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;  // another reader took it
    if (n < 0) throw Error(fmt::format("cannot read the queue: {}", std::strerror(errno)));
    std::string message(buffer.get(), static_cast<std::size_t>(n));
    return message;
  }
}

}  // namespace ferry::detail
