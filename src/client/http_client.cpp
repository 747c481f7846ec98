#include "client/http_client.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <poll.h>

namespace ferry::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection to the server, plain or TLS; operations run on its own
// io_context until they finish, their deadline passes, or the interrupt
// descriptor becomes readable.
struct HttpClient::Connection {
  asio::io_context io;
  std::optional<beast::tcp_stream> plain;
  std::optional<TlsStream> tls;
  beast::flat_buffer buffer;
  std::optional<asio::posix::stream_descriptor> interrupt;  // a dup of the caller's descriptor
  bool interrupted = false;

  bool is_open() const { return plain || tls; }
  void reset() {
    plain.reset();
    tls.reset();
    buffer.clear();
  }
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  // Calls `operation` with whichever stream is open.
  template <class Operation>
  void with_stream(Operation operation) {
    if (tls)
      operation(*tls);
    else
      operation(*plain);
  }
  // The completion handler of an operation: records its error.
  auto on_done(beast::error_code& error) {
    return [this, &error](beast::error_code e, auto&&...) {
      error = e;
      if (interrupt) interrupt->cancel();  // the operation is over: stop watching
    };
  }
  // Runs what was started until it finished; returns its error.
  beast::error_code run(const beast::error_code& error) {
    io.restart();
    if (interrupt) {
      interrupt->async_wait(asio::posix::descriptor_base::wait_read, [this](beast::error_code e) {
        if (e) return;  // cancelled: the operation finished first
        interrupted = true;
        if (is_open()) lowest().cancel();
      });
    }
    io.run();
    return error;
  }
  // Sends `request`, then reads with `read(stream, buffer, handler)`, until
  // the stream's deadline; returns the first error.
  template <class Read>
  beast::error_code exchange(const http::request<http::string_body>& request, Read read) {
    beast::error_code error;
    with_stream([&](auto& stream) {
      http::async_write(stream, request, on_done(error));
      if (!run(error)) read(stream, buffer, on_done(error));
    });
    return error ? error : run(error);
  }
};

namespace {

struct Endpoint {
  std::string host;
  std::string port;
  bool https = false;
};

Endpoint parse_url(const std::string& url) {
  std::string scheme = url.substr(0, url.find("://") + 3);
  if (scheme != "http://" && scheme != "https://")
    throw std::invalid_argument(fmt::format("'{}' is not an http:// or https:// URL", url));
  std::string authority = url.substr(scheme.size());
  auto colon = authority.rfind(':');
  if (colon == std::string::npos || colon + 1 == authority.size() ||
      authority.find('/') != std::string::npos)
    throw std::invalid_argument(fmt::format("'{}' needs to be {}HOST:PORT", url, scheme));
  Endpoint endpoint{authority.substr(0, colon), authority.substr(colon + 1), scheme == "https://"};
  if (endpoint.host.size() >= 2 && endpoint.host.front() == '[')
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
  return endpoint;
}

std::shared_ptr<ssl::context> client_tls() {
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  const char* authority_file = std::getenv("FERRY_TLS_CA");
  boost::system::error_code problem;
  if (authority_file && *authority_file)
    tls->load_verify_file(authority_file, problem);
  else
    tls->set_default_verify_paths(problem);
  if (problem)
    throw std::invalid_argument(fmt::format(
        "cannot load the certificate authorities{}: {}",
        authority_file && *authority_file ? fmt::format(" of FERRY_TLS_CA={}", authority_file) : "",
        problem.message()));
  tls->set_verify_mode(ssl::verify_peer);
  return tls;
}

}  // namespace

HttpClient::HttpClient(std::string urls, std::string token)
    : servers_(urls), token_(std::move(token)), connection_(std::make_unique<Connection>()) {
  for (const std::string& url : servers_.urls())
    if (parse_url(url).https && !tls_) tls_ = client_tls();
  use_current();
}

void HttpClient::use_current() {
  Endpoint endpoint = parse_url(servers_.current());
  host_ = endpoint.host;
  port_ = endpoint.port;
  https_ = endpoint.https;
  if (https_ && !tls_) tls_ = client_tls();
  connection_->reset();
}

HttpClient::~HttpClient() = default;

void HttpClient::interrupt_on(int fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw std::system_error(errno, std::generic_category(), "dup");
  connection_->interrupt.emplace(connection_->io, copy);
  interrupt_fd_ = copy;
}

void HttpClient::pause(std::chrono::milliseconds duration) {
  pollfd watched{interrupt_fd_, POLLIN, 0};
  if (::poll(&watched, interrupt_fd_ >= 0 ? 1 : 0, static_cast<int>(duration.count())) > 0)
    throw Interrupted(fmt::format("looking for the leader among {} was interrupted", urls()));
}

template <class Attempt>
Response HttpClient::on_leader(std::chrono::steady_clock::time_point give_up, Attempt attempt) {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds backoff{100};
  std::size_t tried = 0;  // servers tried since the last pause
  for (;;) {
    std::optional<Response> refused;
    std::string unreachable;
    try {
      Response response = attempt();
      std::optional<std::string> leader = not_leader(response.status, response.body);
      if (!leader) return response;
      refused = std::move(response);
      // Where the standby points, unless that is where we are.
      if (!leader->empty() && normalized(*leader) != servers_.current()) {
        servers_.follow(*leader);
      } else {
        servers_.next();
      }
    } catch (const Interrupted&) {
      throw;
    } catch (const DeadlineReached&) {
      throw;
    } catch (const Unreachable& problem) {
      // One server the user gave, and no other known: as before, at once.
      if (servers_.size() == 1) throw;
      unreachable = problem.what();
      servers_.next();
    } catch (const ConnectionError&) {
      // Sent, and no answer came: the server may be stalled (paused, cut
      // off) while another took over. The request is the caller's to send
      // again; whatever comes next goes to the next server, which leads or
      // names the leader, rather than to this one again.
      if (servers_.size() > 1) {
        servers_.next();
        use_current();
      }
      throw;
    }
    use_current();
    if (++tried < servers_.size()) continue;
    // A round found no leader (an election under way, or every server down).
    tried = 0;
    if (Clock::now() + backoff >= give_up) {
      if (refused) return *refused;
      throw Unreachable(
          fmt::format("no server of {} could be reached (the last: {})", urls(), unreachable));
    }
    pause(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

void HttpClient::connect(Connection& c, std::chrono::steady_clock::time_point deadline) const {
  c.reset();
  beast::error_code error;
  asio::ip::tcp::resolver resolver(c.io);
  auto endpoints = resolver.resolve(host_, port_, error);
  if (error) throw Unreachable(fmt::format("cannot resolve {}: {}", host_, error.message()));
  if (https_)
    c.tls.emplace(c.io, *tls_);
  else
    c.plain.emplace(c.io);
  c.lowest().expires_at(deadline);
  c.lowest().async_connect(endpoints, c.on_done(error));
  if (c.run(error)) {
    c.reset();
    if (std::exchange(c.interrupted, false))
      throw Interrupted(fmt::format("connecting to {} was interrupted", url()));
    throw Unreachable(fmt::format("cannot reach the server at {}: {}", url(), error.message()));
  }
  if (!c.tls) return;
  // The name the certificate must carry, and SNI for servers with several.
  if (!SSL_set_tlsext_host_name(c.tls->native_handle(), host_.c_str()))
    throw Unreachable(fmt::format("cannot use the host name {} for TLS", host_));
  c.tls->set_verify_callback(ssl::host_name_verification(host_));
  c.tls->async_handshake(ssl::stream_base::client, c.on_done(error));
  if (c.run(error)) {
    c.reset();
    throw Unreachable(fmt::format("TLS with the server at {} failed: {}", url(), error.message()));
  }
}

http::request<http::string_body> HttpClient::make_request(const std::string& method,
                                                          const std::string& target,
                                                          const std::string& body) const {
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, host_);
  request.set(http::field::user_agent, "ferry");
  if (!token_.empty()) request.set(http::field::authorization, "Bearer " + token_);
  if (!body.empty() || method == "POST") {
    request.set(http::field::content_type, "application/json");
    request.body() = body;
  }
  request.keep_alive(true);
  request.prepare_payload();
  return request;
}

Response HttpClient::request(const std::string& method, const std::string& target,
                             const std::string& body, std::chrono::milliseconds timeout) {
  return on_leader(std::chrono::steady_clock::now() + timeout,
                   [&] { return request_once(method, target, body, timeout); });
}

Response HttpClient::request_once(const std::string& method, const std::string& target,
                                  const std::string& body, std::chrono::milliseconds timeout) {
  http::request<http::string_body> request = make_request(method, target, body);
  Connection& c = *connection_;
  c.interrupted = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = !c.is_open();
    if (fresh) connect(c, std::chrono::steady_clock::now() + timeout);
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    c.lowest().expires_after(timeout);
    beast::error_code error = c.exchange(request, [&](auto& stream, auto& buffer, auto done) {
      http::async_read(stream, buffer, parser, done);
    });
    if (!error) {
      if (!parser.get().keep_alive()) c.reset();
      return {static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
    }
    c.reset();
    if (std::exchange(c.interrupted, false))
      throw Interrupted(fmt::format("the request to {} was interrupted", url()));
    // A kept-alive connection the server closed meanwhile: try once on a new one.
    if (fresh || error == beast::error::timeout)
      throw ConnectionError(
          fmt::format("no answer from the server at {}: {}", url(), error.message()));
  }
  throw ConnectionError(fmt::format("no answer from the server at {}", url()));
}

Response HttpClient::download(const std::string& target, const std::string& path,
                              std::chrono::milliseconds silence) {
  return on_leader(std::chrono::steady_clock::now() + kFindLeader,
                   [&] { return download_once(target, path, silence); });
}

Response HttpClient::download_once(const std::string& target, const std::string& path,
                                   std::chrono::milliseconds silence) {
  Connection c;
  connect(c, std::chrono::steady_clock::now() + silence);
  http::request<http::string_body> request = make_request("GET", target, "");
  http::response_parser<http::file_body> parser;
  parser.body_limit(boost::none);
  beast::error_code error;
  parser.get().body().open(path.c_str(), beast::file_mode::write, error);
  if (error) throw ConnectionError(fmt::format("cannot write '{}': {}", path, error.message()));
  c.lowest().expires_after(silence);
  error = c.exchange(request, [&](auto& stream, auto& buffer, auto done) {
    http::async_read_header(stream, buffer, parser, done);
  });
  while (!error && !parser.is_done()) {
    c.lowest().expires_after(silence);
    c.with_stream(
        [&](auto& stream) { http::async_read_some(stream, c.buffer, parser, c.on_done(error)); });
    c.run(error);
  }
  parser.get().body().close();
  if (error) {
    std::filesystem::remove(path);
    throw ConnectionError(fmt::format("the answer from {} broke off: {}", url(), error.message()));
  }
  Response response{static_cast<int>(parser.get().result_int()), {}};
  if (response.status != 200) {  // a refusal: its JSON went to the file
    std::ifstream refusal(path);
    response.body.assign(std::istreambuf_iterator<char>(refusal), {});
    std::filesystem::remove(path);
  }
  return response;
}

Response HttpClient::events(const std::string& target,
                            const std::function<bool(std::string_view data)>& on_event,
                            std::chrono::steady_clock::time_point deadline) {
  return on_leader(std::min(deadline, std::chrono::steady_clock::now() + kFindLeader),
                   [&] { return events_once(target, on_event, deadline); });
}

Response HttpClient::events_once(const std::string& target,
                                 const std::function<bool(std::string_view data)>& on_event,
                                 std::chrono::steady_clock::time_point deadline) {
  // A connection of its own: the stream holds it until the end.
  Connection c;
  auto soon = [&] { return std::min(deadline, std::chrono::steady_clock::now() + kSilence); };
  connect(c, soon());
  http::request<http::string_body> request = make_request("GET", target, "");
  request.set(http::field::accept, "text/event-stream");
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  c.lowest().expires_at(soon());
  beast::error_code error = c.exchange(request, [&](auto& stream, auto& buffer, auto done) {
    http::async_read_header(stream, buffer, parser, done);
  });
  auto broken = [&](const beast::error_code& problem) -> Response {
    if (problem == beast::error::timeout && std::chrono::steady_clock::now() >= deadline)
      throw DeadlineReached("the deadline passed");
    throw ConnectionError(
        fmt::format("the event stream from {} broke: {}", url(), problem.message()));
  };
  if (error) return broken(error);
  if (parser.get().result() != http::status::ok) {  // a refusal, with a JSON body
    c.with_stream(
        [&](auto& stream) { http::async_read(stream, c.buffer, parser, c.on_done(error)); });
    if (c.run(error)) return broken(error);
    return {static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
  }
  // The body runs until the connection closes: "event: ...\ndata: ...\n\n"
  // blocks; lines starting with ':' keep the connection alive (every 15 s).
  std::string pending;
  for (;;) {
    std::string_view unread(static_cast<const char*>(c.buffer.data().data()), c.buffer.size());
    pending.append(unread);
    c.buffer.consume(c.buffer.size());
    for (auto end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
      std::string_view block(pending.data(), end);
      std::string data;
      while (!block.empty()) {
        std::string_view line = block.substr(0, block.find('\n'));
        block.remove_prefix(std::min(block.size(), line.size() + 1));
        if (line.substr(0, 5) != "data:") continue;
        line.remove_prefix(line.size() > 5 && line[5] == ' ' ? 6 : 5);
        data += (data.empty() ? "" : "\n") + std::string(line);
      }
      pending.erase(0, end + 2);
      if (!data.empty() && !on_event(data)) return {200, ""};
    }
    // Silence longer than three keep-alives means the server is gone.
    c.lowest().expires_at(soon());
    c.with_stream([&](auto& stream) {
      stream.async_read_some(c.buffer.prepare(64 * 1024), [&](beast::error_code e, std::size_t n) {
        c.on_done(error)(e);
        c.buffer.commit(n);
      });
    });
    if (c.run(error)) return broken(error);
  }
}

}  // namespace ferry::client
