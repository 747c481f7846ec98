#include "server/api_json.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "server/api_limits.hpp"
#include "server/json_fields.hpp"
#include "server/output_text.hpp"

namespace ferry::server {
namespace {

namespace json = boost::json;
using namespace json_fields;

json::value optional_int(const std::optional<int>& value) {
  return value ? json::value(*value) : json::value(nullptr);
}

// A result stored as JSON text goes out as JSON, not as a string. Stored
// JSON is read as it was when accepted (parse_document), so each number
// shows as accepted.
json::value embedded(const std::string& json_text) {
  if (json_text.empty()) return nullptr;
  try {
    return parse_document(json_text);
  } catch (const SpecError&) {
    return json::value(json_text);
  }
}

// What a program printed, as the API's text: the worker should have applied
// the rule of output_text.hpp already; a report that did not is mended
// rather than refused, since the output is not the worker's fault.
std::string output_of(const json::value& value, const Path& path, std::size_t limit) {
  if (!value.is_string()) fail(path, "must be a string");
  std::string text = output_text(value.as_string());
  return std::string(text_tail(text, limit));
}

Completion completion_of(const json::value& value, const Path& path) {
  Fields fields(value, path);
  Completion completion;
  auto required = [&](std::string_view key) {
    const json::value* found = fields.take(key);
    if (!found) fail(fields.path(key), "is required");
    return found;
  };
  completion.job = id_of(*required("job"), fields.path("job"));
  completion.token = id_of(*required("token"), fields.path("token"));
  completion.succeeded = bool_of(*required("succeeded"), fields.path("succeeded"));
  if (auto* reason = fields.take("reason")) {
    if (!reason->is_string()) fail(fields.path("reason"), "must be a string");
    completion.reason = text_head(output_text(reason->as_string()), kMaxReasonBytes);
  }
  if (auto* code = fields.take("exit_code"); code && !code->is_null())
    completion.exit_code = integer_of(*code, fields.path("exit_code"), -1, 255);
  if (auto* signal = fields.take("signal"); signal && !signal->is_null())
    completion.signal = integer_of(*signal, fields.path("signal"), 0, 128);
  if (auto* out = fields.take("stdout"))
    completion.stdout_tail = output_of(*out, fields.path("stdout"), kMaxOutputBytes);
  if (auto* err = fields.take("stderr"))
    completion.stderr_tail = output_of(*err, fields.path("stderr"), kMaxOutputBytes);
  if (auto* result = fields.take("result")) {
    check_depth(*result, fields.path("result"));
    check_finite(*result, fields.path("result"));
    completion.result_json = json::serialize(*result);
    if (completion.result_json.size() > kMaxResultBytes)
      fail(fields.path("result"), fmt::format("must be at most {} bytes of JSON", kMaxResultBytes));
    if (output_text(completion.result_json) != completion.result_json)
      fail(fields.path("result"), "must be valid UTF-8 text");
  }
  if (auto* cpu = fields.take("cpu_us")) completion.cpu_us = count_of(*cpu, fields.path("cpu_us"));
  if (auto* rss = fields.take("max_rss_kb"))
    completion.max_rss_kb = count_of(*rss, fields.path("max_rss_kb"));
  fields.reject_unknown();
  return completion;
}

// A completion that cannot be read whole is refused alone; what can be read
// of its job and token lets the server record the attempt as failed.
RejectedCompletion refusal_of(const json::value& value, std::size_t index, std::string error) {
  // Keys of a report are not checked as UTF-8 before this: the message may quote one.
  RejectedCompletion rejected{index, 0, 0, output_text(error)};
  if (const json::object* object = value.if_object()) {
    auto number = [&](std::string_view key) -> std::uint64_t {
      const json::value* found = object->if_contains(key);
      return found && found->is_uint64() ? found->as_uint64()
             : found && found->is_int64() && found->as_int64() > 0
                 ? static_cast<std::uint64_t>(found->as_int64())
                 : 0;
    };
    rejected.job = number("job");
    rejected.token = number("token");
  }
  return rejected;
}

std::vector<std::string> names_of(const json::value& value, const Path& path) {
  if (!value.is_array()) fail(path, "must be an array of names");
  if (value.as_array().size() > 64) fail(path, "must hold at most 64 names");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < value.as_array().size(); ++i)
    names.push_back(name_of(value.as_array()[i], at(path, i)));
  return names;
}

}  // namespace

Submission parse_submit(std::string_view body, const SpecLimits& limits) {
  // One job, or a batch: a batch is the only object with a "jobs" field.
  json::value document = parse_document(body);
  if (document.is_object() && document.as_object().contains("jobs"))
    return submission_of(document, limits);
  Submission one;
  one.jobs.push_back(spec_of(document, limits));
  if (!one.jobs[0].after_refs.empty())
    fail("after", "a job alone has no other job to name by ref: submit a batch");
  return one;
}

std::string render_submitted(const Service::Submitted& submitted) {
  json::object answer{
      {"ids", json::array(submitted.ids.begin(), submitted.ids.end())},
      {"existing", json::array(submitted.existing.begin(), submitted.existing.end())}};
  if (submitted.flow) answer["flow"] = submitted.flow;
  return json::serialize(answer);
}

LeaseRequest parse_lease(std::string_view body, std::size_t max_completions) {
  json::value document = parse_document(body, Utf8::replace_invalid);
  Fields fields(document, "");
  LeaseRequest request;
  const json::value* worker = fields.take("worker");
  if (!worker) fail("worker", "is required");
  request.worker = name_of(*worker, "worker");
  if (auto* slots = fields.take("free_slots"))
    request.free_slots = integer_of(*slots, "free_slots", 0, 4096);
  if (auto* queues = fields.take("queues")) request.queues = names_of(*queues, "queues");
  if (auto* labels = fields.take("labels")) request.labels = names_of(*labels, "labels");
  if (auto* commands = fields.take("commands")) request.commands = bool_of(*commands, "commands");
  if (auto* wait = fields.take("wait")) request.wait = seconds_of(*wait, "wait");
  if (auto* completions = fields.take("completions")) {
    if (!completions->is_array()) fail("completions", "must be an array");
    if (completions->as_array().size() > max_completions)
      fail("completions", fmt::format("must hold at most {} per request", max_completions));
    for (std::size_t i = 0; i < completions->as_array().size(); ++i) {
      const json::value& item = completions->as_array()[i];
      try {
        request.completions.push_back(completion_of(item, at("completions", i)));
      } catch (const SpecError& problem) {
        request.rejected.push_back(refusal_of(item, i, problem.what()));
      }
    }
  }
  if (auto* heartbeats = fields.take("heartbeats")) {
    if (!heartbeats->is_array()) fail("heartbeats", "must be an array");
    if (heartbeats->as_array().size() > 4096) fail("heartbeats", "must hold at most 4096");
    for (std::size_t i = 0; i < heartbeats->as_array().size(); ++i) {
      Fields beat(heartbeats->as_array()[i], at("heartbeats", i));
      const json::value* job = beat.take("job");
      const json::value* token = beat.take("token");
      if (!job || !token) fail(at("heartbeats", i), "needs job and token");
      request.heartbeats.push_back(
          {id_of(*job, beat.path("job")), id_of(*token, beat.path("token"))});
      beat.reject_unknown();
    }
  }
  fields.reject_unknown();
  return request;
}

std::string render_lease(const LeaseReply& reply, std::chrono::milliseconds lease_duration) {
  // Written directly: each spec is canonical JSON already (to_json), and
  // parsing it again for every leased job would cost more than the rest.
  std::string out = R"({"jobs":[)";
  for (const LeasedJob& job : reply.jobs)
    fmt::format_to(std::back_inserter(out),
                   R"({}{{"id":{},"token":{},"attempt":{},"lease_expires_ms":{},"spec":{}}})",
                   &job == &reply.jobs.front() ? "" : ",", job.id, job.token, job.attempt,
                   job.lease_expires.count(), job.spec_json);
  fmt::format_to(
      std::back_inserter(out),
      R"(],"lease_seconds":{},"acknowledged":[{}],"stop":[{}],"stop_tokens":[{}],"rejected":[)",
      json::serialize(seconds_value(lease_duration)), fmt::join(reply.acknowledged, ","),
      fmt::join(reply.stop, ","), fmt::join(reply.stop_tokens, ","));
  for (const RejectedCompletion& rejected : reply.rejected) {
    json::object item{{"index", rejected.index}, {"error", rejected.error}};
    if (rejected.job) item["job"] = rejected.job;
    if (rejected.token) item["token"] = rejected.token;
    out += &rejected == &reply.rejected.front() ? "" : ",";
    out += json::serialize(item);
  }
  out += "]}";
  return out;
}

std::vector<JobId> parse_ids(std::string_view body, std::size_t max_ids) {
  json::value document = parse_document(body);
  Fields fields(document, "");
  const json::value* ids = fields.take("ids");
  fields.reject_unknown();
  if (!ids || !ids->is_array()) fail("ids", "must be an array of job ids");
  if (ids->as_array().empty()) fail("ids", "must hold at least one id");
  if (ids->as_array().size() > max_ids)
    fail("ids", fmt::format("must hold at most {} ids", max_ids));
  std::vector<JobId> result;
  for (std::size_t i = 0; i < ids->as_array().size(); ++i)
    result.push_back(id_of(ids->as_array()[i], at("ids", i)));
  return result;
}

std::string render_per_job(const std::vector<JobId>& ids, const std::vector<std::string>& results,
                           std::string_view done) {
  json::array items;
  for (std::size_t i = 0; i < ids.size(); ++i)
    items.push_back(
        json::object{{"id", ids[i]}, {done, results[i].empty()}, {"detail", results[i]}});
  return json::serialize(json::object{{"results", std::move(items)}});
}

namespace {

json::value flow_value(std::uint64_t flow) {
  return flow ? json::value(flow) : json::value(nullptr);
}

}  // namespace

std::string render_job(const JobView& job) {
  json::array attempts;
  for (const AttemptView& view : job.attempts) {
    const sched::Attempt& attempt = view.attempt;
    json::object item{{"number", attempt.number},
                      {"worker", attempt.worker},
                      {"started_ms", attempt.started.count()},
                      {"ended_ms", attempt.ended.count()},
                      {"end", sched::name(attempt.end)},
                      {"reason", attempt.reason}};
    if (view.details) {
      item["exit_code"] = optional_int(view.details->exit_code);
      item["signal"] = optional_int(view.details->signal);
      item["stdout"] = view.details->stdout_tail;
      item["stderr"] = view.details->stderr_tail;
      item["result"] = embedded(view.details->result_json);
      item["cpu_us"] = view.details->cpu_us;
      item["max_rss_kb"] = view.details->max_rss_kb;
    }
    attempts.push_back(std::move(item));
  }
  return json::serialize(
      json::object{{"id", job.id},
                   {"name", job.name},
                   {"queue", job.queue},
                   {"state", sched::name(job.state)},
                   {"reason", job.reason},
                   {"held", job.held.empty() ? json::value(nullptr) : json::value(job.held)},
                   {"skipped", job.skipped},
                   {"flow", flow_value(job.flow)},
                   {"created_ms", job.created.count()},
                   {"spec", parse_document(job.spec_json)},
                   {"attempts", std::move(attempts)}});
}

namespace {

// "a%20b+c" -> "a b c"; nullopt for a broken escape.
std::optional<std::string> percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%') {
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2])))
        return std::nullopt;
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// Calls `take(key, value)` for each "key=value" of a query, decoded.
// A parameter given twice is refused: which one counts would be a guess.
template <class Take>
void for_each_parameter(std::string_view query, Take take) {
  std::vector<std::string> seen;
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), pair.size() + 1));
    if (pair.empty()) continue;
    std::string key(pair.substr(0, pair.find('=')));
    auto value = percent_decoded(pair.size() > key.size() ? pair.substr(key.size() + 1) : "");
    if (!value) fail(key, "has a broken %-escape");
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) fail(key, "is given twice");
    seen.push_back(key);
    take(key, *value);
  }
}

// Digits without a leading zero: one spelling per id.
std::optional<JobId> job_id_of(std::string_view text) {
  JobId id = 0;
  if (text.empty() || text[0] == '0') return std::nullopt;
  auto [end, problem] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (problem != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return id;
}

std::size_t limit_of(std::string_view text) {
  auto number = job_id_of(text);
  if (!number || *number > 1000) fail("limit", "must be from 1 to 1000");
  return *number;
}

}  // namespace

std::optional<JobId> parse_job_id(std::string_view text) { return job_id_of(text); }

WorkersQuery parse_workers_query(std::string_view query) {
  WorkersQuery workers;
  for_each_parameter(query, [&](const std::string& key, const std::string& value) {
    if (key == "after")
      workers.after = name_of(json::value(value), "after");
    else if (key == "limit")
      workers.limit = limit_of(value);
    else
      fail(key, "is not a known query parameter (after, limit)");
  });
  return workers;
}

EventFilter parse_event_query(std::string_view query, std::size_t max_ids, JobId highest) {
  EventFilter filter;
  for_each_parameter(query, [&](const std::string& key, const std::string& value) {
    if (key == "ids") {
      filter.ids.emplace();
      std::string_view rest = value;
      while (!rest.empty()) {
        std::string_view item = rest.substr(0, rest.find(','));
        rest.remove_prefix(std::min(rest.size(), item.size() + 1));
        auto dash = item.find('-');
        auto first = job_id_of(item.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : job_id_of(item.substr(dash + 1));
        if (!first || !last || *last < *first)
          fail("ids", fmt::format("'{}' is neither a job id nor a range FIRST-LAST", item));
        // Ids past the highest cannot exist: the stream is refused for the
        // first of them (and a range never runs up to 2^64).
        if (*last > highest) {
          JobId missing = std::max(*first, highest + 1);
          filter.missing = filter.missing ? std::min(*filter.missing, missing) : missing;
          if (*first > highest) continue;
          last = highest;
        }
        if (*last - *first >= max_ids || filter.ids->size() + (*last - *first) >= max_ids)
          fail("ids", fmt::format("names more than {} jobs", max_ids));
        // Up to *last included, which may be the largest id: never past it.
        for (JobId id = *first;; ++id) {
          filter.ids->push_back(id);
          if (id == *last) break;
        }
      }
      std::sort(filter.ids->begin(), filter.ids->end());
      filter.ids->erase(std::unique(filter.ids->begin(), filter.ids->end()), filter.ids->end());
    } else if (key == "queue") {
      filter.queue = name_of(json::value(value), "queue");
    } else if (key == "flow") {
      auto id = job_id_of(value);
      if (!id) fail("flow", "must be a flow id");
      filter.flow = *id;
    } else if (key == "results") {
      if (value != "true" && value != "false") fail("results", "must be true or false");
      filter.results = value == "true";
    } else if (key == "coalesce") {
      char* end = nullptr;
      double seconds = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(seconds >= 0.1 && seconds <= 60))
        fail("coalesce", "must be a number of seconds from 0.1 to 60");
      filter.coalesce = std::chrono::milliseconds(std::llround(seconds * 1000));
    } else {
      fail(key, "is not a known query parameter (ids, flow, queue, results, coalesce)");
    }
  });
  if (filter.coalesce && filter.results)
    fail("results", "a coalesced stream carries no results: drop results or coalesce");
  return filter;
}

std::string render_changes(std::uint64_t changes, JobId highest) {
  return fmt::format(R"({{"changes":{},"highest_id":{}}})", changes, highest);
}

bool EventFilter::wants(const JobEvent& event) const {
  if (ids && !std::binary_search(ids->begin(), ids->end(), event.id)) return false;
  return queue.empty() || event.queue == queue;
}

std::string render_event(const JobEvent& event, bool results) {
  json::object item{{"id", event.id},
                    {"state", sched::name(event.state)},
                    {"queue", event.queue},
                    {"attempts", event.attempts},
                    {"reason", *event.reason}};
  if (results && sched::is_final(event.state)) {
    const Completion* report = event.last_report;
    item["exit_code"] = report ? optional_int(report->exit_code) : nullptr;
    item["result"] = report ? embedded(report->result_json) : nullptr;
    item["stdout"] = report ? report->stdout_tail : "";
    item["stderr"] = report ? report->stderr_tail : "";
  }
  return json::serialize(item);
}

ListQuery parse_list_query(std::string_view query) {
  ListQuery list;
  for_each_parameter(query, [&](const std::string& key, const std::string& given) {
    const std::string* value = &given;
    if (key == "state") {
      bool known = false;
      for (auto state : {sched::State::waiting, sched::State::queued, sched::State::running,
                         sched::State::succeeded, sched::State::failed, sched::State::cancelled})
        if (sched::name(state) == *value) list.state = state, known = true;
      if (!known) fail("state", fmt::format("'{}' is not a job state", *value));
    } else if (key == "queue") {
      list.queue = name_of(json::value(*value), "queue");
    } else if (key == "text") {
      list.text = string_of(json::value(*value), "text", 256);
    } else if (key == "before") {
      auto id = job_id_of(*value);
      if (!id) fail(key, "must be a job id");
      list.before = *id;
    } else if (key == "limit") {
      list.limit = limit_of(*value);
    } else {
      fail(key, "is not a known query parameter (state, queue, text, before, limit)");
    }
  });
  return list;
}

std::string render_job_list(const ListPage& page) {
  json::array jobs;
  for (const JobView& job : page.jobs)
    jobs.push_back(json::object{{"id", job.id},
                                {"name", job.name},
                                {"queue", job.queue},
                                {"state", sched::name(job.state)},
                                {"reason", job.reason},
                                {"skipped", job.skipped},
                                {"flow", flow_value(job.flow)},
                                {"created_ms", job.created.count()},
                                {"attempts", job.attempt_count},
                                {"spec", parse_document(job.spec_json)}});
  return json::serialize(json::object{
      {"jobs", std::move(jobs)},
      {"next_before", page.next_before ? json::value(page.next_before) : json::value(nullptr)}});
}

std::string render_workers(const Service::WorkerPage& page, Time now) {
  json::array items;
  for (const WorkerView& worker : page.workers)
    items.push_back(
        json::object{{"id", worker.id},
                     {"queues", json::array(worker.queues.begin(), worker.queues.end())},
                     {"labels", json::array(worker.labels.begin(), worker.labels.end())},
                     {"free_slots", worker.free_slots},
                     {"last_seen_ms", worker.last_seen.count()},
                     {"seconds_since_seen", seconds_value(now - worker.last_seen)},
                     {"running", json::array(worker.running.begin(), worker.running.end())}});
  return json::serialize(
      json::object{{"workers", std::move(items)},
                   {"next_after", page.next_after.empty() ? json::value(nullptr)
                                                          : json::value(page.next_after)}});
}

namespace {
json::object by_state(const sched::Counts& counts) {
  json::object jobs;
  for (auto state : {sched::State::waiting, sched::State::queued, sched::State::running,
                     sched::State::succeeded, sched::State::failed, sched::State::cancelled})
    jobs[sched::name(state)] = counts[state];
  return jobs;
}
}  // namespace

std::string render_stats(const sched::Counts& counts, std::size_t event_streams,
                         const StoreView& store, std::size_t jobs_in_memory,
                         const JobMetrics::LastHour& last_hour) {
  json::object kept{
      {"bytes", store.size.bytes},
      {"free_bytes", store.size.free_bytes},
      {"oldest_job",
       store.size.oldest_id ? json::value(*store.size.oldest_id) : json::value(nullptr)},
      {"oldest_created_ms",
       store.size.oldest_id ? json::value(store.size.oldest_created_ms) : json::value(nullptr)},
      {"keep_finished",
       store.keep_finished ? seconds_value(*store.keep_finished) : json::value(nullptr)}};
  return json::serialize(json::object{
      {"jobs", by_state(counts)},
      {"total", counts.total()},
      {"stale_completions", counts.stale_completions},
      {"event_streams", event_streams},
      {"jobs_in_memory", jobs_in_memory},
      {"store", std::move(kept)},
      {"last_hour",
       json::object{
           {"first_minute_ms", last_hour.first_minute.count()},
           {"submitted", json::array(last_hour.submitted.begin(), last_hour.submitted.end())},
           {"succeeded", json::array(last_hour.succeeded.begin(), last_hour.succeeded.end())},
           {"failed", json::array(last_hour.failed.begin(), last_hour.failed.end())}}}});
}

namespace {

json::object queue_object(const QueueView& queue) {
  json::object object{{"name", queue.name}};
  for (auto& [key, value] : settings_object(queue.settings)) object[key] = std::move(value);
  object["running"] = queue.running;
  object["jobs"] = by_state(queue.counts);
  object["total"] = queue.counts.total();
  return object;
}

}  // namespace

std::string render_queue(const QueueView& queue) { return json::serialize(queue_object(queue)); }

std::string render_queues(const std::vector<QueueView>& queues) {
  json::array items;
  for (const QueueView& queue : queues) items.push_back(queue_object(queue));
  return json::serialize(json::object{{"queues", std::move(items)}});
}

std::string render_error(std::string_view code, std::string_view detail) {
  // A detail may quote what a request held: JSON text must be UTF-8.
  return json::serialize(json::object{{"error", code}, {"detail", output_text(detail)}});
}

std::string render_not_leader(const std::string& leader) {
  return json::serialize(json::object{
      {"error", "not_leader"},
      {"detail", leader.empty() ? "this server stands by, and no server leads right now: try "
                                  "again, or another server of the list"
                                : "this server stands by; the leader is " + leader},
      {"leader", leader.empty() ? json::value(nullptr) : json::value(leader)}});
}

std::string render_flow(const FlowView& flow) {
  json::object answer{
      {"id", flow.row.id},
      {"name", flow.row.name},
      {"key", flow.row.key.empty() ? json::value(nullptr) : json::value(flow.row.key)},
      {"created_ms", flow.row.created_ms},
      {"state", flow.state},
      {"first_job", flow.row.first_job},
      {"jobs_made", flow.row.jobs},
      {"counts", by_state(flow.counts)}};
  json::array jobs;
  for (const FlowView::Job& job : flow.jobs)
    jobs.push_back(json::object{{"id", job.id},
                                {"ref", job.ref},
                                {"name", job.name},
                                {"state", sched::name(job.state)},
                                {"reason", job.reason},
                                {"attempts", job.attempts}});
  answer["jobs"] = std::move(jobs);
  return json::serialize(answer);
}

namespace {

json::object schedule_object(const ScheduleView& schedule) {
  json::object out = json::parse(to_json(schedule.spec)).as_object();
  out["paused"] = schedule.paused;
  out["next_ms"] = schedule.next_ms ? json::value(schedule.next_ms) : json::value(nullptr);
  out["created_ms"] = schedule.created_ms;
  return out;
}

}  // namespace

std::string render_schedule(const ScheduleView& schedule) {
  return json::serialize(schedule_object(schedule));
}

std::string render_schedules(const std::vector<ScheduleView>& schedules) {
  json::array items;
  for (const ScheduleView& schedule : schedules) items.push_back(schedule_object(schedule));
  return json::serialize(json::object{{"schedules", std::move(items)}});
}

std::string render_removed_schedule(const std::string& name) {
  return json::serialize(json::object{{"removed", name}});
}

std::string render_flows(const std::vector<FlowView>& flows) {
  std::string out = R"({"flows":[)";
  for (const FlowView& flow : flows)
    out += (&flow == &flows.front() ? "" : ",") + render_flow(flow);
  out += fmt::format(R"(],"next_before":{}}})",
                     flows.empty() ? std::string("null") : std::to_string(flows.back().row.id));
  return out;
}

FlowsQuery parse_flows_query(std::string_view query) {
  FlowsQuery flows;
  for_each_parameter(query, [&](const std::string& key, const std::string& value) {
    if (key == "before") {
      auto id = job_id_of(value);
      if (!id) fail(key, "must be a flow id");
      flows.before = *id;
    } else if (key == "limit") {
      flows.limit = limit_of(value);
    } else {
      fail(key, "is not a known query parameter (before, limit)");
    }
  });
  return flows;
}

}  // namespace ferry::server
