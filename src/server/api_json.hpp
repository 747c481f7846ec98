// The JSON forms of the API's requests and replies (docs/api.md): parsing
// is strict, like JobSpec's (unknown fields and wrong types are errors that
// name the field); rendering gives fixed field orders.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/job_spec.hpp"
#include "server/service.hpp"

namespace ferry::server {

// POST /v1/jobs: one job object, or {"jobs": [...]}.
std::vector<JobSpec> parse_submit(std::string_view body, const SpecLimits& limits);
std::string render_submitted(const std::vector<JobId>& ids);

// POST /v1/lease.
LeaseRequest parse_lease(std::string_view body, std::size_t max_completions);
std::string render_lease(const LeaseReply& reply);

// POST /v1/cancel and /v1/retry: {"ids": [...]}.
std::vector<JobId> parse_ids(std::string_view body, std::size_t max_ids);
// {"results": [{"id": 1, "<done>": true, "detail": ""}, ...]}
std::string render_per_job(const std::vector<JobId>& ids, const std::vector<std::string>& results,
                           std::string_view done);

std::string render_job(const JobView& job);

// GET /v1/jobs?state=&queue=&text=&before=&limit= (the part after '?').
ListQuery parse_list_query(std::string_view query);
std::string render_job_list(const ListPage& page);
std::string render_workers(const std::vector<WorkerView>& workers, Time now);
std::string render_stats(const sched::Counts& counts);
std::string render_queues(const std::map<std::string, sched::Counts>& queues);

// {"error": code, "detail": message}
std::string render_error(std::string_view code, std::string_view detail);

}  // namespace ferry::server
