// The JSON forms of the API's requests and replies (docs/api.md): parsing
// is strict, like JobSpec's (unknown fields and wrong types are errors that
// name the field); rendering gives fixed field orders.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/job_spec.hpp"
#include "server/service.hpp"

namespace ferry::server {

// POST /v1/jobs: one job object, or {"jobs": [...]}.
Submission parse_submit(std::string_view body, const SpecLimits& limits);
// {"ids": [...], "existing": [...], "flow": 7}: `existing`, those that a kept
// job (or flow) with the same key had already; "flow" when a flow was made.
std::string render_submitted(const Service::Submitted& submitted);

// GET /v1/flows/{id}, and GET /v1/flows?before=&limit= (the part after '?').
std::string render_flow(const FlowView& flow);
// A schedule: its spec's fields, and paused, next_ms (null: never), created_ms.
std::string render_schedule(const ScheduleView& schedule);
std::string render_schedules(const std::vector<ScheduleView>& schedules);
std::string render_removed_schedule(const std::string& name);
std::string render_flows(const std::vector<FlowView>& flows);
struct FlowsQuery {
  std::uint64_t before = 0;
  std::size_t limit = 50;
};
FlowsQuery parse_flows_query(std::string_view query);

// POST /v1/lease.
LeaseRequest parse_lease(std::string_view body, std::size_t max_completions);
// `lease_duration`: how long a lease lasts without a heartbeat.
std::string render_lease(const LeaseReply& reply, std::chrono::milliseconds lease_duration);

// POST /v1/cancel and /v1/retry: {"ids": [...]}.
std::vector<JobId> parse_ids(std::string_view body, std::size_t max_ids);
// {"results": [{"id": 1, "<done>": true, "detail": ""}, ...]}
std::string render_per_job(const std::vector<JobId>& ids, const std::vector<std::string>& results,
                           std::string_view done);

std::string render_job(const JobView& job);

// GET /v1/jobs?state=&queue=&text=&before=&limit= (the part after '?').
ListQuery parse_list_query(std::string_view query);
std::string render_job_list(const ListPage& page);
// GET /v1/workers?after=NAME&limit=N
struct WorkersQuery {
  std::string after;
  std::size_t limit = 1000;
};
WorkersQuery parse_workers_query(std::string_view query);
std::string render_workers(const Service::WorkerPage& page, Time now);
// `last_hour`: jobs submitted and ended in each minute (for the dashboard).
std::string render_stats(const sched::Counts& counts, std::size_t event_streams,
                         const StoreView& store, std::size_t jobs_in_memory,
                         const JobMetrics::LastHour& last_hour);
// A queue: its settings, the jobs running now, its kept jobs by state.
std::string render_queue(const QueueView& queue);
std::string render_queues(const std::vector<QueueView>& queues);

// GET /v1/events?ids=1-100,107&queue=Q&results=true: which job events a
// stream carries. `ids` takes ids and ranges, at most `max_ids` jobs in all
// up to `highest` (the highest id there is); the first named beyond it is
// `missing`.
struct EventFilter {
  std::optional<std::vector<JobId>> ids;  // sorted; none: every job
  std::optional<JobId> missing;
  std::uint64_t flow = 0;  // only this flow's jobs (its ids are filled in by the caller)
  std::string queue;       // empty: any
  bool results = false;    // final events carry the last attempt's output
  // `coalesce=S`: instead of each event, one summary ("changes") at most
  // every S seconds, when the jobs wanted changed.
  std::optional<std::chrono::milliseconds> coalesce;
  bool wants(const JobEvent& event) const;
};
EventFilter parse_event_query(std::string_view query, std::size_t max_ids, JobId highest);
// {"id", "state", "queue", "attempts", "reason"} and, with `results` and a
// final state: "exit_code", "result", "stdout", "stderr".
std::string render_event(const JobEvent& event, bool results);
// {"changes": N, "highest_id": H}: what a coalesced stream sends.
std::string render_changes(std::uint64_t changes, JobId highest);

// "17" -> 17; nullopt for anything but a positive number written without
// a leading zero.
std::optional<JobId> parse_job_id(std::string_view text);

// {"error": code, "detail": message}
std::string render_error(std::string_view code, std::string_view detail);
// A standby's refusal: {"error": "not_leader", "detail": ..., "leader": URL or null}.
std::string render_not_leader(const std::string& leader);

}  // namespace ferry::server
