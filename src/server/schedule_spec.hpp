// ScheduleSpec — a schedule as the API accepts it: what to submit (one job,
// or a flow) and when (a cron expression in a time zone, or every N
// seconds). docs/api.md documents the JSON form.
//
// The server fires a schedule by submitting its work with a key made of the
// schedule's name and the time it fires for, so a tick is never submitted
// twice, not even across a crash between the submit and the schedule's next
// time being stored.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sched/cron.hpp"
#include "server/job_spec.hpp"

namespace ferry::server {

struct ScheduleSpec {
  std::string name;
  std::optional<sched::CronSchedule> cron;  // either this, in `tz` ...
  sched::TimeZone tz = sched::TimeZone::utc();
  std::chrono::milliseconds every{0};  // ... or this, from when it was made or last fired
  // After downtime, a tick missed by more than a minute is not made up for.
  // Without it, the missed ticks are made up for by one run, at once.
  bool skip_missed = false;
  Submission work;  // one job (no flow), or a flow
};

// {"name": ..., "cron": "0 2 * * *", "tz": "Europe/Berlin", "skip_missed":
// false, "job": {...}} or "flow": {"flow": {...}, "jobs": [...]} in place of
// "job", "every": seconds in place of "cron". A SpecError names the field.
ScheduleSpec parse_schedule_spec(std::string_view json, const SpecLimits& limits = {});

// The canonical JSON form (what the store keeps); parsing it gives the same.
std::string to_json(const ScheduleSpec& spec);

// When it fires first after `after_ms` (Unix milliseconds); 0: never.
std::int64_t next_fire(const ScheduleSpec& spec, std::int64_t after_ms);

// What firing for `tick_ms` submits: its work, keyed by name and tick.
Submission work_for(const ScheduleSpec& spec, std::int64_t tick_ms);

}  // namespace ferry::server
