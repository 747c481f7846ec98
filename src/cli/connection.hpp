// How client commands reach the server: --server (or FERRY_SERVER) and the
// token (--token, --token-file or FERRY_TOKEN), and the one-line errors a
// user sees when that fails.
#pragma once

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "client/http_client.hpp"
#include "ferry/client.hpp"

namespace ferry::cli {

class Connection {
 public:
  void add_options(CLI::App& command);
  std::string url() const;
  std::string token() const;

  // Sends a request; returns the JSON body of a 2xx answer. Anything else
  // throws ApiError with one clear line (and the exit status to use). With
  // `again`, a connection failure sends it again (client::send).
  boost::json::value call(const std::string& method, const std::string& target,
                          const std::string& body = {}, bool again = false);

  // GET `target` into the file `path` (HttpClient::download); a refusal or a
  // failure throws ApiError.
  void download(const std::string& target, const std::string& path);

  // Follows the jobs until each ended (client::follow_jobs); false when
  // `deadline` came first. Errors throw ApiError.
  bool follow(const std::vector<std::uint64_t>& ids,
              const std::function<void(const boost::json::object& event)>& on_final,
              std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

 private:
  client::HttpClient& http();
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

// Waits until every id ended; `on_final` sees each one's final event as it
// comes. With `bar`, a progress line with ETA is kept on stderr (and lines
// printed meanwhile go above it). Returns how many did not succeed, or
// nullopt when `deadline` came first.
std::optional<std::size_t> wait_for(
    Connection& connection, const std::vector<std::uint64_t>& ids, bool bar,
    std::optional<std::chrono::steady_clock::time_point> deadline,
    const std::function<void(const boost::json::object& event)>& on_final = {});

// A command job's work from the words after `--`: {"argv": words}, or with
// `shell` {"shell": the words joined by spaces}.
boost::json::object command_work(const std::vector<std::string>& words, bool shell);

// A value of an answer for a person: a string as it is, anything else as JSON.
std::string text(const boost::json::value& value);

struct ApiError : std::runtime_error {
  ApiError(const std::string& message, int status)
      : std::runtime_error(message), exit_status(status) {}
  int exit_status;
};

}  // namespace ferry::cli
