#include "server/http_server.hpp"

#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "daemon/log.hpp"
#include "daemon/notify.hpp"
#include "server/api_json.hpp"
#include "server/dashboard.hpp"
#include "server/json_fields.hpp"
#include "server/leadership.hpp"
#include "server/metrics.hpp"

namespace ferry::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string allow;              // for 405: the methods the path takes
  std::vector<LeasedJob> leases;  // handed out by this answer: put back if it cannot be sent
  std::string_view content_type = "application/json";
  std::span<const HttpHeader> headers;  // more, for what is not JSON (the dashboard's files)
};

Reply error(http::status status, std::string_view code, std::string_view detail) {
  return {status, render_error(code, detail)};
}

void log(std::string_view line, daemon::Level level = daemon::Level::info) {
  daemon::log("server", line, level);
}

Time wall_clock() {
  return std::chrono::duration_cast<Time>(std::chrono::system_clock::now().time_since_epoch());
}

// Equal strings, in time that does not depend on where they differ (only
// on the length given).
bool same_secret(std::string_view given, std::string_view expected) {
  unsigned difference = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i)
    difference |= static_cast<unsigned char>(given[i]) ^
                  static_cast<unsigned char>(i < expected.size() ? expected[i] : 0);
  return difference == 0;
}

// The credentials of "Authorization: Bearer TOKEN" (the scheme is
// case-insensitive, RFC 7235); empty for any other form.
std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer";
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return {};
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return {};
  header.remove_prefix(scheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  return header;
}

// An awaitable for a Service call whose callback takes one value: `start`
// gets the function to call with it. Not a coroutine itself (see route()).
template <class Result, class Start>
asio::awaitable<Result> callback_result(asio::io_context& io, Start start) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
      [&io](auto handler, Start begin) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        // Resumed through post: never from inside the call that started it.
        std::move(begin)([&io, shared](Result result) {
          asio::post(io, [shared, result = std::move(result)]() mutable {
            std::move (*shared)(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(start));
}

constexpr std::size_t kEventSlice = 256 << 10;
constexpr std::size_t kOffloadedParse = 1 << 20;  // bodies this large are parsed off the loop

// Ends a connection: TLS says goodbye first (bounded, a peer may not answer).
asio::awaitable<void> close(beast::tcp_stream& stream) {
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  co_return;
}
asio::awaitable<void> close(TlsStream& stream) {
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  auto goodbye = stream.async_shutdown(use_tuple);
  co_await std::move(goodbye);
}

asio::awaitable<Submission> parse_submit_elsewhere(std::string_view body, SpecLimits limits) {
  co_return parse_submit(body, limits);
}

// Counts while it lives (connections, bytes of bodies being read).
class Held {
 public:
  Held(std::size_t& total, std::size_t amount) : total_(total), amount_(amount) {
    total_ += amount_;
  }
  ~Held() { total_ -= amount_; }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  std::size_t& total_;
  std::size_t amount_;
};

class Server {
 public:
  explicit Server(const ServerConfig& config)
      : config_(config),
        store_(store::open_store(config.db, {config.leader_lease})),
        service_(
            *store_, [this](std::function<void()> work) { asio::post(io_, std::move(work)); },
            wall_clock, config.service) {
    if (!config.tls_cert.empty()) {
      tls_.emplace(ssl::context::tls_server);
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      boost::system::error_code problem;
      tls_->use_certificate_chain_file(config.tls_cert, problem);
      if (problem)
        throw std::runtime_error(
            fmt::format("--tls-cert {}: {}", config.tls_cert, problem.message()));
      tls_->use_private_key_file(config.tls_key, ssl::context::pem, problem);
      if (problem)
        throw std::runtime_error(
            fmt::format("--tls-key {}: {}", config.tls_key, problem.message()));
    }
    max_connections_ = within_descriptor_limit(config.max_connections);
  }

  void run() {
    bool shared = store::is_postgres_url(config_.db);
    if (!shared) service_.start();  // the only server of its database: it leads
    tcp::endpoint endpoint(asio::ip::make_address(config_.host), config_.port);
    tcp::acceptor acceptor(io_);
    if (std::optional<int> kept = listening_socket()) {  // a server that stepped aside
      acceptor.assign(endpoint.protocol(), *kept);
    } else {
      acceptor.open(endpoint.protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      boost::system::error_code bind_error;
      acceptor.bind(endpoint, bind_error);
      if (bind_error)
        throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", config_.host,
                                             config_.port, bind_error.message()));
      acceptor.listen();
    }
    acceptor_ = &acceptor;
    std::string address = fmt::format("{}://{}:{}", tls_ ? "https" : "http", config_.host,
                                      acceptor.local_endpoint().port());
    if (shared) {  // several servers on one database: one leads
      std::string advertised =
          config_.advertise.empty() ? advertised_address(acceptor) : config_.advertise;
      leadership_ = std::make_unique<Leadership>(
          store::open_postgres_election(config_.db, config_.leader_lease),
          config_.name.empty() ? default_name() : config_.name, advertised,
          [this](std::function<void()> work) { asio::post(io_, std::move(work)); },
          Leadership::Events{[this](std::uint64_t epoch) { lead(epoch); },
                             [this](const std::string& why) { step_aside(why); }});
    }
    if (!config_.address_file.empty()) {
      std::ofstream(config_.address_file + ".tmp") << address << "\n";
      std::rename((config_.address_file + ".tmp").c_str(), config_.address_file.c_str());
    }
    log(fmt::format("listening on {}, database {}{}", address, store::redacted(config_.db),
                    config_.token.empty() ? ", no token (loopback only)" : ""));
    daemon::notify_ready("listening on " + address);

    // GET /metrics on an address of its own, without the token: for a
    // Prometheus that should not hold the token.
    tcp::acceptor metrics_acceptor(io_);
    if (config_.metrics_port) {
      tcp::endpoint metrics_endpoint(asio::ip::make_address(config_.metrics_host),
                                     *config_.metrics_port);
      metrics_acceptor.open(metrics_endpoint.protocol());
      metrics_acceptor.set_option(asio::socket_base::reuse_address(true));
      boost::system::error_code bind_error;
      metrics_acceptor.bind(metrics_endpoint, bind_error);
      if (bind_error)
        throw std::runtime_error(fmt::format("--metrics-listen: cannot listen on {}:{}: {}",
                                             config_.metrics_host, *config_.metrics_port,
                                             bind_error.message()));
      metrics_acceptor.listen();
      log(fmt::format("metrics at http://{}:{}/metrics, without the token", config_.metrics_host,
                      metrics_acceptor.local_endpoint().port()));
      asio::co_spawn(io_, accept(metrics_acceptor, true), asio::detached);
    }

    asio::signal_set signals(io_, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
      log("stopping");
      daemon::notify_stopping("stopping: making what was accepted durable");
      acceptor.close();
      metrics_acceptor.close();
      store_->flush();                         // what was accepted is durable before we go
      if (leadership_) leadership_->resign();  // a standby takes over at once
      io_.stop();
    });
    asio::co_spawn(io_, accept(acceptor, false), asio::detached);
    if (leadership_) {
      log("standing by until it leads");
      leadership_->start();
    } else {
      asio::co_spawn(io_, ticks(), asio::detached);
    }
    // Nothing that goes wrong in one request or callback may end the server:
    // each handler catches what its request raises; this is the last net.
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& problem) {
        // A server that shares its database cannot trust its memory after
        // this: it lets a standby lead, and becomes one.
        if (leading_) step_aside(fmt::format("internal error: {}", problem.what()));
        log(fmt::format("internal error, going on: {}", problem.what()), daemon::Level::error);
      }
    }
    store_->flush();
  }

 private:
  // Won the election: rebuilds from the database, as a restart does, and
  // serves. A failure gives the leadership back and starts again.
  void lead(std::uint64_t epoch) {
    try {
      store_->lead(epoch);
      service_.start();
    } catch (const std::exception& problem) {
      log(fmt::format("cannot lead: {}", problem.what()));
      leadership_->resign();
      restart(acceptor_ ? acceptor_->native_handle() : -1);
    }
    leading_ = true;
    log(fmt::format("leading (epoch {})", epoch));
    asio::co_spawn(io_, ticks(), asio::detached);
  }

  // Lost the leadership (or cannot tell it holds it): everything held in
  // memory was the leader's, so the server starts again, a standby.
  [[noreturn]] void step_aside(const std::string& why) {
    log(fmt::format("stepping aside: {}; starting again as a standby", why));
    restart(acceptor_ ? acceptor_->native_handle() : -1);
  }

  // Whether requests are served here, or refused with not_leader.
  bool serving() const { return !leadership_ || (leading_ && leadership_->leading()); }

  Reply not_leader() const {
    return {http::status::service_unavailable, render_not_leader(leadership_->leader_url())};
  }

  // The URL clients reach this server at: its address, with a wildcard one
  // (0.0.0.0, ::) replaced by the machine's name.
  std::string advertised_address(const tcp::acceptor& acceptor) const {
    std::string host = config_.host;
    if (acceptor.local_endpoint().address().is_unspecified()) {
      char name[256] = "localhost";
      ::gethostname(name, sizeof name - 1);
      host = name;
    } else if (host.find(':') != std::string::npos) {
      host = "[" + host + "]";
    }
    return fmt::format("{}://{}:{}", tls_ ? "https" : "http", host,
                       acceptor.local_endpoint().port());
  }

  static std::string default_name() {
    char name[256] = "server";
    ::gethostname(name, sizeof name - 1);
    return fmt::format("{}-{}", name, ::getpid());
  }

  // Connections beyond the descriptors this process may open could not even
  // be refused politely: the soft limit is raised to the hard one, and the
  // cap kept under it.
  static std::size_t within_descriptor_limit(std::size_t wanted) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
    if (limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
      ::getrlimit(RLIMIT_NOFILE, &limit);
    }
    constexpr rlim_t kSpare = 64;  // the database, its journal, the listening socket...
    rlim_t usable = limit.rlim_cur > 2 * kSpare ? limit.rlim_cur - kSpare : limit.rlim_cur / 2;
    if (usable >= wanted) return wanted;
    log(fmt::format("at most {} connections at once (the descriptor limit is {})", usable,
                    limit.rlim_cur));
    return usable;
  }

  // `metrics_only`: the --metrics-listen port, which serves GET /metrics alone.
  asio::awaitable<void> accept(tcp::acceptor& acceptor, bool metrics_only) {
    asio::steady_timer pause(io_);
    for (;;) {
      auto accepting = acceptor.async_accept(use_tuple);
      auto [problem, socket] = co_await std::move(accepting);
      if (problem == asio::error::operation_aborted) co_return;
      if (problem) {
        // Out of descriptors or memory: accepting again at once would spin.
        if (!accept_paused_) log(fmt::format("cannot accept connections: {}", problem.message()));
        accept_paused_ = true;
        pause.expires_after(std::chrono::milliseconds(100));
        auto waiting = pause.async_wait(use_tuple);
        co_await std::move(waiting);
        continue;
      }
      accept_paused_ = false;
      if (connections_ >= max_connections_) {
        refuse(socket);
        continue;
      }
      beast::tcp_stream stream(std::move(socket));
      if (metrics_only)
        asio::co_spawn(io_, metrics_session(std::move(stream)), report_failure);
      else if (tls_)
        asio::co_spawn(io_, tls_session(std::move(stream)), report_failure);
      else
        asio::co_spawn(io_, session(std::move(stream)), report_failure);
    }
  }

  static void report_failure(std::exception_ptr failure) {
    if (!failure) return;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& problem) {
      log(fmt::format("a connection failed: {}", problem.what()));
    }
  }

  // One short answer without waiting for the client: it may be one of many.
  static void refuse(tcp::socket& socket) {
    static const std::string refusal = [] {
      std::string body = render_error("busy", "too many connections; try again later");
      return fmt::format(
          "HTTP/1.1 503 Service Unavailable\r\nServer: ferry\r\nContent-Type: application/json\r\n"
          "Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
          body.size(), body);
    }();
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(refusal), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  // Leases expire, delayed jobs come due, long polls time out: the service
  // says when next, at least once a second. A request that brings the next
  // time closer wakes this loop early (wake_ticks).
  asio::awaitable<void> ticks() {
    for (;;) {
      auto wait = std::chrono::milliseconds(1000);
      if (auto next = service_.next_tick())
        wait = std::clamp(*next - wall_clock(), std::chrono::milliseconds(0), wait);
      tick_timer_.expires_after(wait);
      next_tick_ = wall_clock() + wait;
      auto sleeping = tick_timer_.async_wait(use_tuple);
      co_await std::move(sleeping);
      // A leader whose lease may have run out serves nothing more.
      if (leading_ && !leadership_->leading())
        step_aside("the leadership could not be renewed in time");
      service_.tick();
    }
  }

  void wake_ticks() {
    if (auto next = service_.next_tick(); next && *next < next_tick_) tick_timer_.cancel();
  }

  asio::awaitable<void> tls_session(beast::tcp_stream plain) {
    Held connection(connections_, 1);
    TlsStream stream(std::move(plain), *tls_);
    beast::get_lowest_layer(stream).expires_after(config_.header_timeout);
    auto handshake = stream.async_handshake(ssl::stream_base::server, use_tuple);
    auto shaken = co_await std::move(handshake);
    if (std::get<0>(shaken)) co_return;  // not TLS, or a certificate the client refused
    auto serving = serve_requests(stream);
    co_await std::move(serving);
  }

  asio::awaitable<void> session(beast::tcp_stream stream) {
    Held connection(connections_, 1);
    auto serving = serve_requests(stream);
    co_await std::move(serving);
  }

  // A connection to the --metrics-listen port: GET /metrics, nothing else,
  // no body, and no token.
  asio::awaitable<void> metrics_session(beast::tcp_stream stream) {
    Held connection(connections_, 1);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(0);
      stream.expires_after(config_.idle_timeout);
      auto reading = http::async_read(stream, buffer, parser, use_tuple);
      if (std::get<0>(co_await std::move(reading))) break;  // closed, too slow, a body, not HTTP
      const auto& request = parser.get();
      std::string_view target(request.target().data(), request.target().size());
      bool head = request.method() == http::verb::head;
      Reply reply;
      if (target != "/metrics")
        reply = error(http::status::not_found, "not_found",
                      fmt::format("no such path: {} (this port serves /metrics only)", target));
      else if (request.method() != http::verb::get && !head)
        reply = wrong_method(request.method(), target, "GET, HEAD");
      else {
        reply.body = metrics_text();
        reply.content_type = kMetricsContentType;
      }
      auto sending = send(stream, request.version(), request.keep_alive(), head, std::move(reply));
      bool sent = co_await std::move(sending);
      if (!sent || !request.keep_alive()) break;
    }
    auto closing = close(stream);
    co_await std::move(closing);
  }

  // One connection's requests, one after another. Each phase has its
  // deadline: the first byte within the idle timeout, the header within the
  // header timeout, the body at the minimum rate. The token is checked, and
  // the body's size and memory admitted, before any byte of the body is read.
  template <class Stream>
  asio::awaitable<void> serve_requests(Stream& stream) {
    beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
    int fd = lowest.socket().native_handle();
    // Still there? A closed connection reads as end-of-file; nothing read is consumed.
    auto connected = [fd] {
      char byte;
      ssize_t got = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      return got > 0 || (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
    };
    beast::flat_buffer buffer;
    for (;;) {
      if (buffer.size() == 0) {
        lowest.expires_after(config_.idle_timeout);
        auto waiting = stream.async_read_some(buffer.prepare(16 * 1024), use_tuple);
        auto [problem, got] = co_await std::move(waiting);
        if (problem) break;
        buffer.commit(got);
      }
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(boost::none);  // checked below, once the token is
      lowest.expires_after(config_.header_timeout);
      auto reading = http::async_read_header(stream, buffer, parser, use_tuple);
      if (std::get<0>(co_await std::move(reading))) break;  // closed, too slow, or not HTTP

      const auto& header = parser.get();
      bool head = header.method() == http::verb::head;
      std::string_view path(header.target().data(), header.target().size());
      path = path.substr(0, path.find('?'));
      std::uint64_t length =
          parser.content_length().value_or(parser.chunked() ? config_.max_body_bytes : 0);
      std::optional<Reply> early =
          path == "/healthz" || is_dashboard_path(path) ? std::nullopt : unauthorized(header);
      if (!early && config_.token.empty() && path != "/healthz") early = from_foreign_page(header);
      if (!early && length > config_.max_body_bytes)
        early = error(http::status::payload_too_large, "too_large",
                      fmt::format("the body is larger than {} bytes", config_.max_body_bytes));
      if (!early && bodies_in_flight_ + length > config_.max_bodies_in_flight)
        early = error(http::status::service_unavailable, "busy",
                      "too many request bodies in flight; try again");
      if (!early && path != "/healthz" && !serving()) early = not_leader();
      if (early) {
        auto sending = send(stream, header.version(), false, head, std::move(*early));
        co_await std::move(sending);
        break;
      }
      Held body_memory(bodies_in_flight_, length);
      if (!parser.is_done()) {
        parser.body_limit(config_.max_body_bytes);
        lowest.expires_after(
            config_.header_timeout +
            std::chrono::seconds(length / std::max<std::size_t>(config_.min_body_rate, 1)));
        auto receiving = http::async_read(stream, buffer, parser, use_tuple);
        beast::error_code problem = std::get<0>(co_await std::move(receiving));
        if (problem == http::error::body_limit) {
          Reply too_large =
              error(http::status::payload_too_large, "too_large",
                    fmt::format("the body is larger than {} bytes", config_.max_body_bytes));
          auto sending = send(stream, parser.get().version(), false, head, std::move(too_large));
          co_await std::move(sending);
          break;
        }
        if (problem) break;
      }
      lowest.expires_never();
      http::request<http::string_body> request = parser.release();
      if (path == "/v1/events") {
        auto streaming = events(stream, request);
        co_await std::move(streaming);
        break;  // an event stream ends with its connection
      }
      if (path == "/v1/backup") {
        auto sending = backup(stream, request);
        co_await std::move(sending);
        break;  // so does a backup
      }
      auto handling = handle(request, connected);
      Reply reply = co_await std::move(handling);
      wake_ticks();
      std::vector<LeasedJob> leases = std::move(reply.leases);
      auto sending = send(stream, request.version(), request.keep_alive(), head, std::move(reply));
      bool sent = co_await std::move(sending);
      if (!sent && !leases.empty()) service_.release(leases);  // never received: run elsewhere
      if (!sent || !request.keep_alive()) break;
    }
    auto closing = close(stream);
    co_await std::move(closing);
  }

  template <class Stream>
  asio::awaitable<bool> send(Stream& stream, unsigned version, bool keep_alive, bool head,
                             Reply reply) {
    http::response<http::string_body> response{reply.status, version};
    response.set(http::field::server, "ferry");
    response.set(http::field::content_type, reply.content_type);
    for (const HttpHeader& header : reply.headers) response.set(header.name, header.value);
    if (!reply.allow.empty()) response.set(http::field::allow, reply.allow);
    if (reply.status == http::status::service_unavailable)
      response.set(http::field::retry_after, "1");
    response.keep_alive(keep_alive);
    response.body() = std::move(reply.body);
    response.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(60));
    http::response_serializer<http::string_body> serializer(response);
    // HEAD: the answer GET would give, without its body.
    auto writing = head ? http::async_write_header(stream, serializer, use_tuple)
                        : http::async_write(stream, serializer, use_tuple);
    auto written = co_await std::move(writing);
    co_return !std::get<0>(written);
  }

  // The refusal of a request without the server's token, if it is one.
  template <class Header>
  std::optional<Reply> unauthorized(const Header& request) const {
    if (config_.token.empty()) return std::nullopt;
    auto header = request[http::field::authorization];
    std::string_view given = bearer_token(std::string_view(header.data(), header.size()));
    if (!given.empty() && same_secret(given, config_.token)) return std::nullopt;
    return error(http::status::unauthorized, "unauthorized",
                 "send the server's token as 'Authorization: Bearer TOKEN'");
  }

  // Without a token, any program of this machine may call the server, but a
  // web page must not: a page from elsewhere, open in a browser here, could
  // submit jobs through it, or read answers through a name of its own that
  // resolves to 127.0.0.1 (DNS rebinding). Browsers say so: they send
  // Sec-Fetch-Site or Origin. Such a request must name this machine in Host,
  // and come from a page of this server's own origin.
  template <class Header>
  static std::optional<Reply> from_foreign_page(const Header& request) {
    auto field = [&](http::field name) {
      auto value = request[name];
      return std::string_view(value.data(), value.size());
    };
    std::string_view origin = field(http::field::origin);
    if (origin.empty() && request.find("Sec-Fetch-Site") == request.end()) return std::nullopt;
    std::string_view host = field(http::field::host);
    if (!loopback_host(host))
      return error(http::status::forbidden, "forbidden",
                   fmt::format("a server without a token answers browsers only at a loopback "
                               "address (127.0.0.1, [::1] or localhost), not at '{}'",
                               host));
    if (!origin.empty() && origin != fmt::format("http://{}", host) &&
        origin != fmt::format("https://{}", host))
      return error(http::status::forbidden, "forbidden",
                   fmt::format("a server without a token answers only its own pages, not a "
                               "page of '{}'",
                               origin));
    return std::nullopt;
  }

  // "127.0.0.1:7077", "[::1]:7077", "localhost": this machine by a loopback address.
  static bool loopback_host(std::string_view host) {
    std::string_view name = host;
    if (name.starts_with('[')) {
      name = name.substr(1, name.find(']') == std::string_view::npos ? 0 : name.find(']') - 1);
    } else if (auto colon = name.rfind(':'); colon != std::string_view::npos) {
      name = name.substr(0, colon);
    }
    std::string lower(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "localhost") return true;
    boost::system::error_code not_an_address;
    auto address = asio::ip::make_address(lower, not_an_address);
    return !not_an_address && address.is_loopback();
  }

  // GET /v1/events: Server-Sent Events of job state changes. With ids, each
  // named job's current state comes first, so a client that subscribes and
  // then waits misses nothing. Writes are bounded in time; a reader that
  // falls too far behind is dropped (it reconnects and starts afresh).
  template <class Stream>
  asio::awaitable<void> events(Stream& stream, const http::request<http::string_body>& request) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view query =
        target.find('?') == std::string_view::npos ? "" : target.substr(target.find('?') + 1);
    std::optional<Reply> refused;
    std::optional<EventFilter> filter;
    if (request.method() != http::verb::get)
      refused = wrong_method(request.method(), "/v1/events", "GET");
    else if (!request.body().empty())
      refused = error(http::status::bad_request, "invalid_request", "/v1/events takes no body");
    else if (service_.subscribers() >= config_.max_event_streams)
      refused = error(http::status::service_unavailable, "busy",
                      fmt::format("{} event streams are open, the most this server allows; try "
                                  "again later",
                                  service_.subscribers()));
    if (!refused) try {
        filter = parse_event_query(query, config_.max_event_ids, service_.highest_id());
      } catch (const SpecError& problem) {
        refused = error(http::status::bad_request, "invalid_request", problem.what());
      }
    if (!refused && filter->missing)
      refused =
          error(http::status::not_found, "not_found", fmt::format("no job {}", *filter->missing));
    if (!refused && filter->flow) {
      // A flow's jobs: the ids its batch was given, and its events those of them.
      std::optional<FlowView> flow = service_.flow(filter->flow);
      if (!flow)
        refused =
            error(http::status::not_found, "not_found", fmt::format("no flow {}", filter->flow));
      else if (filter->ids)
        refused = error(http::status::bad_request, "invalid_request", "give ids or flow, not both");
      else {
        filter->ids.emplace();
        for (const FlowView::Job& job : flow->jobs) filter->ids->push_back(job.id);
      }
    }
    if (!refused && filter->ids)
      if (auto missing = service_.first_missing(*filter->ids))
        refused = error(http::status::not_found, "not_found", fmt::format("no job {}", *missing));
    if (refused) {
      auto sending = send(stream, request.version(), false, false, std::move(*refused));
      co_await std::move(sending);
      co_return;
    }
    if (filter->coalesce) {
      auto summarizing = summaries(stream, *filter);
      co_await std::move(summarizing);
      co_return;
    }

    struct Feed {
      std::string unsent;
      asio::steady_timer wake;
      bool overflowed = false;
      bool gone = false;                        // the reader closed its end
      beast::tcp_stream* connection = nullptr;  // cut at once when overflowed, even mid-write
    };
    auto feed = std::make_shared<Feed>(
        Feed{"HTTP/1.1 200 OK\r\nServer: ferry\r\nContent-Type: text/event-stream\r\n"
             "Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
             asio::steady_timer(io_)});
    feed->connection = &beast::get_lowest_layer(stream);
    unsent_events_ += feed->unsent.size();  // every byte in `unsent` is counted there
    auto take = [this, feed, filter = *filter](const JobEvent& event) {
      if (!filter.wants(event) || feed->overflowed) return;
      if (feed->unsent.size() > config_.max_unsent_per_stream ||
          unsent_events_ > config_.max_unsent_events) {
        feed->overflowed = true;  // too far behind: dropped
        feed->connection->cancel();
      } else {
        std::size_t before = feed->unsent.size();
        feed->unsent += "event: job\ndata: ";
        feed->unsent += render_event(event, filter.results);
        feed->unsent += "\n\n";
        unsent_events_ += feed->unsent.size() - before;
      }
      feed->wake.cancel();
    };
    std::uint64_t subscription = service_.subscribe(take);
    // A reader sends nothing after its request: anything readable is its
    // end of the connection. Noticed at once, not at the next write, so a
    // stream nobody follows stops costing each event's delivery.
    feed->connection->socket().async_wait(tcp::socket::wait_read,
                                          [feed](const boost::system::error_code& problem) {
                                            if (problem) return;
                                            feed->gone = true;
                                            feed->wake.cancel();
                                          });
    // The named jobs' current states go out a slice at a time between
    // writes: many finished jobs with long outputs never pile up at once.
    std::vector<JobId> named = filter->ids.value_or(std::vector<JobId>());
    std::size_t sent = 0;
    for (;;) {
      if (feed->overflowed || feed->gone) break;
      while (sent < named.size() && feed->unsent.size() < kEventSlice) {
        constexpr std::size_t kIdsAtOnce = 128;
        std::size_t end = std::min(named.size(), sent + kIdsAtOnce);
        service_.current(std::vector<JobId>(named.begin() + static_cast<std::ptrdiff_t>(sent),
                                            named.begin() + static_cast<std::ptrdiff_t>(end)),
                         take);
        sent = end;
      }
      if (feed->unsent.empty()) {
        feed->wake.expires_after(std::chrono::seconds(15));
        auto waiting = feed->wake.async_wait(use_tuple);
        auto woken = co_await std::move(waiting);
        // Expired with nothing to send: a line that also checks the reader is there.
        if (!std::get<0>(woken) && feed->unsent.empty()) {
          feed->unsent = ": keep-alive\n\n";
          unsent_events_ += feed->unsent.size();
        }
        continue;
      }
      std::string sending;
      sending.swap(feed->unsent);
      unsent_events_ -= sending.size();
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
      auto writing = asio::async_write(stream, asio::buffer(sending), use_tuple);
      auto written = co_await std::move(writing);
      if (std::get<0>(written)) break;
    }
    service_.unsubscribe(subscription);
    unsent_events_ -= feed->unsent.size();
  }

  // GET /v1/events?coalesce=S: a `changes` event at most every S seconds,
  // when jobs changed, instead of one event per change. A change costs the
  // job path an increment here, not an event rendered and written: how a
  // dashboard stays live without slowing the jobs it shows.
  template <class Stream>
  asio::awaitable<void> summaries(Stream& stream, const EventFilter& filter) {
    struct Tally {
      std::uint64_t changes = 0;
      bool gone = false;  // the reader closed its end
      asio::steady_timer wake;
    };
    auto tally = std::make_shared<Tally>(Tally{0, false, asio::steady_timer(io_)});
    std::uint64_t subscription = service_.subscribe([tally, filter](const JobEvent& event) {
      if (filter.wants(event)) ++tally->changes;
    });
    beast::tcp_stream& connection = beast::get_lowest_layer(stream);
    connection.socket().async_wait(tcp::socket::wait_read,
                                   [tally](const boost::system::error_code& problem) {
                                     if (problem) return;
                                     tally->gone = true;
                                     tally->wake.cancel();
                                   });
    // The first summary at once: the highest id tells the reader where jobs are.
    std::string sending =
        "HTTP/1.1 200 OK\r\nServer: ferry\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nConnection: close\r\n\r\nevent: changes\ndata: " +
        render_changes(0, service_.highest_id()) + "\n\n";
    auto quiet = std::chrono::milliseconds(0);
    for (;;) {
      if (!sending.empty()) {
        connection.expires_after(std::chrono::seconds(30));
        auto writing = asio::async_write(stream, asio::buffer(sending), use_tuple);
        auto written = co_await std::move(writing);
        if (std::get<0>(written)) break;
        sending.clear();
      }
      tally->wake.expires_after(*filter.coalesce);
      auto waiting = tally->wake.async_wait(use_tuple);
      co_await std::move(waiting);
      if (tally->gone) break;
      if (tally->changes > 0) {
        sending = "event: changes\ndata: " +
                  render_changes(std::exchange(tally->changes, 0), service_.highest_id()) + "\n\n";
        quiet = std::chrono::milliseconds(0);
      } else if ((quiet += *filter.coalesce) >= std::chrono::seconds(15)) {
        sending = ": keep-alive\n\n";  // also finds out whether the reader is there
        quiet = std::chrono::milliseconds(0);
      }
    }
    service_.unsubscribe(subscription);
  }

  // GET /v1/backup: a consistent copy of the database, as committed when the
  // request came, streamed as the body. It is made beside the database (off
  // the event loop: jobs go on meanwhile) and removed once sent.
  template <class Stream>
  asio::awaitable<void> backup(Stream& stream, const http::request<http::string_body>& request) {
    std::optional<Reply> refused;
    if (request.method() != http::verb::get)
      refused = wrong_method(request.method(), "/v1/backup", "GET");
    else if (!request.body().empty() || request.target() != "/v1/backup")
      refused = error(http::status::bad_request, "invalid_request",
                      "/v1/backup takes no body and no query");
    std::string copy = fmt::format("{}.backup-{}-{}.tmp", config_.db, ::getpid(), ++backups_);
    struct Removed {
      std::string path;
      ~Removed() { std::filesystem::remove(path); }
    } removed{copy};
    if (!refused) {
      auto making = asio::co_spawn(parsers_, make_backup(*store_, copy), asio::use_awaitable);
      auto [problem, unsupported] = co_await std::move(making);
      if (unsupported)
        refused = error(http::status::not_implemented, "not_supported", problem);
      else if (!problem.empty())
        refused = error(http::status::internal_server_error, "internal",
                        fmt::format("cannot back up the database: {}", problem));
    }
    if (refused) {
      auto sending = send(stream, request.version(), false, false, std::move(*refused));
      co_await std::move(sending);
      co_return;
    }
    std::ifstream file(copy, std::ios::binary);
    std::uint64_t size = std::filesystem::file_size(copy);
    std::string chunk = fmt::format(
        "HTTP/1.1 200 OK\r\nServer: ferry\r\nContent-Type: application/vnd.sqlite3\r\n"
        "Content-Disposition: attachment; filename=\"ferry-backup.db\"\r\n"
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        size);
    for (;;) {
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(60));
      auto writing = asio::async_write(stream, asio::buffer(chunk), use_tuple);
      auto written = co_await std::move(writing);
      if (std::get<0>(written)) co_return;
      chunk.resize(1 << 20);
      file.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      chunk.resize(static_cast<std::size_t>(file.gcount()));
      if (chunk.empty()) co_return;
    }
  }

  // Why the backup failed ("": it did not), and whether the store cannot make one.
  static asio::awaitable<std::pair<std::string, bool>> make_backup(store::Store& store,
                                                                   std::string path) {
    try {
      store.backup(path);
    } catch (const store::Unsupported& problem) {
      co_return std::pair<std::string, bool>(problem.what(), true);
    } catch (const std::exception& problem) {
      co_return std::pair<std::string, bool>(problem.what(), false);
    }
    co_return std::pair<std::string, bool>();
  }

  // Turns what a request raises into its answer: a request that fails is
  // answered (400 for what was wrong with it, 500 for a fault of ours) and
  // the server goes on.
  asio::awaitable<Reply> handle(const http::request<http::string_body>& request,
                                std::function<bool()> connected) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view query = target.find('?') == std::string_view::npos
                                 ? std::string_view()
                                 : target.substr(target.find('?') + 1);
    target = target.substr(0, target.find('?'));
    http::verb method = request.method() == http::verb::head ? http::verb::get : request.method();
    if (target == "/healthz")
      co_return Reply{http::status::ok, serving() ? R"({"ok":true,"role":"leader"})"
                                                  : R"({"ok":true,"role":"standby"})"};
    if (is_dashboard_path(target)) co_return dashboard_reply(method, target, request);
    std::optional<Reply> failed;
    try {
      auto routing = route(method, target, query, request.body(), std::move(connected));
      Reply reply = co_await std::move(routing);
      co_return reply;
    } catch (const SpecError& problem) {
      failed = error(http::status::bad_request, "invalid_request", problem.what());
    } catch (const std::exception& problem) {
      log(fmt::format("internal error in {} {}: {}", std::string(http::to_string(method)), target,
                      problem.what()),
          daemon::Level::error);
      failed = error(http::status::internal_server_error, "internal", problem.what());
    }
    co_return std::move(*failed);
  }

  // A file of the dashboard; 304 when the browser has this build's copy.
  static Reply dashboard_reply(http::verb method, std::string_view target,
                               const http::request<http::string_body>& request) {
    const StaticFile* file = dashboard_file(target);
    if (!file)
      return error(http::status::not_found, "not_found", fmt::format("no such path: {}", target));
    if (method != http::verb::get) return wrong_method(method, target, "GET, HEAD");
    if (!request.body().empty())
      return error(http::status::bad_request, "invalid_request",
                   fmt::format("{} takes no body", target));
    Reply reply{http::status::ok, ""};
    auto cached = request[http::field::if_none_match];
    if (std::string_view(cached.data(), cached.size()) == file->etag)
      reply.status = http::status::not_modified;
    else
      reply.body = file->body;
    reply.headers = file->headers;
    return reply;
  }

  // GET /metrics: gathered now; what needs the store is read only here.
  std::string metrics_text() {
    Time now = wall_clock();
    MetricsSnapshot snapshot{
        .jobs = &service_.metrics(),
        .kept = service_.queues(),
        .stale_completions = service_.counts().stale_completions,
        .jobs_in_memory = service_.jobs_in_memory(),
        .workers_connected = service_.workers_seen_since(now - config_.service.lease_duration),
        .workers_known = service_.workers_seen_since(now - Service::kForgetWorkersAfter),
        .event_streams = service_.subscribers(),
        .connections = connections_,
        .store = store_->stats(),
        .store_size = store_->size(),
        .process = read_process_stats()};
    return render_metrics(snapshot);
  }

  static Reply wrong_method(http::verb method, std::string_view target, std::string_view allow) {
    Reply reply = error(
        http::status::method_not_allowed, "method_not_allowed",
        fmt::format("{} takes {}, not {}", target, allow, std::string(http::to_string(method))));
    reply.allow = allow;
    return reply;
  }

  // GCC 12 destroys temporaries inside a co_await expression twice, and cannot
  // keep initializer lists in a coroutine frame: in these coroutines, every
  // awaited operand is a named local, moved into the co_await.
  asio::awaitable<Reply> route(http::verb method, std::string_view target, std::string_view query,
                               const std::string& body, std::function<bool()> connected) {
    static constexpr std::string_view kRead = "GET, HEAD";
    auto no_body = [&] {
      if (!body.empty()) throw SpecError(fmt::format("{} takes no body", target));
    };
    // Only listings take parameters: elsewhere one would be silently ignored.
    bool listing = (target == "/v1/jobs" && method == http::verb::get) || target == "/v1/workers" ||
                   target == "/v1/flows";
    if (!listing && !query.empty())
      throw SpecError(fmt::format("{} takes no query parameters", target));
    if (target == "/v1/jobs" && method == http::verb::get) {
      no_body();
      co_return Reply{http::status::ok, render_job_list(service_.list(parse_list_query(query)))};
    }
    if (target == "/v1/jobs") {
      if (method != http::verb::post) co_return wrong_method(method, target, "GET, HEAD, POST");
      Submission submission;
      if (body.size() < kOffloadedParse) {
        submission = parse_submit(body, config_.limits);
      } else {  // a big batch would stall every other client while parsed
        auto parsing = asio::co_spawn(parsers_, parse_submit_elsewhere(body, config_.limits),
                                      asio::use_awaitable);
        submission = co_await std::move(parsing);
      }
      if (std::string problem = service_.check(submission); !problem.empty())
        co_return error(http::status::bad_request, "invalid_request", problem);
      auto submitting = submit(std::move(submission));
      co_return co_await std::move(submitting);
    }
    if (target == "/v1/lease") {
      if (method != http::verb::post) co_return wrong_method(method, target, "POST");
      LeaseRequest request = parse_lease(body, config_.max_completions);
      request.connected = std::move(connected);
      auto leasing = lease(std::move(request));
      co_return co_await std::move(leasing);
    }
    if (target == "/v1/cancel" || target == "/v1/retry") {
      if (method != http::verb::post) co_return wrong_method(method, target, "POST");
      std::vector<JobId> ids = parse_ids(body, 10'000);
      auto acting =
          per_job(target == "/v1/cancel" ? &Service::cancel : &Service::retry, std::move(ids));
      co_return co_await std::move(acting);
    }
    if (target == "/v1/workers") {
      if (method != http::verb::get) co_return wrong_method(method, target, kRead);
      no_body();
      WorkersQuery workers = parse_workers_query(query);
      co_return Reply{http::status::ok,
                      render_workers(service_.workers(workers.after, workers.limit), wall_clock())};
    }
    if (target == "/v1/queues") {
      if (method != http::verb::get) co_return wrong_method(method, target, kRead);
      no_body();
      co_return Reply{http::status::ok, render_queues(service_.queue_views())};
    }
    if (target.rfind("/v1/queues/", 0) == 0) {
      std::string name = json_fields::name_of(boost::json::value(target.substr(11)), "queue");
      if (method == http::verb::get) {
        no_body();
        co_return Reply{http::status::ok, render_queue(service_.queue_view(name))};
      }
      if (method != http::verb::patch) co_return wrong_method(method, target, "GET, HEAD, PATCH");
      QueueSettings settings = patch_queue_settings(body, service_.queue_settings(name));
      auto setting =
          change([this, name, settings](
                     Service::Done done) { service_.set_queue(name, settings, std::move(done)); },
                 [this, name] {
                   return Reply{http::status::ok, render_queue(service_.queue_view(name))};
                 });
      co_return co_await std::move(setting);
    }
    if (target == "/metrics") {
      if (method != http::verb::get) co_return wrong_method(method, target, kRead);
      no_body();
      Reply reply{http::status::ok, metrics_text()};
      reply.content_type = kMetricsContentType;
      co_return reply;
    }
    if (target == "/v1/stats") {
      if (method != http::verb::get) co_return wrong_method(method, target, kRead);
      no_body();
      co_return Reply{
          http::status::ok,
          render_stats(service_.counts(), service_.subscribers(), service_.store_view(),
                       service_.jobs_in_memory(), service_.metrics().last_hour(wall_clock()))};
    }
    if (target == "/v1/flows") {
      if (method != http::verb::get) co_return wrong_method(method, target, kRead);
      no_body();
      FlowsQuery flows = parse_flows_query(query);
      co_return Reply{http::status::ok, render_flows(service_.flows(flows.before, flows.limit))};
    }
    if (target.rfind("/v1/flows/", 0) == 0) {
      std::string_view rest = target.substr(10);
      std::string_view action;
      for (std::string_view suffix : {"/cancel", "/retry"})
        if (rest.size() > suffix.size() && rest.substr(rest.size() - suffix.size()) == suffix) {
          rest.remove_suffix(suffix.size());
          action = suffix;
        }
      auto id = parse_job_id(rest);
      if (!id)
        co_return error(http::status::not_found, "not_found",
                        fmt::format("no such path: {}", target));
      std::optional<FlowView> flow = service_.flow(*id);
      if (!action.empty()) {
        if (method != http::verb::post) co_return wrong_method(method, target, "POST");
        no_body();
      } else if (method != http::verb::get) {
        co_return wrong_method(method, target, kRead);
      } else {
        no_body();
      }
      if (!flow)
        co_return error(http::status::not_found, "not_found", fmt::format("no flow {}", *id));
      if (action.empty()) co_return Reply{http::status::ok, render_flow(*flow)};
      // Cancel: every job not ended. Retry: every failed or cancelled one
      // (those skipped come back with the jobs they waited on).
      bool cancel = action == "/cancel";
      std::vector<JobId> ids;
      for (const FlowView::Job& job : flow->jobs)
        if (cancel ? !sched::is_final(job.state)
                   : job.state == sched::State::failed ||
                         (job.state == sched::State::cancelled && !job.skipped))
          ids.push_back(job.id);
      auto acting = per_job(cancel ? &Service::cancel_together : &Service::retry, std::move(ids));
      co_return co_await std::move(acting);
    }
    if (target == "/v1/schedules") {
      if (method == http::verb::get) {
        no_body();
        co_return Reply{http::status::ok, render_schedules(service_.schedules())};
      }
      if (method != http::verb::post) co_return wrong_method(method, target, "GET, HEAD, POST");
      ScheduleSpec spec = parse_schedule_spec(body, config_.limits);
      std::string name = spec.name;
      auto adding = schedule_operation(
          [this, spec = std::move(spec)](Service::Done done) mutable {
            service_.add_schedule(std::move(spec), std::move(done));
          },
          name, http::status::created);
      co_return co_await std::move(adding);
    }
    if (target.rfind("/v1/schedules/", 0) == 0) {
      std::string name(target.substr(14));
      std::string action;
      for (std::string suffix : {"/pause", "/resume", "/run"})
        if (name.size() > suffix.size() && name.ends_with(suffix)) {
          name.resize(name.size() - suffix.size());
          action = suffix;
        }
      if (!service_.schedule(name))
        co_return error(http::status::not_found, "not_found", fmt::format("no schedule {}", name));
      if (action.empty()) {
        no_body();
        if (method == http::verb::get)
          co_return Reply{http::status::ok, render_schedule(*service_.schedule(name))};
        if (method != http::verb::delete_)
          co_return wrong_method(method, target, "GET, HEAD, DELETE");
        auto removing = schedule_operation(
            [this, name](Service::Done done) { service_.remove_schedule(name, std::move(done)); },
            name, http::status::ok, true);
        co_return co_await std::move(removing);
      }
      if (method != http::verb::post) co_return wrong_method(method, target, "POST");
      no_body();
      if (action == "/run") {
        StartRun start{service_, name};
        auto waiting = callback_result<std::optional<Service::Submitted>>(io_, std::move(start));
        std::optional<Service::Submitted> made = co_await std::move(waiting);
        if (!made)
          co_return error(http::status::not_found, "not_found",
                          fmt::format("no schedule {}", name));
        if (!made->error.empty())
          co_return error(http::status::service_unavailable, "store_failed", made->error);
        co_return Reply{http::status::created, render_submitted(*made)};
      }
      auto pausing = schedule_operation(
          [this, name, paused = action == "/pause"](Service::Done done) {
            service_.pause_schedule(name, paused, std::move(done));
          },
          name, http::status::ok);
      co_return co_await std::move(pausing);
    }
    if (target.rfind("/v1/jobs/", 0) == 0) {
      std::string_view rest = target.substr(9);
      PerJobOperation action = nullptr;
      for (auto [suffix, operation] : {std::pair{std::string_view("/cancel"), &Service::cancel},
                                       std::pair{std::string_view("/retry"), &Service::retry}})
        if (rest.size() > suffix.size() && rest.substr(rest.size() - suffix.size()) == suffix) {
          rest.remove_suffix(suffix.size());
          action = operation;
        }
      auto id = parse_job_id(rest);
      if (!id)
        co_return error(http::status::not_found, "not_found",
                        fmt::format("no such path: {}", target));
      if (action) {
        if (method != http::verb::post) co_return wrong_method(method, target, "POST");
        no_body();
        if (!service_.exists(*id))
          co_return error(http::status::not_found, "not_found", fmt::format("no job {}", *id));
        std::vector<JobId> ids(1, *id);
        auto acting = per_job(action, std::move(ids));
        co_return co_await std::move(acting);
      }
      if (method != http::verb::get) co_return wrong_method(method, target, kRead);
      no_body();
      auto job = service_.job(*id);
      if (!job)
        co_return error(http::status::not_found, "not_found", fmt::format("no job {}", *id));
      co_return Reply{http::status::ok, render_job(*job)};
    }
    co_return error(http::status::not_found, "not_found", fmt::format("no such path: {}", target));
  }

  // Each bridges one Service call into the coroutine: the callback's values
  // come back as one struct.
  asio::awaitable<Reply> submit(Submission submission) {
    StartSubmit start{service_, std::move(submission)};
    auto waiting = callback_result<Service::Submitted>(io_, std::move(start));
    Service::Submitted result = co_await std::move(waiting);
    if (!result.error.empty())
      co_return error(http::status::service_unavailable, "store_failed", result.error);
    // 201 when a job was made; 200 when every one existed already (by its key).
    bool made = result.existing.size() < result.ids.size();
    co_return Reply{made ? http::status::created : http::status::ok, render_submitted(result)};
  }
  struct StartSubmit {
    Service& service;
    Submission submission;
    template <class Resume>
    void operator()(Resume resume) {
      service.submit(std::move(submission),
                     [resume](Service::Submitted result) { resume(std::move(result)); });
    }
  };

  // A change to a schedule; the answer is the schedule as it is then (or,
  // once removed, its name).
  asio::awaitable<Reply> schedule_operation(std::function<void(Service::Done)> operation,
                                            std::string name, http::status made,
                                            bool removing = false) {
    auto changing = change(std::move(operation), [this, name, made, removing] {
      std::optional<ScheduleView> view = service_.schedule(name);
      if (removing || !view) return Reply{made, render_removed_schedule(name)};
      return Reply{made, render_schedule(*view)};
    });
    co_return co_await std::move(changing);
  }
  // A change the Service makes durably; `answer` once it is made.
  struct ChangeResult {
    Service::Refusal refusal = Service::Refusal::none;
    std::string error;
  };
  asio::awaitable<Reply> change(std::function<void(Service::Done)> operation,
                                std::function<Reply()> answer) {
    StartChange start{std::move(operation)};
    auto waiting = callback_result<ChangeResult>(io_, std::move(start));
    ChangeResult result = co_await std::move(waiting);
    switch (result.refusal) {
      case Service::Refusal::none:
        break;
      case Service::Refusal::not_found:
        co_return error(http::status::not_found, "not_found", result.error);
      case Service::Refusal::exists:
        co_return error(http::status::conflict, "conflict", result.error);
      case Service::Refusal::store_failed:
        co_return error(http::status::service_unavailable, "store_failed", result.error);
    }
    co_return answer();
  }
  struct StartChange {
    std::function<void(Service::Done)> operation;
    template <class Resume>
    void operator()(Resume resume) {
      operation([resume](Service::Refusal refusal, std::string why) {
        resume(ChangeResult{refusal, std::move(why)});
      });
    }
  };
  struct StartRun {
    Service& service;
    std::string name;
    template <class Resume>
    void operator()(Resume resume) {
      service.run_schedule(
          name, [resume](std::optional<Service::Submitted> made) { resume(std::move(made)); });
    }
  };

  asio::awaitable<Reply> lease(LeaseRequest request) {
    StartLease start{service_, std::move(request)};
    auto waiting = callback_result<LeaseReply>(io_, std::move(start));
    LeaseReply reply = co_await std::move(waiting);
    if (!reply.error.empty())
      co_return error(http::status::service_unavailable, "store_failed", reply.error);
    co_return Reply{http::status::ok, render_lease(reply, config_.service.lease_duration), "",
                    std::move(reply.jobs)};
  }
  struct StartLease {
    Service& service;
    LeaseRequest request;
    template <class Resume>
    void operator()(Resume resume) {
      service.lease(std::move(request), [resume](LeaseReply reply) { resume(std::move(reply)); });
    }
  };

  // Cancel or retry: the same shape of call and of answer.
  using PerJobOperation = void (Service::*)(std::vector<JobId>, Service::PerJob);
  struct PerJobResults {
    std::vector<std::string> results;
    std::string error;
  };
  asio::awaitable<Reply> per_job(PerJobOperation operation, std::vector<JobId> ids) {
    StartPerJob start{service_, operation, ids};
    auto waiting = callback_result<PerJobResults>(io_, std::move(start));
    PerJobResults result = co_await std::move(waiting);
    if (!result.error.empty())
      co_return error(http::status::service_unavailable, "store_failed", result.error);
    co_return Reply{http::status::ok,
                    render_per_job(ids, result.results,
                                   operation == &Service::retry ? "retried" : "cancelled")};
  }
  struct StartPerJob {
    Service& service;
    PerJobOperation operation;
    std::vector<JobId> ids;
    template <class Resume>
    void operator()(Resume resume) {
      (service.*operation)(std::move(ids),
                           [resume](std::vector<std::string> results, std::string why) {
                             resume(PerJobResults{std::move(results), std::move(why)});
                           });
    }
  };

  const ServerConfig& config_;
  asio::io_context io_{1};
  asio::thread_pool parsers_{1};
  std::optional<ssl::context> tls_;
  std::unique_ptr<store::Store> store_;
  Service service_;
  std::unique_ptr<Leadership> leadership_;  // several servers on one database; else none
  bool leading_ = false;                    // won, and the Service started
  tcp::acceptor* acceptor_ = nullptr;
  asio::steady_timer tick_timer_{io_};
  Time next_tick_{0};
  std::size_t max_connections_ = 0;
  std::size_t connections_ = 0;
  std::size_t bodies_in_flight_ = 0;  // bytes
  std::size_t unsent_events_ = 0;     // bytes, over every event stream
  bool accept_paused_ = false;
  std::uint64_t backups_ = 0;  // made so far, to name the next one
};

}  // namespace

void serve(const ServerConfig& config) {
  boost::system::error_code bad_address;
  auto address = asio::ip::make_address(config.host, bad_address);
  if (bad_address) throw std::runtime_error(fmt::format("'{}' is not an IP address", config.host));
  if (config.metrics_port) {
    asio::ip::make_address(config.metrics_host, bad_address);
    if (bad_address)
      throw std::runtime_error(
          fmt::format("--metrics-listen: '{}' is not an IP address", config.metrics_host));
  }
  if (!address.is_loopback() && config.token.empty())
    throw std::runtime_error(fmt::format(
        "refusing to listen on {} without a token: give --token, --token-file or FERRY_TOKEN",
        config.host));
  // Large short-lived buffers (big request bodies, their parsed JSON) go
  // straight to the kernel and back. glibc would otherwise raise this
  // threshold after the first one and carve them from the heap, where they
  // leave holes between the long-lived job records: RSS grows by a tenth.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // A write past the file size limit then fails with EFBIG, which the store
  // reports like a full disk, instead of killing the server.
  ::signal(SIGXFSZ, SIG_IGN);
  Server server(config);
  server.run();
}

}  // namespace ferry::server
