#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "ferry/pipe.hpp"

namespace ferry::detail {
namespace {

// The largest packet: a message up to this (less its 8-byte length) is one
// packet, which the kernel delivers whole even with several senders; a
// larger one follows as continuation packets of up to this size.
constexpr std::size_t kPacket = 64 * 1024;
constexpr std::size_t kLengthBytes = sizeof(std::uint64_t);

[[noreturn]] void closed_by_peer() {
  throw EOFError("the other end of the pipe is closed in every process");
}

int wait_ms(const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 1 << 30));
}

}  // namespace

ByteConnection::ByteConnection(int fd, bool readable, bool writable)
    : fd_(fd), readable_(readable), writable_(writable) {}

ByteConnection::ByteConnection(ByteConnection&& other) noexcept { *this = std::move(other); }

ByteConnection& ByteConnection::operator=(ByteConnection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    readable_ = std::exchange(other.readable_, false);
    writable_ = std::exchange(other.writable_, false);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

ByteConnection::~ByteConnection() { close(); }

void ByteConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void ByteConnection::check(bool receiving) const {
  if (fd_ < 0) throw Error("this end of the pipe is closed");
  if (receiving && !readable_) throw Error("this end of a one-way pipe only sends");
  if (!receiving && !writable_) throw Error("this end of a one-way pipe only receives");
}

void ByteConnection::send(std::string_view message) {
  check(false);
  std::uint64_t length = message.size();
  std::size_t first = std::min(message.size(), kPacket - kLengthBytes);
  iovec parts[2] = {{&length, kLengthBytes}, {const_cast<char*>(message.data()), first}};
  msghdr packet{};
  packet.msg_iov = parts;
  packet.msg_iovlen = 2;
  std::size_t sent = 0;
  bool header_sent = false;
  while (!header_sent || sent < message.size()) {
    ssize_t n;
    std::size_t chunk = header_sent ? std::min(message.size() - sent, kPacket) : first;
    if (!header_sent)
      n = ::sendmsg(fd_, &packet, MSG_NOSIGNAL);
    else
      n = ::send(fd_, message.data() + sent, chunk, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) closed_by_peer();
    if (n < 0) throw Error(fmt::format("cannot send on the pipe: {}", std::strerror(errno)));
    header_sent = true;
    sent += chunk;
  }
}

bool ByteConnection::poll(std::optional<Clock::time_point> deadline) {
  check(true);
  for (;;) {
    pollfd watch{fd_, POLLIN, 0};
    int ready = ::poll(&watch, 1, wait_ms(deadline));
    if (ready > 0) return true;  // a packet, or the end (POLLHUP): recv returns at once
    if (ready == 0) {
      if (!deadline || Clock::now() >= *deadline) return false;
      continue;  // woke a millisecond early
    }
    if (errno != EINTR)
      throw Error(fmt::format("cannot wait on the pipe: {}", std::strerror(errno)));
  }
}

std::optional<std::string> ByteConnection::receive(std::optional<Clock::time_point> deadline) {
  check(true);
  if (buffer_.size() < kPacket) buffer_.resize(kPacket);
  // With no deadline a blocking recv() is the one system call of a message.
  int flags = 0;
  if (deadline) {
    if (!poll(deadline)) return std::nullopt;
    flags = MSG_DONTWAIT;
  }
  std::string message;
  std::uint64_t length = 0;
  bool started = false;
  for (;;) {
    ssize_t n = ::recv(fd_, buffer_.data(), kPacket, started ? 0 : flags);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {  // another receiver of this end took it
      if (!poll(deadline)) return std::nullopt;
      continue;
    }
    if (n < 0 && errno == ECONNRESET) closed_by_peer();
    if (n < 0) throw Error(fmt::format("cannot receive on the pipe: {}", std::strerror(errno)));
    if (n == 0) {
      if (started) throw EOFError("the other end of the pipe closed in the middle of a message");
      closed_by_peer();
    }
    auto size = static_cast<std::size_t>(n);
    if (!started) {
      if (size < kLengthBytes) throw DecodeError("the pipe delivered a packet without a length");
      std::memcpy(&length, buffer_.data(), kLengthBytes);
      message.reserve(std::min<std::uint64_t>(length, std::uint64_t{1} << 26));
      message.append(buffer_.data() + kLengthBytes, size - kLengthBytes);
      started = true;
    } else {
      message.append(buffer_.data(), size);
    }
    if (message.size() >= length) break;
  }
  if (message.size() != length) throw DecodeError("the pipe delivered a message of the wrong size");
  return message;
}

std::pair<ByteConnection, ByteConnection> connected_pair(bool duplex) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  // Room for a few whole packets, wherever the system default is lower.
  int room = 4 * static_cast<int>(kPacket);
  for (int fd : fds) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
  if (!duplex) {
    // As in Python: the first end receives, the second sends.
    ::shutdown(fds[0], SHUT_WR);
    ::shutdown(fds[1], SHUT_RD);
  }
  return {ByteConnection(fds[0], true, duplex), ByteConnection(fds[1], duplex, true)};
}

}  // namespace ferry::detail
