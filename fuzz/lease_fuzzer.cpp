// POST /v1/lease bodies, what workers of any language send.
//
// - A request either is refused whole or accounts for every completion it
//   carries exactly once, in order: read (its job and token as sent) or
//   rejected (by its index, with an error naming it);
// - what is read holds the API's ranges, and its texts are UTF-8 without
//   NUL within their limits, whatever bytes the worker sent;
// - the answer rendered for it is JSON every reader reads, and says back
//   the acknowledged tokens and rejections.
#include <fmt/format.h>

#include "fuzz_checks.hpp"
#include "server/api_json.hpp"

namespace {

namespace json = boost::json;
using namespace ferry::server;
using ferry::fuzz::is_api_text;
using ferry::fuzz::require;

constexpr std::size_t kMaxCompletions = 8;

std::uint64_t number_in(const json::value& item, std::string_view key) {
  const json::value* found = item.as_object().if_contains(key);
  if (found && found->is_uint64()) return found->as_uint64();
  if (found && found->is_int64()) return static_cast<std::uint64_t>(found->as_int64());
  return 0;
}

void check_completion(const Completion& completion, const json::value& sent) {
  require(completion.job > 0 && completion.job == number_in(sent, "job"),
          "a completion keeps its job");
  require(completion.token > 0 && completion.token == number_in(sent, "token"),
          "a completion keeps its token");
  require(is_api_text(completion.reason) && completion.reason.size() <= kMaxReasonBytes,
          "a reason is text within its limit");
  for (const std::string* output : {&completion.stdout_tail, &completion.stderr_tail})
    require(is_api_text(*output) && output->size() <= kMaxOutputBytes,
            "outputs are text within their limit");
  require(!completion.exit_code || (*completion.exit_code >= -1 && *completion.exit_code <= 255),
          "exit_code in range");
  require(!completion.signal || (*completion.signal >= 0 && *completion.signal <= 128),
          "signal in range");
  require(completion.cpu_us >= 0 && completion.max_rss_kb >= 0, "usage from 0 up");
  if (!completion.result_json.empty()) {
    require(completion.result_json.size() <= kMaxResultBytes, "a result within its limit");
    json::value result = ferry::fuzz::reparsed(completion.result_json, "a result is JSON");
    require(value_depth(result) <= kMaxValueDepth, "a result within the depth limit");
  }
}

void check_answer(const LeaseRequest& request) {
  LeaseReply reply;
  const std::string spec = R"({"command":{"argv":["true"]}})";
  reply.jobs.push_back({1, 2, 1, spec, Time{1764070030000}});
  for (const Completion& completion : request.completions)
    reply.acknowledged.push_back(completion.token);
  for (const Heartbeat& beat : request.heartbeats) reply.stop.push_back(beat.job);
  reply.rejected = request.rejected;
  std::string text = render_lease(reply, std::chrono::milliseconds(30'000));
  json::value answer = ferry::fuzz::reparsed(text, "render_lease gives JSON");
  const json::array& acknowledged = answer.at("acknowledged").as_array();
  require(acknowledged.size() == reply.acknowledged.size(), "every token is acknowledged");
  for (std::size_t i = 0; i < acknowledged.size(); ++i)
    require(acknowledged[i].to_number<std::uint64_t>() == reply.acknowledged[i],
            "tokens are acknowledged exactly");
  const json::array& rejected = answer.at("rejected").as_array();
  require(rejected.size() == reply.rejected.size(), "every rejection is answered");
  for (std::size_t i = 0; i < rejected.size(); ++i) {
    require(rejected[i].at("index").to_number<std::size_t>() == reply.rejected[i].index,
            "a rejection keeps its index");
    require(rejected[i].at("error").as_string() == reply.rejected[i].error,
            "a rejection keeps its error");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body = ferry::fuzz::text_of(data, size);
  LeaseRequest request;
  try {
    request = parse_lease(body, kMaxCompletions);
  } catch (const SpecError& refusal) {
    ferry::fuzz::check_refusal(refusal);
    return 0;
  }
  require(!request.worker.empty() && request.worker.size() <= 128, "a worker is a name");
  require(request.free_slots >= 0 && request.free_slots <= 4096, "free_slots in range");
  for (const Heartbeat& beat : request.heartbeats)
    require(beat.job > 0 && beat.token > 0, "heartbeats name a job and a token");

  // Accepted, so the body is JSON: the completions it carries, as sent.
  json::value document = json_fields::parse_document(body, json_fields::Utf8::replace_invalid);
  const json::value* sent = document.as_object().if_contains("completions");
  std::size_t count = sent ? sent->as_array().size() : 0;
  require(count <= kMaxCompletions, "at most max_completions");
  require(request.completions.size() + request.rejected.size() == count,
          "each completion is read or rejected");
  std::size_t read = 0, refused = 0;
  for (std::size_t index = 0; index < count; ++index) {
    const json::value& item = sent->as_array()[index];
    if (refused < request.rejected.size() && request.rejected[refused].index == index) {
      const RejectedCompletion& rejected = request.rejected[refused++];
      require(is_api_text(rejected.error), "an error is text", rejected.error);
      require(rejected.error.starts_with(fmt::format("completions[{}]", index)),
              "an error names its completion", rejected.error);
      if (item.is_object()) {
        require(rejected.job == 0 || rejected.job == number_in(item, "job"),
                "a rejection names the job sent");
        require(rejected.token == 0 || rejected.token == number_in(item, "token"),
                "a rejection names the token sent");
      }
    } else {
      require(read < request.completions.size(), "completions are read in order");
      check_completion(request.completions[read++], item);
    }
  }
  require(read == request.completions.size() && refused == request.rejected.size(),
          "completions and rejections cover each index once, in order");
  check_answer(request);
  return 0;
}
