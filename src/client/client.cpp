#include "ferry/client.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <thread>

#include "client/api.hpp"

namespace ferry {
namespace client {

std::string server_or_default(std::string given) {
  if (!given.empty()) return given;
  const char* from_environment = std::getenv("FERRY_SERVER");
  return from_environment && *from_environment ? from_environment : "http://127.0.0.1:7077";
}

std::string token_or_default(std::string given) {
  if (!given.empty()) return given;
  const char* from_environment = std::getenv("FERRY_TOKEN");
  return from_environment ? from_environment : "";
}

boost::json::value call_api(HttpClient& http, const std::string& method, const std::string& target,
                            const std::string& body, std::chrono::milliseconds timeout) {
  Response response = http.request(method, target, body, timeout);
  boost::system::error_code bad_json;
  boost::json::value reply = boost::json::parse(response.body, bad_json);
  if (response.status >= 200 && response.status < 300 && !bad_json) return reply;
  if (response.status == 401)
    throw Error(fmt::format("the server at {} refused the token", http.url()));
  std::string detail = response.body;
  if (!bad_json && reply.is_object() && reply.as_object().contains("detail"))
    detail = boost::json::value_to<std::string>(reply.at("detail"));
  throw Error(fmt::format("the server answered {}: {}", response.status, detail));
}

boost::json::object job_json(boost::json::object work, const JobOptions& options) {
  namespace json = boost::json;
  json::object job{{work.contains("function") ? "call" : "command", std::move(work)},
                   {"priority", options.priority},
                   {"retries", options.retries},
                   {"retry_delay", options.retry_delay},
                   {"timeout", options.timeout},
                   {"delay", options.delay},
                   {"labels", json::array(options.labels.begin(), options.labels.end())}};
  if (!options.queue.empty()) job["queue"] = options.queue;
  if (!options.name.empty()) job["name"] = options.name;
  return job;
}

}  // namespace client

namespace {

namespace json = boost::json;

std::optional<JobResult> ended(const json::object& job) {
  std::string state(job.at("state").as_string());
  if (state != "succeeded" && state != "failed" && state != "cancelled") return std::nullopt;
  JobResult result;
  result.id = job.at("id").to_number<std::uint64_t>();
  result.state = state;
  result.reason = job.at("reason").as_string();
  const json::array& attempts = job.at("attempts").as_array();
  if (!attempts.empty()) {
    const json::object& last = attempts.back().as_object();
    if (result.reason.empty()) result.reason = last.at("reason").as_string();
    if (const json::value* value = last.if_contains("result")) result.value = *value;
    if (const json::value* out = last.if_contains("stdout")) result.stdout_tail = out->as_string();
    if (const json::value* err = last.if_contains("stderr")) result.stderr_tail = err->as_string();
  }
  return result;
}

}  // namespace

struct Client::Impl {
  client::HttpClient http;
  json::value api(const std::string& method, const std::string& target,
                  const std::string& body = {}) {
    try {
      return client::call_api(http, method, target, body);
    } catch (const client::ConnectionError& problem) {
      throw Error(problem.what());
    }
  }
  std::vector<std::uint64_t> submit(json::array jobs) {
    json::value reply =
        api("POST", "/v1/jobs", json::serialize(json::object{{"jobs", std::move(jobs)}}));
    std::vector<std::uint64_t> ids;
    for (const json::value& id : reply.at("ids").as_array())
      ids.push_back(id.to_number<std::uint64_t>());
    return ids;
  }
};

Client::Client(std::string server, std::string token) {
  try {
    impl_.reset(new Impl{client::HttpClient(client::server_or_default(std::move(server)),
                                            client::token_or_default(std::move(token)))});
  } catch (const std::invalid_argument& problem) {
    throw Error(problem.what());
  }
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

std::uint64_t Client::call(const std::string& function, json::value args,
                           const JobOptions& options) {
  return call_many(function, {std::move(args)}, options).at(0);
}

std::vector<std::uint64_t> Client::call_many(const std::string& function,
                                             const std::vector<json::value>& args,
                                             const JobOptions& options) {
  json::array jobs;
  for (const json::value& arg : args)
    jobs.push_back(client::job_json(json::object{{"function", function}, {"args", arg}}, options));
  return impl_->submit(std::move(jobs));
}

std::uint64_t Client::command(const std::vector<std::string>& argv, const JobOptions& options) {
  json::array jobs;
  jobs.push_back(
      client::job_json(json::object{{"argv", json::array(argv.begin(), argv.end())}}, options));
  return impl_->submit(std::move(jobs)).at(0);
}

JobResult Client::wait(std::uint64_t id, std::optional<std::chrono::milliseconds> timeout) {
  JobResult result;
  wait_all(
      {id}, [&](const JobResult& given) { result = given; }, timeout);
  return result;
}

void Client::wait_all(const std::vector<std::uint64_t>& ids,
                      const std::function<void(const JobResult&)>& on_result,
                      std::optional<std::chrono::milliseconds> timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::hours(24 * 365));
  std::vector<std::uint64_t> pending = ids;
  auto pause = std::chrono::microseconds(200);
  while (!pending.empty()) {
    std::erase_if(pending, [&](std::uint64_t id) {
      auto result = ended(impl_->api("GET", fmt::format("/v1/jobs/{}", id)).as_object());
      if (result) on_result(*result);
      return result.has_value();
    });
    if (pending.empty()) return;
    if (std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError(fmt::format("{} of {} jobs had not ended within the timeout",
                                     pending.size(), ids.size()));
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(200));
  }
}

}  // namespace ferry
