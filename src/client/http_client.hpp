// A small blocking HTTP/1.1 client for ferry's API: one kept-alive connection,
// reconnected when the server closed it, a deadline on every request; HTTPS
// for https:// URLs (the server's certificate checked against the system's
// authorities, or those in the file FERRY_TLS_CA names). Used by `ferry
// worker`, the client commands, ferry::Client and ferry::Worker.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace ferry::client {

// The server could not be reached, or the connection broke mid-request.
struct ConnectionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An event stream ran past its deadline.
struct DeadlineReached : ConnectionError {
  using ConnectionError::ConnectionError;
};

// The descriptor given to interrupt_on() became readable mid-request.
struct Interrupted : ConnectionError {
  using ConnectionError::ConnectionError;
};

struct Response {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  // `url` is "http://HOST:PORT" or "https://HOST:PORT" (a trailing slash is
  // fine). Throws std::invalid_argument for anything else.
  HttpClient(std::string url, std::string token);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request; throws ConnectionError when no answer came in time.
  Response request(const std::string& method, const std::string& target, const std::string& body,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Follows the Server-Sent Events of GET `target` on a connection of its
  // own: `on_event` gets each event's data, and returns false to stop (the
  // answer is then 200). A refusal returns its status and body. Throws
  // DeadlineReached at `deadline`, ConnectionError when the stream breaks or
  // stays silent longer than kSilence.
  Response events(const std::string& target,
                  const std::function<bool(std::string_view data)>& on_event,
                  std::chrono::steady_clock::time_point deadline);
  static constexpr std::chrono::seconds kSilence{50};

  // From now on, a request ends early with Interrupted when `fd` becomes
  // readable (a SignalWatch's descriptor: a daemon's long poll must not
  // delay its reaction to SIGTERM). The descriptor is watched, never read.
  void interrupt_on(int fd);

  const std::string& url() const { return url_; }

 private:
  struct Connection;
  void connect(Connection& connection, std::chrono::steady_clock::time_point deadline) const;
  boost::beast::http::request<boost::beast::http::string_body> make_request(
      const std::string& method, const std::string& target, const std::string& body) const;
  std::string url_;
  std::string token_;
  std::string host_;
  std::string port_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // for https:// URLs
  std::unique_ptr<Connection> connection_;
};

}  // namespace ferry::client
