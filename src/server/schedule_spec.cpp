#include "server/schedule_spec.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "server/json_fields.hpp"

namespace ferry::server {

using namespace json_fields;
namespace json = boost::json;

namespace {

// A job's own refusal, placed under the schedule's field.
template <typename Parse>
auto under(const char* field, Parse parse) {
  try {
    return parse();
  } catch (const SpecError& error) {
    std::string what = error.what();
    throw SpecError(fmt::format("{}{}{}", field, what.empty() || what[0] == ':' ? "" : ".", what));
  }
}

}  // namespace

ScheduleSpec parse_schedule_spec(std::string_view text, const SpecLimits& limits) {
  json::value document = parse_document(text);
  Fields fields(document, "");
  ScheduleSpec spec;
  const json::value* name = fields.take("name");
  if (!name) fail("name", "is required");
  spec.name = name_of(*name, "name");
  const json::value* cron = fields.take("cron");
  const json::value* every = fields.take("every");
  if (!cron == !every) fail("cron", "give exactly one of cron and every");
  if (cron) {
    std::string expression = string_of(*cron, "cron", 256, false);
    try {
      spec.cron = sched::CronSchedule::parse(expression);
    } catch (const sched::CronError& error) {
      fail("cron", error.what());
    }
  } else {
    spec.every = seconds_of(*every, "every");
    if (spec.every < std::chrono::seconds(1)) fail("every", "must be at least 1 second");
  }
  if (const json::value* tz = fields.take("tz")) {
    if (!cron) fail("tz", "goes with cron");
    std::string zone = string_of(*tz, "tz", 128, false);
    try {
      spec.tz = sched::TimeZone::load(zone);
    } catch (const sched::CronError& error) {
      fail("tz", error.what());
    }
  }
  if (const json::value* skip = fields.take("skip_missed"))
    spec.skip_missed = bool_of(*skip, "skip_missed");
  const json::value* job = fields.take("job");
  const json::value* flow = fields.take("flow");
  if (!job == !flow) fail("job", "give exactly one of job and flow");
  if (job) {
    spec.work.jobs.push_back(under("job", [&] { return spec_of(*job, limits); }));
    if (!spec.work.jobs[0].key.empty()) fail("job.key", "a schedule keys what it submits itself");
  } else {
    spec.work = under("flow", [&] { return submission_of(*flow, limits); });
    if (!spec.work.flow) spec.work.flow.emplace();
    if (!spec.work.flow->key.empty())
      fail("flow.flow.key", "a schedule keys what it submits itself");
  }
  for (std::size_t i = 0; i < spec.work.jobs.size(); ++i)
    if (!spec.work.jobs[i].after.empty())
      fail(job ? "job.after" : fmt::format("flow.jobs[{}].after", i),
           "a schedule's jobs run after jobs of the same flow only (refs), not after job ids");
  fields.reject_unknown();
  return spec;
}

std::string to_json(const ScheduleSpec& spec) {
  json::object out{{"name", spec.name}};
  if (spec.cron) {
    out["cron"] = spec.cron->expression();
    out["tz"] = spec.tz.name();
  } else {
    out["every"] = seconds_value(spec.every);
  }
  if (spec.skip_missed) out["skip_missed"] = true;
  if (!spec.work.flow) {
    out["job"] = json::parse(to_json(spec.work.jobs.at(0)));
  } else {
    json::array jobs;
    for (const JobSpec& job : spec.work.jobs) jobs.push_back(json::parse(to_json(job)));
    json::object about;
    if (!spec.work.flow->name.empty()) about["name"] = spec.work.flow->name;
    out["flow"] = json::object{{"flow", std::move(about)}, {"jobs", std::move(jobs)}};
  }
  return json::serialize(out);
}

std::int64_t next_fire(const ScheduleSpec& spec, std::int64_t after_ms) {
  if (!spec.cron) return after_ms + spec.every.count();
  return spec.cron->next_after(after_ms, spec.tz).value_or(0);
}

Submission work_for(const ScheduleSpec& spec, std::int64_t tick_ms) {
  Submission work = spec.work;
  std::string key = fmt::format("schedule/{}/{}", spec.name, tick_ms);
  if (work.flow) {
    work.flow->key = key;
    if (work.flow->name.empty()) work.flow->name = spec.name;
  } else {
    work.jobs[0].key = key;
  }
  return work;
}

}  // namespace ferry::server
