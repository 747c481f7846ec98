// What clients name jobs and pages with: query strings (GET /v1/jobs,
// /v1/workers, /v1/flows, /v1/events with its ids and ranges), ids in a path
// (/v1/jobs/{id}) and {"ids": [...]} bodies (/v1/cancel, /v1/retry).
//
// The input's first byte picks the parser: 'l' list, 'w' workers, 'f'
// flows, 'e' events, 'j' a job id, 'i' an ids body (any other: by its value).
//
// - Accepted values keep their documented ranges; a list query written out
//   again reads back the same;
// - an id has one spelling, and every positive number reads back;
// - event ids are sorted, unique, at most max_ids, none past the highest
//   job, and `missing` is past it;
// - an ids body answers as JSON every reader reads.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "fuzz_checks.hpp"
#include "server/api_json.hpp"

namespace {

namespace json = boost::json;
using namespace ferry::server;
using ferry::fuzz::require;

std::string escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == ':')
      out += c;
    else
      out += fmt::format("%{:02X}", byte);
  }
  return out;
}

bool is_name(std::string_view text) {
  try {
    json_fields::name_of(json::value(text), "name");
    return true;
  } catch (const SpecError&) {
    return false;
  }
}

void check_list(std::string_view query) {
  ListQuery list = parse_list_query(query);
  require(list.limit >= 1 && list.limit <= 1000, "limit from 1 to 1000");
  require(list.text.size() <= 256 && list.text.find('\0') == std::string::npos,
          "text within its limit, without NUL");
  require(list.queue.empty() || is_name(list.queue), "a queue is a name");
  // Written out again, in another order and spelling: the same query.
  std::string again = fmt::format("limit={}", list.limit);
  if (list.before) again += fmt::format("&before={}", list.before);
  if (!list.text.empty()) again += "&text=" + escaped(list.text);
  if (!list.queue.empty()) again += "&queue=" + escaped(list.queue);
  if (list.state) again += fmt::format("&state={}", ferry::sched::name(*list.state));
  ListQuery read;
  try {
    read = parse_list_query(again);
  } catch (const SpecError& refusal) {
    ferry::fuzz::broken("a list query reads back", std::string(refusal.what()) + "\n" + again);
  }
  require(read.state == list.state && read.queue == list.queue && read.text == list.text &&
              read.before == list.before && read.limit == list.limit,
          "a list query reads back the same", again);
}

void check_workers(std::string_view query) {
  WorkersQuery workers = parse_workers_query(query);
  require(workers.limit >= 1 && workers.limit <= 1000, "limit from 1 to 1000");
  require(workers.after.empty() || is_name(workers.after), "after is a name");
}

void check_flows(std::string_view query) {
  FlowsQuery flows = parse_flows_query(query);
  require(flows.limit >= 1 && flows.limit <= 1000, "limit from 1 to 1000");
  FlowsQuery read;
  std::string again = fmt::format("limit={}&before={}", flows.limit, flows.before);
  try {
    read = parse_flows_query(flows.before ? again : again.substr(0, again.find('&')));
  } catch (const SpecError& refusal) {
    ferry::fuzz::broken("a flows query reads back", std::string(refusal.what()) + "\n" + again);
  }
  require(read.limit == flows.limit && read.before == flows.before,
          "a flows query reads back the same", again);
}

void check_events(std::string_view query, std::size_t max_ids, JobId highest) {
  EventFilter filter = parse_event_query(query, max_ids, highest);
  require(filter.queue.empty() || is_name(filter.queue), "a queue is a name");
  if (filter.missing) require(*filter.missing > highest, "missing is past the highest job");
  if (!filter.ids) return;
  const std::vector<JobId>& ids = *filter.ids;
  require(ids.size() <= max_ids, "at most max_ids jobs");
  require(std::adjacent_find(ids.begin(), ids.end(), std::greater_equal<>()) == ids.end(),
          "ids sorted and unique");
  require(ids.empty() || (ids.front() >= 1 && ids.back() <= highest),
          "ids from 1 to the highest job");
}

void check_job_id(std::string_view text) {
  if (auto id = parse_job_id(text))
    require(*id > 0 && std::to_string(*id) == text, "an id has one spelling", text);
  // Any positive number, written plainly, reads back.
  std::uint64_t number = 0;
  for (char c : text.substr(0, 8)) number = number << 8 | static_cast<unsigned char>(c);
  if (number > 0) require(parse_job_id(std::to_string(number)) == number, "ids read back");
}

void check_ids(std::string_view body) {
  constexpr std::size_t kMaxIds = 16;
  std::vector<JobId> ids = parse_ids(body, kMaxIds);
  require(!ids.empty() && ids.size() <= kMaxIds, "1 to max_ids ids");
  for (JobId id : ids) require(id > 0, "ids are positive");
  std::vector<std::string> results;
  for (JobId id : ids) results.push_back(id % 2 ? "" : fmt::format("job {} already succeeded", id));
  json::value answer =
      ferry::fuzz::reparsed(render_per_job(ids, results, "cancelled"), "render_per_job gives JSON");
  const json::array& items = answer.at("results").as_array();
  require(items.size() == ids.size(), "one result per id");
  for (std::size_t i = 0; i < ids.size(); ++i)
    require(items[i].at("id").to_number<JobId>() == ids[i] &&
                items[i].at("cancelled").as_bool() == results[i].empty(),
            "a result per id, in order");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view rest = ferry::fuzz::text_of(data + 1, size - 1);
  char mode = static_cast<char>(data[0]);
  if (std::string_view("lwfeji").find(mode) == std::string_view::npos) mode = "lwfeji"[data[0] % 6];
  // A refusal is an answer; the checks inside fail on their own.
  auto unless_refused = [](auto check) {
    try {
      check();
    } catch (const SpecError& refusal) {
      ferry::fuzz::check_refusal(refusal);
    }
  };
  switch (mode) {
    case 'l':
      unless_refused([&] { check_list(rest); });
      break;
    case 'w':
      unless_refused([&] { check_workers(rest); });
      break;
    case 'f':
      unless_refused([&] { check_flows(rest); });
      break;
    case 'e':
      for (JobId highest : {JobId{10'000}, JobId{0}, std::numeric_limits<JobId>::max()})
        unless_refused([&] { check_events(rest, 1000, highest); });
      break;
    case 'j':
      check_job_id(rest);
      break;
    case 'i':
      unless_refused([&] { check_ids(rest); });
      break;
  }
  return 0;
}
