// The network edge of `ferry server`: HTTP/1.1 + JSON under /v1 (docs/api.md),
// on Boost.Beast with one coroutine per connection, in front of a Service.
#pragma once

#include <string>

#include "server/job_spec.hpp"
#include "server/service.hpp"

namespace ferry::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  unsigned short port = 7077;  // 0: any free port (see address_file)
  std::string db = "./ferry.db";
  std::string token;         // empty: no authentication (allowed on loopback only)
  std::string address_file;  // if set, "http://HOST:PORT" is written there once listening
  std::size_t max_body_bytes = 32 << 20;
  std::size_t max_completions = 4096;
  std::size_t max_event_ids = 1'000'000;  // jobs one event stream may name
  std::string tls_cert;                   // PEM files; when set, the server speaks only HTTPS
  std::string tls_key;
  SpecLimits limits;
  Service::Options service;
};

// Serves until SIGTERM or SIGINT, then lets pending commits finish. Throws
// std::runtime_error for what prevents starting (an address in use, a
// non-loopback address without a token, a database it cannot use).
void serve(const ServerConfig& config);

}  // namespace ferry::server
