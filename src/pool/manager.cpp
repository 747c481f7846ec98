#include "ferry/manager.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <thread>

#include "ferry/pipe.hpp"

namespace ferry {
namespace detail {
namespace {

using Reply = ManagerReply;
using Request = ManagerRequest;

// "@name" is a name in the abstract namespace: the kernel removes it with
// the socket, so a killed server leaves nothing behind.
sockaddr_un socket_address(const std::string& address, socklen_t& length) {
  if (address.size() < 2 || address[0] != '@' || address.size() >= sizeof(sockaddr_un::sun_path))
    throw Error(fmt::format("'{}' is not a manager's address (\"@\" and a name)", address));
  sockaddr_un socket_name{};
  socket_name.sun_family = AF_UNIX;
  std::memcpy(socket_name.sun_path + 1, address.data() + 1, address.size() - 1);
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  return socket_name;
}

// What the server holds: containers by name, each of one kind.
class Containers {
 public:
  Reply handle(const Request& request, const std::function<bool()>& caller_gone) {
    std::unique_lock guard(mutex_);
    Container& container = find(request);
    Reply reply;
    switch (request.op) {
      case ManagerOp::dict_set:
        container.dict[request.key] = request.value;
        break;
      case ManagerOp::dict_get: {
        auto found = container.dict.find(request.key);
        if (found == container.dict.end())
          reply.status = Reply::missing;
        else
          reply.value = found->second;
        break;
      }
      case ManagerOp::dict_erase:
        reply.number = static_cast<std::int64_t>(container.dict.erase(request.key));
        break;
      case ManagerOp::dict_contains:
        reply.number = container.dict.count(request.key);
        break;
      case ManagerOp::dict_size:
        reply.number = static_cast<std::int64_t>(container.dict.size());
        break;
      case ManagerOp::dict_clear:
        container.dict.clear();
        break;
      case ManagerOp::dict_items:
        for (auto& [key, value] : container.dict) {
          reply.keys.push_back(key);
          reply.values.push_back(value);
        }
        break;
      case ManagerOp::list_append:
        container.list.push_back(request.value);
        break;
      case ManagerOp::list_get:
        reply.value = container.list[index(container, request.number)];
        break;
      case ManagerOp::list_set:
        container.list[index(container, request.number)] = request.value;
        break;
      case ManagerOp::list_pop: {
        if (container.list.empty())
          throw Error(fmt::format("pop from an empty list '{}'", request.container));
        std::size_t at = index(container, request.number);
        reply.value = std::move(container.list[at]);
        container.list.erase(container.list.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      }
      case ManagerOp::list_size:
        reply.number = static_cast<std::int64_t>(container.list.size());
        break;
      case ManagerOp::list_clear:
        container.list.clear();
        break;
      case ManagerOp::list_items:
        reply.values = container.list;
        break;
      case ManagerOp::queue_put:
        container.queue.push_back(request.value);
        changed_.notify_all();
        break;
      case ManagerOp::queue_get: {
        // Waits in slices, to notice a caller that went away meanwhile: an
        // item taken for it would be lost.
        auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(std::max<std::int64_t>(request.timeout_ms, 0));
        while (container.queue.empty()) {
          auto now = std::chrono::steady_clock::now();
          if (request.timeout_ms >= 0 && now >= deadline) break;
          auto slice = now + std::chrono::milliseconds(100);
          changed_.wait_until(guard, request.timeout_ms >= 0 ? std::min(slice, deadline) : slice);
          if (caller_gone()) throw Error("the caller is gone");
        }
        if (container.queue.empty()) {
          reply.status = Reply::missing;
        } else {
          reply.value = std::move(container.queue.front());
          container.queue.pop_front();
        }
        break;
      }
      case ManagerOp::queue_size:
        reply.number = static_cast<std::int64_t>(container.queue.size());
        break;
      default:
        throw Error("an unknown request");
    }
    return reply;
  }

  // An item that could not be delivered goes back where it was.
  void put_back(const std::string& container_name, std::string item) {
    std::lock_guard guard(mutex_);
    containers_[container_name].queue.push_front(std::move(item));
    changed_.notify_all();
  }

 private:
  enum class Kind { dict, list, queue };
  struct Container {
    Kind kind;
    std::uint64_t types;
    std::map<std::string, std::string> dict;
    std::vector<std::string> list;
    std::deque<std::string> queue;
  };

  static Kind kind_of(ManagerOp op) {
    if (op <= ManagerOp::dict_items) return Kind::dict;
    if (op <= ManagerOp::list_items) return Kind::list;
    return Kind::queue;
  }
  static const char* kind_name(Kind kind) {
    return kind == Kind::dict ? "a dict" : kind == Kind::list ? "a list" : "a queue";
  }

  Container& find(const Request& request) {
    Kind kind = kind_of(request.op);
    auto [found, made] = containers_.try_emplace(request.container);
    Container& container = found->second;
    if (made) {
      container.kind = kind;
      container.types = request.types;
    } else if (container.kind != kind) {
      throw Error(fmt::format("'{}' is {} of the manager, not {}", request.container,
                              kind_name(container.kind), kind_name(kind)));
    } else if (container.types != request.types) {
      throw Error(fmt::format("'{}' holds other types than this use of it", request.container));
    }
    return container;
  }

  static std::size_t index(const Container& container, std::int64_t index) {
    auto size = static_cast<std::int64_t>(container.list.size());
    std::int64_t at = index < 0 ? size + index : index;
    if (at < 0 || at >= size)
      throw Error(fmt::format("list index {} is out of range (size {})", index, size));
    return static_cast<std::size_t>(at);
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Container> containers_;
};

void serve_client(Containers& containers, int fd) {
  ByteConnection connection(fd, true, true);
  auto gone = [fd] {
    pollfd watch{fd, POLLRDHUP, 0};
    return ::poll(&watch, 1, 0) > 0 && (watch.revents & (POLLRDHUP | POLLHUP | POLLERR));
  };
  for (;;) {
    Request request;
    try {
      request = from_bytes<Request>(*connection.receive(std::nullopt));
    } catch (const EOFError&) {
      return;  // the process closed its connection, or ended
    } catch (const Error&) {
      return;  // not a manager's client
    }
    Reply reply;
    try {
      reply = containers.handle(request, gone);
    } catch (const Error& error) {
      reply = Reply{};
      reply.status = Reply::error;
      reply.value = error.what();
    }
    try {
      connection.send(to_bytes(reply));
    } catch (const Error&) {
      if (request.op == ManagerOp::queue_get && reply.status == Reply::ok)
        containers.put_back(request.container, std::move(reply.value));
      return;
    }
  }
}

[[noreturn]] void serve(int listener) {
  // Only the listener stays open: a copy of a Pipe's end, say, inherited
  // from the process that made the manager, would keep that pipe from ever
  // reaching its end.
  if (listener != 3) {
    ::dup3(listener, 3, O_CLOEXEC);
    listener = 3;
  }
  ::close_range(4, ~0U, 0);
  static Containers containers;  // lives until the process is killed
  uid_t owner = ::getuid();
  for (;;) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      ::_exit(1);
    }
    ucred peer{};
    socklen_t size = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) < 0 || peer.uid != owner) {
      ::close(fd);  // another user's process: not ours to serve
      continue;
    }
    std::thread(serve_client, std::ref(containers), fd).detach();
  }
}

int connect_to(const std::string& address) {
  socklen_t length = 0;
  sockaddr_un socket_name = socket_address(address, length);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(fmt::format("cannot reach the manager: {}", std::strerror(errno)));
  int result;
  while ((result = ::connect(fd, reinterpret_cast<sockaddr*>(&socket_name), length)) < 0 &&
         errno == EINTR) {
  }
  if (result < 0) {
    int error = errno;
    ::close(fd);
    throw Error(fmt::format("cannot reach the manager at '{}': {}", address, std::strerror(error)));
  }
  return fd;
}

}  // namespace

ManagerReply ManagerConnection::call(const ManagerRequest& request) {
  std::lock_guard guard(mutex_);
  pid_t self = ::getpid();
  if (!socket_.closed() && owner_ != self)
    socket_.close();  // the parent's connection: a forked child speaks on its own
  if (socket_.closed()) {
    socket_ = ByteConnection(connect_to(address_), true, true);
    owner_ = self;
  }
  ManagerReply reply;
  try {
    socket_.send(to_bytes(request));
    reply = from_bytes<ManagerReply>(*socket_.receive(std::nullopt));
  } catch (const EOFError&) {
    socket_.close();
    throw Error(fmt::format("the manager at '{}' is gone", address_));
  }
  if (reply.status == ManagerReply::error) throw Error(reply.value);
  return reply;
}

}  // namespace detail

Manager::Manager() {
  std::string address = "@" + detail::fresh_name().replace(0, 5, "ferry-manager");
  socklen_t length = 0;
  sockaddr_un socket_name = detail::socket_address(address, length);
  int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&socket_name), length) < 0 ||
      ::listen(listener, 128) < 0) {
    int error = errno;
    if (listener >= 0) ::close(listener);
    throw Error(fmt::format("cannot start a manager: {}", std::strerror(error)));
  }
  // Listening before the server starts: a connect never races its start.
  server_ = std::make_unique<Process>([listener] { detail::serve(listener); }, "ferry-manager");
  try {
    server_->start();
  } catch (...) {
    ::close(listener);
    throw;
  }
  ::close(listener);  // the server has it
  link_ = std::make_shared<detail::ManagerConnection>(address);
}

Manager Manager::connect(const std::string& address) {
  auto link = std::make_shared<detail::ManagerConnection>(address);
  ::close(detail::connect_to(address));  // reachable now, or an error now
  return Manager(std::move(link));
}

void Manager::shutdown() {
  if (!server_) return;
  server_->kill();
  server_->join();
}

}  // namespace ferry
