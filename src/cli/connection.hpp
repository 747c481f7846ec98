// How client commands reach the server: --server (or FERRY_SERVER) and the
// token (--token, --token-file or FERRY_TOKEN), and the one-line errors a
// user sees when that fails.
#pragma once

#include <CLI/CLI.hpp>
#include <boost/json/value.hpp>
#include <string>

#include "client/http_client.hpp"
#include "ferry/client.hpp"

namespace ferry::cli {

class Connection {
 public:
  void add_options(CLI::App& command);
  std::string url() const;
  std::string token() const;

  // Sends a request; returns the JSON body of a 2xx answer. Anything else
  // throws ApiError with one clear line (and the exit status to use).
  boost::json::value call(const std::string& method, const std::string& target,
                          const std::string& body = {});

 private:
  std::string server_;
  std::string token_;
  std::string token_file_;
  std::unique_ptr<client::HttpClient> client_;
};

// The options of a job that `ferry submit` and `ferry map` share.
struct JobFlags {
  JobOptions options;
  void add_options(CLI::App& command);
  // The job's JSON around `work` ({"argv": ...} or {"shell": ...}).
  boost::json::object job(boost::json::object work) const;
};

struct ApiError : std::runtime_error {
  ApiError(const std::string& message, int status)
      : std::runtime_error(message), exit_status(status) {}
  int exit_status;
};

}  // namespace ferry::cli
