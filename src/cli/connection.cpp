#include "cli/connection.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "client/api.hpp"
#include "run/progress.hpp"
#include "server/api_limits.hpp"

namespace ferry::cli {

void Connection::add_options(CLI::App& command) {
  command.add_option(
      "--server", server_,
      "Server URL, http:// or https://, or the comma-separated URLs of the servers sharing one "
      "database (the leader is found and followed) [default: FERRY_SERVER, else "
      "http://127.0.0.1:7077]");
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
  command
      .add_option("--concurrency-key", options.concurrency_key,
                  "Jobs sharing KEY run at most the queue's concurrency limit at a time "
                  "(default 1)")
      ->check(CLI::Validator(
          [](const std::string& key) { return key.empty() ? "must not be empty" : ""; }, "KEY"));
  command
      .add_option("--keep", options.keep,
                  "Seconds the server keeps it once ended (0: for ever) [default: the server's]")
      ->check(CLI::NonNegativeNumber);
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

client::HttpClient& Connection::http() {
  if (!client_) {
    try {
      client_ = std::make_unique<client::HttpClient>(url(), token());
    } catch (const std::invalid_argument& problem) {
      throw ApiError(fmt::format("--server: {}", problem.what()), 2);
    }
  }
  return *client_;
}

bool Connection::follow(const std::vector<std::uint64_t>& ids,
                        const std::function<void(const boost::json::object&)>& on_final,
                        std::optional<std::chrono::steady_clock::time_point> deadline) {
  try {
    client::follow_jobs(http(), ids, on_final,
                        deadline.value_or(std::chrono::steady_clock::time_point::max()));
    return true;
  } catch (const client::DeadlineReached&) {
    return false;
  } catch (const client::ConnectionError& problem) {
    throw ApiError(problem.what(), 1);
  } catch (const Error& problem) {
    throw ApiError(problem.what(), 1);
  }
}

boost::json::value Connection::call(const std::string& method, const std::string& target,
                                    const std::string& body, bool again) {
  client::Response response;
  try {
    response = client::send(http(), method, target, body, std::chrono::seconds(30), again);
  } catch (const client::ConnectionError& problem) {
    throw ApiError(problem.what(), 1);
  }
  boost::system::error_code bad_json;
  boost::json::value reply =
      boost::json::parse(response.body, bad_json, {}, server::api_parse_options());
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

void Connection::download(const std::string& target, const std::string& path) {
  client::Response response;
  try {
    response = http().download(target, path);
  } catch (const client::ConnectionError& problem) {
    throw ApiError(problem.what(), 1);
  }
  if (response.status == 200) return;
  boost::system::error_code bad_json;
  boost::json::value reply = boost::json::parse(response.body, bad_json);
  std::string detail = !bad_json && reply.is_object() && reply.as_object().contains("detail")
                           ? boost::json::value_to<std::string>(reply.at("detail"))
                           : response.body;
  throw ApiError(fmt::format("the server answered {}: {}", response.status, detail), 1);
}

std::optional<std::size_t> wait_for(
    Connection& connection, const std::vector<std::uint64_t>& ids, bool bar,
    std::optional<std::chrono::steady_clock::time_point> deadline,
    const std::function<void(const boost::json::object& event)>& on_final) {
  auto started = std::chrono::steady_clock::now();
  auto drawn = started - std::chrono::seconds(1);
  run::Progress progress;
  progress.total = ids.size();
  auto draw = [&](bool now) {
    auto time = std::chrono::steady_clock::now();
    if (!bar || (!now && time - drawn < std::chrono::milliseconds(100))) return;
    drawn = time;
    progress.elapsed = std::chrono::duration<double>(time - started).count();
    progress.running = progress.total - progress.succeeded - progress.failed;
    std::cerr << "\r\033[K" << run::render_progress(progress, 79) << std::flush;
  };
  draw(true);
  bool ended = connection.follow(
      ids,
      [&](const boost::json::object& event) {
        (event.at("state").as_string() == "succeeded" ? progress.succeeded : progress.failed)++;
        if (on_final) {
          if (bar) std::cerr << "\r\033[K" << std::flush;
          on_final(event);
          std::cout << std::flush;
          draw(true);
        }
        draw(false);
      },
      deadline);
  if (bar) {
    draw(true);
    std::cerr << "\n";
  }
  if (!ended) return std::nullopt;
  return progress.failed;
}

std::string text(const boost::json::value& value) {
  return value.is_string() ? std::string(value.as_string()) : boost::json::serialize(value);
}

boost::json::object command_work(const std::vector<std::string>& words, bool shell) {
  if (!shell) return {{"argv", boost::json::array(words.begin(), words.end())}};
  std::string script;
  for (const std::string& word : words) script += (script.empty() ? "" : " ") + word;
  return {{"shell", script}};
}

}  // namespace ferry::cli
