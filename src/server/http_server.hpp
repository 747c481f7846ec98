// The network edge of `ferry server`: HTTP/1.1 + JSON under /v1 (docs/api.md),
// on Boost.Beast with one coroutine per connection, in front of a Service.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "server/job_spec.hpp"
#include "server/service.hpp"

namespace ferry::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  unsigned short port = 7077;     // 0: any free port (see address_file)
  std::string db = "./ferry.db";  // an SQLite file, or postgresql://...
  std::string token;              // empty: no authentication (allowed on loopback only)
  std::string address_file;       // if set, "http://HOST:PORT" is written there once listening
  std::size_t max_body_bytes = 32 << 20;
  std::size_t max_completions = 4096;
  std::size_t max_event_ids = 1'000'000;  // jobs one event stream may name
  // What a client may hold. Past max_connections a new connection gets a 503
  // and is closed (it is also kept under the descriptor limit); bodies are
  // read only after the token was checked, and at most max_bodies_in_flight
  // bytes of them at once (else 503: try again).
  std::size_t max_connections = 4096;
  std::size_t max_event_streams = 1024;
  std::size_t max_bodies_in_flight = 256 << 20;
  std::chrono::milliseconds idle_timeout{60'000};    // a kept-alive connection with no request
  std::chrono::milliseconds header_timeout{10'000};  // from a request's first byte to its body
  std::size_t min_body_rate = 256 << 10;  // bytes/s a body must arrive at (after header_timeout)
  // An event stream's unsent events: a stream past the first, or one that
  // would take all streams past the second, is closed (its client reconnects).
  std::size_t max_unsent_per_stream = 8 << 20;
  std::size_t max_unsent_events = 256 << 20;
  // When a port is set, GET /metrics is also served on this address, over
  // plain HTTP and without the token (0: any free port, logged).
  std::string metrics_host = "127.0.0.1";
  std::optional<unsigned short> metrics_port;
  std::string tls_cert;  // PEM files; when set, the server speaks only HTTPS
  std::string tls_key;
  // With a PostgreSQL database several servers share it, one leading
  // (server/leadership.hpp): how others name this one, the URL clients
  // should use for it (empty: its address), and the leader's lease.
  std::string name;  // empty: HOST-PID
  std::string advertise;
  std::chrono::milliseconds leader_lease{3000};
  SpecLimits limits;
  Service::Options service;
};

// Serves until SIGTERM or SIGINT, then lets pending commits finish. Throws
// std::runtime_error for what prevents starting (an address in use, a
// non-loopback address without a token, a database it cannot use).
void serve(const ServerConfig& config);

}  // namespace ferry::server
