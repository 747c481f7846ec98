#include "server/http_server.hpp"

#include <fmt/format.h>
#include <malloc.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <chrono>
#include <fstream>
#include <iostream>

#include "server/api_json.hpp"

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
};

Reply error(http::status status, std::string_view code, std::string_view detail) {
  return {status, render_error(code, detail)};
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

// A stream of events that nobody reads: dropped rather than held.
constexpr std::size_t kMaxUnsentEvents = 16 << 20;
constexpr std::size_t kEventSlice = 256 << 10;

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

class Server {
 public:
  explicit Server(const ServerConfig& config)
      : config_(config),
        store_(store::open_sqlite_store(config.db)),
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
  }

  void run() {
    service_.start();
    tcp::endpoint endpoint(asio::ip::make_address(config_.host), config_.port);
    tcp::acceptor acceptor(io_);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    boost::system::error_code bind_error;
    acceptor.bind(endpoint, bind_error);
    if (bind_error)
      throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", config_.host, config_.port,
                                           bind_error.message()));
    acceptor.listen();
    std::string address = fmt::format("{}://{}:{}", tls_ ? "https" : "http", config_.host,
                                      acceptor.local_endpoint().port());
    if (!config_.address_file.empty()) {
      std::ofstream(config_.address_file + ".tmp") << address << "\n";
      std::rename((config_.address_file + ".tmp").c_str(), config_.address_file.c_str());
    }
    std::cerr << "ferry server: listening on " << address << ", database " << config_.db
              << (config_.token.empty() ? ", no token (loopback only)" : "") << std::endl;

    asio::signal_set signals(io_, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
      std::cerr << "ferry server: stopping" << std::endl;
      acceptor.close();
      store_->flush();  // what was accepted is durable before we go
      io_.stop();
    });
    asio::co_spawn(io_, accept(acceptor), asio::detached);
    asio::co_spawn(io_, ticks(), asio::detached);
    io_.run();
    store_->flush();
  }

 private:
  asio::awaitable<void> accept(tcp::acceptor& acceptor) {
    for (;;) {
      auto accepted = co_await acceptor.async_accept(use_tuple);
      if (std::get<0>(accepted) == asio::error::operation_aborted) co_return;
      if (std::get<0>(accepted)) continue;  // e.g. out of descriptors: keep serving the others
      beast::tcp_stream stream(std::move(std::get<1>(accepted)));
      if (tls_)
        asio::co_spawn(io_, tls_session(std::move(stream)), asio::detached);
      else
        asio::co_spawn(io_, session(std::move(stream)), asio::detached);
    }
  }

  // Leases expire, delayed jobs come due, long polls time out: the service
  // says when next, at least once a second.
  asio::awaitable<void> ticks() {
    asio::steady_timer timer(io_);
    for (;;) {
      auto wait = std::chrono::milliseconds(1000);
      if (auto next = service_.next_tick())
        wait = std::clamp(*next - wall_clock(), std::chrono::milliseconds(0), wait);
      timer.expires_after(wait);
      co_await timer.async_wait(use_tuple);
      service_.tick();
    }
  }

  asio::awaitable<void> tls_session(beast::tcp_stream plain) {
    TlsStream stream(std::move(plain), *tls_);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
    auto handshake = stream.async_handshake(ssl::stream_base::server, use_tuple);
    auto shaken = co_await std::move(handshake);
    if (std::get<0>(shaken)) co_return;  // not TLS, or a certificate the client refused
    auto serving = session(std::move(stream));
    co_await std::move(serving);
  }

  template <class Stream>
  asio::awaitable<void> session(Stream stream) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(config_.max_body_bytes);
      parser.header_limit(16 * 1024);
      // an idle keep-alive connection
      beast::get_lowest_layer(stream).expires_after(std::chrono::minutes(5));
      auto read = co_await http::async_read(stream, buffer, parser, use_tuple);
      beast::error_code problem = std::get<0>(read);
      if (problem == http::error::body_limit) {
        Reply too_large =
            error(http::status::payload_too_large, "too_large",
                  fmt::format("the body is larger than {} bytes", config_.max_body_bytes));
        auto sending = send(stream, 11, false, std::move(too_large));
        co_await std::move(sending);
        break;
      }
      if (problem) break;  // closed, timed out, or not HTTP
      beast::get_lowest_layer(stream).expires_never();
      http::request<http::string_body> request = parser.release();
      std::string_view target(request.target().data(), request.target().size());
      if (target.substr(0, target.find('?')) == "/v1/events") {
        auto streaming = events(stream, request);
        co_await std::move(streaming);
        break;  // an event stream ends with its connection
      }
      auto handling = handle(request);
      Reply reply = co_await std::move(handling);
      auto sending = send(stream, request.version(), request.keep_alive(), std::move(reply));
      if (!co_await std::move(sending)) break;
      if (!request.keep_alive()) break;
    }
    auto closing = close(stream);
    co_await std::move(closing);
  }

  template <class Stream>
  asio::awaitable<bool> send(Stream& stream, unsigned version, bool keep_alive, Reply reply) {
    http::response<http::string_body> response{reply.status, version};
    response.set(http::field::server, "ferry");
    response.set(http::field::content_type, "application/json");
    response.keep_alive(keep_alive);
    response.body() = std::move(reply.body);
    response.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(60));
    auto written = co_await http::async_write(stream, response, use_tuple);
    co_return !std::get<0>(written);
  }

  // The refusal of a request without the server's token, if it is one.
  std::optional<Reply> unauthorized(const http::request<http::string_body>& request) const {
    if (config_.token.empty()) return std::nullopt;
    auto header = request[http::field::authorization];
    std::string_view given(header.data(), header.size());
    if (given.substr(0, 7) == "Bearer " && same_secret(given.substr(7), config_.token))
      return std::nullopt;
    return error(http::status::unauthorized, "unauthorized",
                 "send the server's token as 'Authorization: Bearer TOKEN'");
  }

  // GET /v1/events: Server-Sent Events of job state changes. With ids, each
  // named job's current state comes first, so a client that subscribes and
  // then waits misses nothing. Writes are bounded in time; a reader that
  // falls 16 MiB behind is dropped (it reconnects and starts afresh).
  template <class Stream>
  asio::awaitable<void> events(Stream& stream, const http::request<http::string_body>& request) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view query =
        target.find('?') == std::string_view::npos ? "" : target.substr(target.find('?') + 1);
    std::optional<Reply> refused = unauthorized(request);
    std::optional<EventFilter> filter;
    if (!refused && request.method() != http::verb::get)
      refused = wrong_method(request.method(), "/v1/events");
    if (!refused) try {
        filter = parse_event_query(query, config_.max_event_ids, service_.highest_id());
      } catch (const SpecError& problem) {
        refused = error(http::status::bad_request, "invalid_request", problem.what());
      }
    if (!refused && filter->missing)
      refused =
          error(http::status::not_found, "not_found", fmt::format("no job {}", *filter->missing));
    for (std::size_t i = 0; !refused && filter->ids && i < filter->ids->size(); ++i)
      if (!service_.exists((*filter->ids)[i]))
        refused = error(http::status::not_found, "not_found",
                        fmt::format("no job {}", (*filter->ids)[i]));
    if (refused) {
      auto sending = send(stream, request.version(), false, std::move(*refused));
      co_await std::move(sending);
      co_return;
    }

    struct Feed {
      std::string unsent;
      asio::steady_timer wake;
    };
    auto feed = std::make_shared<Feed>(
        Feed{"HTTP/1.1 200 OK\r\nServer: ferry\r\nContent-Type: text/event-stream\r\n"
             "Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
             asio::steady_timer(io_)});
    auto take = [feed, filter = *filter](const JobEvent& event) {
      if (!filter.wants(event) || feed->unsent.size() > kMaxUnsentEvents) return;
      feed->unsent += "event: job\ndata: ";
      feed->unsent += render_event(event, filter.results);
      feed->unsent += "\n\n";
      feed->wake.cancel();
    };
    std::uint64_t subscription = service_.subscribe(take);
    // The named jobs' current states go out a slice at a time between
    // writes: many finished jobs with long outputs never pile up at once.
    std::vector<JobId> named = filter->ids.value_or(std::vector<JobId>());
    std::size_t sent = 0;
    for (;;) {
      if (feed->unsent.size() > kMaxUnsentEvents) break;
      while (sent < named.size() && feed->unsent.size() < kEventSlice)
        service_.current(named[sent++], take);
      if (feed->unsent.empty()) {
        feed->wake.expires_after(std::chrono::seconds(15));
        auto waiting = feed->wake.async_wait(use_tuple);
        auto woken = co_await std::move(waiting);
        // Expired with nothing to send: a line that also checks the reader is there.
        if (!std::get<0>(woken) && feed->unsent.empty()) feed->unsent = ": keep-alive\n\n";
        continue;
      }
      std::string sending;
      sending.swap(feed->unsent);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(60));
      auto writing = asio::async_write(stream, asio::buffer(sending), use_tuple);
      auto written = co_await std::move(writing);
      if (std::get<0>(written)) break;
    }
    service_.unsubscribe(subscription);
  }

  asio::awaitable<Reply> handle(const http::request<http::string_body>& request) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view query = target.find('?') == std::string_view::npos
                                 ? std::string_view()
                                 : target.substr(target.find('?') + 1);
    target = target.substr(0, target.find('?'));
    if (target == "/healthz") co_return Reply{http::status::ok, R"({"ok":true})"};
    if (auto refused = unauthorized(request)) co_return std::move(*refused);
    std::optional<Reply> rejected;
    try {
      auto routing = route(request.method(), target, query, request.body());
      Reply reply = co_await std::move(routing);
      co_return reply;
    } catch (const SpecError& problem) {
      rejected = error(http::status::bad_request, "invalid_request", problem.what());
    }
    co_return std::move(*rejected);
  }

  static Reply wrong_method(http::verb method, std::string_view target) {
    return error(http::status::method_not_allowed, "method_not_allowed",
                 fmt::format("{} does not take {}", target, std::string(http::to_string(method))));
  }

  // GCC 12 destroys temporaries inside a co_await expression twice, and cannot
  // keep initializer lists in a coroutine frame: in these coroutines, every
  // awaited operand is a named local, moved into the co_await.
  asio::awaitable<Reply> route(http::verb method, std::string_view target, std::string_view query,
                               const std::string& body) {
    if (target == "/v1/jobs" && method == http::verb::get)
      co_return Reply{http::status::ok, render_job_list(service_.list(parse_list_query(query)))};
    if (target == "/v1/jobs") {
      if (method != http::verb::post) co_return wrong_method(method, target);
      std::vector<JobSpec> specs = parse_submit(body, config_.limits);
      auto submitting = submit(std::move(specs));
      co_return co_await std::move(submitting);
    }
    if (target == "/v1/lease") {
      if (method != http::verb::post) co_return wrong_method(method, target);
      LeaseRequest request = parse_lease(body, config_.max_completions);
      auto leasing = lease(std::move(request));
      co_return co_await std::move(leasing);
    }
    if (target == "/v1/cancel" || target == "/v1/retry") {
      if (method != http::verb::post) co_return wrong_method(method, target);
      std::vector<JobId> ids = parse_ids(body, 10'000);
      auto acting =
          per_job(target == "/v1/cancel" ? &Service::cancel : &Service::retry, std::move(ids));
      co_return co_await std::move(acting);
    }
    if (target == "/v1/workers") {
      if (method != http::verb::get) co_return wrong_method(method, target);
      co_return Reply{http::status::ok, render_workers(service_.workers(), wall_clock())};
    }
    if (target == "/v1/queues") {
      if (method != http::verb::get) co_return wrong_method(method, target);
      co_return Reply{http::status::ok, render_queues(service_.queues())};
    }
    if (target == "/v1/stats") {
      if (method != http::verb::get) co_return wrong_method(method, target);
      co_return Reply{http::status::ok, render_stats(service_.counts(), service_.subscribers())};
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
        if (method != http::verb::post) co_return wrong_method(method, target);
        std::vector<JobId> ids(1, *id);
        auto acting = per_job(action, std::move(ids));
        co_return co_await std::move(acting);
      }
      if (method != http::verb::get) co_return wrong_method(method, target);
      auto job = service_.job(*id);
      if (!job)
        co_return error(http::status::not_found, "not_found", fmt::format("no job {}", *id));
      co_return Reply{http::status::ok, render_job(*job)};
    }
    co_return error(http::status::not_found, "not_found", fmt::format("no such path: {}", target));
  }

  // Each bridges one Service call into the coroutine: the callback's values
  // come back as one struct.
  struct Submitted {
    std::vector<JobId> ids;
    std::string error;
  };
  asio::awaitable<Reply> submit(std::vector<JobSpec> specs) {
    StartSubmit start{service_, std::move(specs)};
    auto waiting = callback_result<Submitted>(io_, std::move(start));
    Submitted result = co_await std::move(waiting);
    if (!result.error.empty())
      co_return error(http::status::service_unavailable, "store_failed", result.error);
    co_return Reply{http::status::created, render_submitted(result.ids)};
  }
  struct StartSubmit {
    Service& service;
    std::vector<JobSpec> specs;
    template <class Resume>
    void operator()(Resume resume) {
      service.submit(std::move(specs), [resume](std::vector<JobId> ids, std::string why) {
        resume(Submitted{std::move(ids), std::move(why)});
      });
    }
  };

  asio::awaitable<Reply> lease(LeaseRequest request) {
    StartLease start{service_, std::move(request)};
    auto waiting = callback_result<LeaseReply>(io_, std::move(start));
    LeaseReply reply = co_await std::move(waiting);
    if (!reply.error.empty())
      co_return error(http::status::service_unavailable, "store_failed", reply.error);
    co_return Reply{http::status::ok, render_lease(reply)};
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
                                   operation == &Service::cancel ? "cancelled" : "retried")};
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
  std::optional<ssl::context> tls_;
  std::unique_ptr<store::Store> store_;
  Service service_;
};

}  // namespace

void serve(const ServerConfig& config) {
  boost::system::error_code bad_address;
  auto address = asio::ip::make_address(config.host, bad_address);
  if (bad_address) throw std::runtime_error(fmt::format("'{}' is not an IP address", config.host));
  if (!address.is_loopback() && config.token.empty())
    throw std::runtime_error(fmt::format(
        "refusing to listen on {} without a token: give --token, --token-file or FERRY_TOKEN",
        config.host));
  // Large short-lived buffers (big request bodies, their parsed JSON) go
  // straight to the kernel and back. glibc would otherwise raise this
  // threshold after the first one and carve them from the heap, where they
  // leave holes between the long-lived job records: RSS grows by a tenth.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  Server server(config);
  server.run();
}

}  // namespace ferry::server
