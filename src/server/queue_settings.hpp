// Queue settings — what limits a queue's starts, as the API reads and
// writes them (docs/api.md): paused, max_running, a rate ("50/s", "10/m",
// "100/h") with its burst, and the concurrency_limit per concurrency key.
// They are the scheduler's GroupLimits, a queue being the group of its jobs.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "sched/scheduler.hpp"

namespace ferry::server {

using QueueSettings = sched::GroupLimits;

// The settings after a PATCH: each field given replaces the current one,
// null clears max_running and rate; an unknown field or a bad value is a
// SpecError naming it, and changes nothing.
QueueSettings patch_queue_settings(std::string_view json, QueueSettings current);

// Every field, in the form patch_queue_settings reads back the same (the
// store keeps it).
boost::json::object settings_object(const QueueSettings& settings);
std::string to_json(const QueueSettings& settings);

// "50/s", or why not ("must be like 50/s, 10/m or 100/h").
sched::Rate parse_rate(std::string_view text);
std::string rate_text(const sched::Rate& rate);

}  // namespace ferry::server
