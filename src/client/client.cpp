#include "ferry/client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <thread>

#include "client/api.hpp"
#include "server/api_limits.hpp"

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

namespace {

// The JSON of a 2xx answer; else ferry::Error with the server's detail.
boost::json::value checked(const HttpClient& http, const Response& response) {
  boost::system::error_code bad_json;
  boost::json::value reply =
      boost::json::parse(response.body, bad_json, {}, server::api_parse_options());
  if (response.status >= 200 && response.status < 300 && !bad_json) return reply;
  if (response.status == 401)
    throw Error(fmt::format("the server at {} refused the token", http.url()));
  std::string detail = response.body;
  if (!bad_json && reply.is_object() && reply.as_object().contains("detail"))
    detail = boost::json::value_to<std::string>(reply.at("detail"));
  throw Error(fmt::format("the server answered {}: {}", response.status, detail));
}

// "1-3,7": ids as ranges, the form GET /v1/events takes.
std::string id_ranges(std::vector<std::uint64_t>::const_iterator first,
                      std::vector<std::uint64_t>::const_iterator last) {
  std::string text;
  while (first != last) {
    auto run_end = first + 1;
    while (run_end != last && *run_end == *(run_end - 1) + 1) ++run_end;
    text += (text.empty() ? "" : ",") + std::to_string(*first);
    if (run_end - first > 1) text += fmt::format("-{}", *(run_end - 1));
    first = run_end;
  }
  return text;
}

}  // namespace

Response send(HttpClient& http, const std::string& method, const std::string& target,
              const std::string& body, std::chrono::milliseconds timeout, bool again) {
  auto give_up = std::chrono::steady_clock::now() + kSendAgainFor;
  std::chrono::milliseconds backoff{100};
  for (;;) {
    try {
      return http.request(method, target, body, timeout);
    } catch (const ConnectionError&) {
      if (!again || std::chrono::steady_clock::now() + backoff > give_up) throw;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

bool every_job_has_a_key(const boost::json::array& jobs) {
  return !jobs.empty() && std::all_of(jobs.begin(), jobs.end(), [](const boost::json::value& job) {
    const boost::json::value* key = job.as_object().if_contains("key");
    return key && key->is_string() && !key->as_string().empty();
  });
}

boost::json::value call_api(HttpClient& http, const std::string& method, const std::string& target,
                            const std::string& body, std::chrono::milliseconds timeout,
                            bool again) {
  return checked(http, send(http, method, target, body, timeout, again));
}

void follow_jobs(HttpClient& http, std::vector<std::uint64_t> ids,
                 const std::function<void(const boost::json::object& event)>& on_final,
                 std::chrono::steady_clock::time_point deadline) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  // A few thousand ids per stream keep the request line short; the streams
  // follow one another, each starting with its jobs' current states.
  constexpr std::size_t kPerStream = 4096;
  for (std::size_t begin = 0; begin < ids.size(); begin += kPerStream) {
    std::size_t end = std::min(ids.size(), begin + kPerStream);
    std::vector<std::uint64_t> pending(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                       ids.begin() + static_cast<std::ptrdiff_t>(end));
    while (!pending.empty()) {
      bool heard = false;
      auto on_event = [&](std::string_view data) {
        heard = true;
        boost::json::object event =
            boost::json::parse(data, {}, server::api_parse_options()).as_object();
        std::string_view state = event.at("state").as_string();
        if (state != "succeeded" && state != "failed" && state != "cancelled") return true;
        auto id = event.at("id").to_number<std::uint64_t>();
        auto found = std::lower_bound(pending.begin(), pending.end(), id);
        if (found == pending.end() || *found != id) return true;  // already seen
        pending.erase(found);
        on_final(event);
        return !pending.empty();
      };
      try {
        std::string target = fmt::format("/v1/events?results=true&ids={}",
                                         id_ranges(pending.begin(), pending.end()));
        Response refusal = http.events(target, on_event, deadline);
        if (refusal.status != 200) checked(http, refusal);
      } catch (const DeadlineReached&) {
        throw;
      } catch (const ConnectionError&) {
        // A stream that worked and broke (a restarting server, a dropped
        // slow reader) is followed anew; one that never worked is an error.
        if (!heard) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
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
  if (!options.key.empty()) job["key"] = options.key;
  if (options.keep) job["keep"] = *options.keep;
  return job;
}

}  // namespace client

namespace {

namespace json = boost::json;

// A final event of GET /v1/events?results=true as a result.
JobResult result_of(const json::object& event) {
  JobResult result;
  result.id = event.at("id").to_number<std::uint64_t>();
  result.state = event.at("state").as_string();
  result.reason = event.at("reason").as_string();
  result.value = event.at("result");
  result.stdout_tail = event.at("stdout").as_string();
  result.stderr_tail = event.at("stderr").as_string();
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
    bool keyed = client::every_job_has_a_key(jobs);
    return ids_of(post(json::object{{"jobs", std::move(jobs)}}, keyed));
  }

  json::value post(const json::object& batch, bool keyed) {
    try {
      return client::call_api(http, "POST", "/v1/jobs", json::serialize(batch),
                              std::chrono::seconds(30), keyed);
    } catch (const client::ConnectionError& problem) {
      throw Error(problem.what());
    }
  }

  static std::vector<std::uint64_t> ids_of(const json::value& reply) {
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
  JobOptions each = options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (!options.key.empty() && args.size() > 1) each.key = fmt::format("{}/{}", options.key, i);
    jobs.push_back(client::job_json(json::object{{"function", function}, {"args", args[i]}}, each));
  }
  return impl_->submit(std::move(jobs));
}

std::uint64_t Client::command(const std::vector<std::string>& argv, const JobOptions& options) {
  json::array jobs;
  jobs.push_back(
      client::job_json(json::object{{"argv", json::array(argv.begin(), argv.end())}}, options));
  return impl_->submit(std::move(jobs)).at(0);
}

Flow Client::submit_flow(const json::object& batch) {
  const json::value* about = batch.if_contains("flow");
  bool keyed = about && about->is_object() && about->as_object().contains("key");
  json::value reply = impl_->post(batch, keyed);
  const json::value* flow = reply.as_object().if_contains("flow");
  return {flow ? flow->to_number<std::uint64_t>() : 0, Impl::ids_of(reply)};
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
  std::size_t ended = 0;
  try {
    client::follow_jobs(
        impl_->http, ids,
        [&](const json::object& event) {
          ++ended;
          on_result(result_of(event));
        },
        deadline);
  } catch (const client::DeadlineReached&) {
    throw TimeoutError(fmt::format("{} of {} jobs had not ended within the timeout",
                                   ids.size() - ended, ids.size()));
  } catch (const client::ConnectionError& problem) {
    throw Error(problem.what());
  }
}

}  // namespace ferry
