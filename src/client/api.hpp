// What ferry::Client and ferry::Worker share: where the server is, and one
// call of the API that turns every failure into a ferry::Error sentence.
#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "client/http_client.hpp"
#include "ferry/client.hpp"

namespace ferry::client {

// `given`, else FERRY_SERVER, else http://127.0.0.1:7077.
std::string server_or_default(std::string given);
// `given`, else FERRY_TOKEN, else none.
std::string token_or_default(std::string given);

// The JSON answer of a 2xx; throws ferry::Error (401, other statuses) or
// ConnectionError (no answer).
boost::json::value call_api(HttpClient& http, const std::string& method, const std::string& target,
                            const std::string& body = {},
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A job's JSON for POST /v1/jobs: `work` is a command ({"argv": ...} or
// {"shell": ...}) or a call ({"function": ..., "args": ...}), with `options`.
boost::json::object job_json(boost::json::object work, const JobOptions& options);

}  // namespace ferry::client
