#include "cli/connection.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdlib>

#include "cli/commands.hpp"
#include "client/api.hpp"

namespace ferry::cli {

void Connection::add_options(CLI::App& command) {
  command.add_option("--server", server_,
                     "Server URL [default: FERRY_SERVER, else http://127.0.0.1:7077]");
  command.add_option("--token", token_, "The server's token [default: FERRY_TOKEN]");
  command.add_option("--token-file", token_file_, "Read the token from the first line of FILE");
}

void JobFlags::add_options(CLI::App& command) {
  command.add_option("--queue", options.queue, "Queue [default: default]");
  command.add_option("--name", options.name, "A name for people");
  command.add_option("--priority", options.priority, "Higher runs first [default: 0]")
      ->check(CLI::Range(-1000, 1000));
  command.add_option("--retries", options.retries, "Run a failed job again up to N more times")
      ->check(CLI::Range(0, 100));
  command
      .add_option("--retry-delay", options.retry_delay,
                  "Seconds before the first retry, doubling after [default: 1]")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--timeout", options.timeout, "Seconds an attempt may run [default: none]")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--delay", options.delay, "Seconds to wait before it may run")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--label", options.labels, "A label the worker must have (repeatable)");
}

boost::json::object JobFlags::job(boost::json::object work) const {
  return client::job_json(std::move(work), options);
}

std::string Connection::url() const {
  if (!server_.empty()) return server_;
  const char* from_environment = std::getenv("FERRY_SERVER");
  return from_environment && *from_environment ? from_environment : "http://127.0.0.1:7077";
}

std::string Connection::token() const { return resolve_token(token_, token_file_); }

boost::json::value Connection::call(const std::string& method, const std::string& target,
                                    const std::string& body) {
  if (!client_) {
    try {
      client_ = std::make_unique<client::HttpClient>(url(), token());
    } catch (const std::invalid_argument& problem) {
      throw ApiError(fmt::format("--server: {}", problem.what()), 2);
    }
  }
  client::Response response;
  try {
    response = client_->request(method, target, body);
  } catch (const client::ConnectionError& problem) {
    throw ApiError(problem.what(), 1);
  }
  boost::system::error_code bad_json;
  boost::json::value reply = boost::json::parse(response.body, bad_json);
  if (response.status >= 200 && response.status < 300 && !bad_json) return reply;
  if (response.status == 401)
    throw ApiError(fmt::format("the server at {} refused the token: give it with --token, "
                               "--token-file or FERRY_TOKEN",
                               url()),
                   1);
  std::string detail = response.body;
  if (!bad_json && reply.is_object() && reply.as_object().contains("detail"))
    detail = boost::json::value_to<std::string>(reply.at("detail"));
  throw ApiError(fmt::format("the server answered {}: {}", response.status, detail),
                 response.status == 400 ? 2 : 1);
}

}  // namespace ferry::cli
