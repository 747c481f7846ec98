// A small blocking HTTP/1.1 client for ferry's API: one kept-alive connection,
// reconnected when the server closed it, a deadline on every request.
// Used by `ferry worker` and the client commands.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace ferry::client {

// The server could not be reached, or the connection broke mid-request.
struct ConnectionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Response {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  // `url` is "http://HOST:PORT" (a trailing slash is fine). Throws
  // std::invalid_argument for anything else.
  HttpClient(std::string url, std::string token);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request; throws ConnectionError when no answer came in time.
  Response request(const std::string& method, const std::string& target, const std::string& body,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

  const std::string& url() const { return url_; }

 private:
  struct Connection;
  std::string url_;
  std::string token_;
  std::string host_;
  std::string port_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace ferry::client
