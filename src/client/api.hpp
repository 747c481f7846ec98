// What ferry::Client and ferry::Worker share: where the server is, and one
// call of the API that turns every failure into a ferry::Error sentence.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <boost/json/array.hpp>

#include "client/http_client.hpp"
#include "ferry/client.hpp"

namespace ferry::client {

// `given`, else FERRY_SERVER, else http://127.0.0.1:7077.
std::string server_or_default(std::string given);
// `given`, else FERRY_TOKEN, else none.
std::string token_or_default(std::string given);

// Sends a request. One that may safely be sent twice (`again`: a read, or a
// submit whose every job has a key, which the server answers with the jobs
// the first one made) is sent again after a connection failure, with
// backoff, for up to kSendAgainFor.
Response send(HttpClient& http, const std::string& method, const std::string& target,
              const std::string& body, std::chrono::milliseconds timeout, bool again);
constexpr std::chrono::seconds kSendAgainFor{60};

// Whether every job of a POST /v1/jobs body has a key.
bool every_job_has_a_key(const boost::json::array& jobs);

// The JSON answer of a 2xx; throws ferry::Error (401, other statuses) or
// ConnectionError (no answer).
boost::json::value call_api(HttpClient& http, const std::string& method, const std::string& target,
                            const std::string& body = {},
                            std::chrono::milliseconds timeout = std::chrono::seconds(30),
                            bool again = false);

// Follows GET /v1/events until each of `ids` ended, handing each one's final
// event (with its results) to `on_final`, once, in the order they end.
// Throws ferry::Error for a refusal (an unknown job, a bad token),
// ConnectionError when the server cannot be reached, DeadlineReached past
// `deadline`.
void follow_jobs(HttpClient& http, std::vector<std::uint64_t> ids,
                 const std::function<void(const boost::json::object& event)>& on_final,
                 std::chrono::steady_clock::time_point deadline);

// A job's JSON for POST /v1/jobs: `work` is a command ({"argv": ...} or
// {"shell": ...}) or a call ({"function": ..., "args": ...}), with `options`.
boost::json::object job_json(boost::json::object work, const JobOptions& options);

}  // namespace ferry::client
