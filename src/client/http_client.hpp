// A small blocking HTTP/1.1 client for ferry's API: one kept-alive connection,
// reconnected when the server closed it, a deadline on every request; HTTPS
// for https:// URLs (the server's certificate checked against the system's
// authorities, or those in the file FERRY_TLS_CA names). Used by `ferry
// worker`, the client commands, ferry::Client and ferry::Worker.
//
// It follows the leader among several servers (client/server_list.hpp):
// given a list, it sends to the server it last found leading, goes where a
// standby's `503 not_leader` points, and past servers it cannot reach, for
// as long as the request's timeout allows (pausing between rounds of the
// list). What it does not do is send a request again once it was sent: an
// answer lost on the way is the caller's to judge (client::send).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "client/server_list.hpp"

namespace boost::asio::ssl {
class context;
}

namespace ferry::client {

// The server could not be reached, or the connection broke mid-request.
struct ConnectionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// No server of the list could be reached: nothing was sent.
struct Unreachable : ConnectionError {
  using ConnectionError::ConnectionError;
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
  // `urls` is "http://HOST:PORT" or "https://HOST:PORT" (a trailing slash is
  // fine), or several of them separated by commas: the servers of one
  // cluster. Throws std::invalid_argument for anything else.
  HttpClient(std::string urls, std::string token);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request to the leader; throws ConnectionError when no answer
  // came in time (Unreachable when it could not be sent at all). A standby's
  // refusal is returned only when no leader was found within `timeout`.
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

  // Looking for the leader, events() and download() go on for at most this long.
  static constexpr std::chrono::seconds kFindLeader{60};

  // GET `target` on a connection of its own, the body written to the file
  // `path` as it arrives (a body of any size). A refusal returns its status
  // and body, and leaves no file. Throws ConnectionError when the answer
  // stops for longer than `silence`.
  Response download(const std::string& target, const std::string& path,
                    std::chrono::milliseconds silence = std::chrono::seconds(60));

  // From now on, a request ends early with Interrupted when `fd` becomes
  // readable (a SignalWatch's descriptor: a daemon's long poll must not
  // delay its reaction to SIGTERM). The descriptor is watched, never read.
  void interrupt_on(int fd);

  // The server it sends to now (the leader, when it found one).
  const std::string& url() const { return servers_.current(); }
  // Every server it knows of, for messages.
  std::string urls() const { return servers_.describe(); }

 private:
  struct Connection;
  void connect(Connection& connection, std::chrono::steady_clock::time_point deadline) const;
  boost::beast::http::request<boost::beast::http::string_body> make_request(
      const std::string& method, const std::string& target, const std::string& body) const;
  // Points host_, port_ and tls_ at the current server; drops the connection.
  void use_current();
  // Calls `attempt` (one exchange with the current server) until it answers
  // other than not_leader, moving through the servers, until `give_up`.
  template <class Attempt>
  Response on_leader(std::chrono::steady_clock::time_point give_up, Attempt attempt);
  // Waits `duration`, or until the interrupt descriptor is readable (throws
  // Interrupted).
  void pause(std::chrono::milliseconds duration);
  Response request_once(const std::string& method, const std::string& target,
                        const std::string& body, std::chrono::milliseconds timeout);
  Response events_once(const std::string& target,
                       const std::function<bool(std::string_view data)>& on_event,
                       std::chrono::steady_clock::time_point deadline);
  Response download_once(const std::string& target, const std::string& path,
                         std::chrono::milliseconds silence);
  ServerList servers_;
  std::string token_;
  std::string host_;
  std::string port_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // for https:// URLs
  bool https_ = false;                              // the current server's scheme
  int interrupt_fd_ = -1;
  std::unique_ptr<Connection> connection_;
};

}  // namespace ferry::client
