#include "client/http_client.hpp"

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <optional>

namespace ferry::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct HttpClient::Connection {
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

HttpClient::HttpClient(std::string url, std::string token)
    : url_(std::move(url)), token_(std::move(token)), connection_(std::make_unique<Connection>()) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  const std::string scheme = "http://";
  if (url_.rfind(scheme, 0) != 0)
    throw std::invalid_argument(fmt::format("'{}' is not an http:// URL", url_));
  std::string authority = url_.substr(scheme.size());
  auto colon = authority.rfind(':');
  if (colon == std::string::npos || colon + 1 == authority.size() ||
      authority.find('/') != std::string::npos)
    throw std::invalid_argument(fmt::format("'{}' needs to be http://HOST:PORT", url_));
  host_ = authority.substr(0, colon);
  port_ = authority.substr(colon + 1);
  if (host_.size() >= 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
}

HttpClient::~HttpClient() = default;

Response HttpClient::request(const std::string& method, const std::string& target,
                             const std::string& body, std::chrono::milliseconds timeout) {
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

  Connection& c = *connection_;
  // Runs the pending operations until done or the deadline; returns their error.
  auto run = [&](beast::error_code& error) {
    c.io.restart();
    c.io.run();
    return error;
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = !c.stream;
    beast::error_code error;
    if (fresh) {
      c.stream.emplace(c.io);
      c.buffer.clear();
      asio::ip::tcp::resolver resolver(c.io);
      auto endpoints = resolver.resolve(host_, port_, error);
      if (error)
        throw ConnectionError(fmt::format("cannot resolve {}: {}", host_, error.message()));
      c.stream->expires_after(timeout);
      c.stream->async_connect(endpoints, [&](beast::error_code e, auto) { error = e; });
      if (run(error)) {
        c.stream.reset();
        throw ConnectionError(
            fmt::format("cannot reach the server at {}: {}", url_, error.message()));
      }
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    c.stream->expires_after(timeout);
    http::async_write(*c.stream, request, [&](beast::error_code e, std::size_t) { error = e; });
    if (!run(error))
      http::async_read(*c.stream, c.buffer, parser,
                       [&](beast::error_code e, std::size_t) { error = e; });
    if (!error) run(error);
    if (!error) {
      if (!parser.get().keep_alive()) c.stream.reset();
      return {static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
    }
    c.stream.reset();
    // A kept-alive connection the server closed meanwhile: try once on a new one.
    if (fresh || error == beast::error::timeout)
      throw ConnectionError(
          fmt::format("no answer from the server at {}: {}", url_, error.message()));
  }
  throw ConnectionError(fmt::format("no answer from the server at {}", url_));
}

}  // namespace ferry::client
