// The round trip of the API: everything accepted renders, and every reader
// reads the rendering back (strict UTF-8, no key twice, within the depth
// every reader accepts) with what was accepted in it.
//
// The input is a job spec, a lease request and an error detail, split at
// the first two NUL bytes (JSON text holds none). The job view is made of
// the spec and of one attempt per completion of the request (what a worker
// reported is what the server shows), and rendered every way the server
// renders jobs: one job, a page of jobs, events, a flow, the workers, errors.
#include "fuzz_checks.hpp"
#include "server/api_json.hpp"
#include "server/output_text.hpp"

namespace {

namespace json = boost::json;
using namespace ferry::server;
using ferry::fuzz::reparsed;
using ferry::fuzz::require;

std::string_view next_part(std::string_view& input) {
  std::size_t nul = input.find('\0');
  std::string_view part = input.substr(0, nul);
  input.remove_prefix(nul == std::string_view::npos ? input.size() : nul + 1);
  return part;
}

json::value result_of(const std::string& result_json) {
  return result_json.empty() ? json::value(nullptr) : reparsed(result_json, "a result is JSON");
}

JobView view_of(const JobSpec& spec, const LeaseRequest& request) {
  using ferry::sched::AttemptEnd;
  JobView job{.id = 41,
              .spec_json = to_json(spec),
              .name = spec.name,
              .queue = spec.queue,
              .state = ferry::sched::State::running,
              .created = Time{1764070000000}};
  int number = 0;
  for (const Completion& completion : request.completions) {
    ferry::sched::Attempt attempt{
        .number = ++number,
        .lease = completion.token,
        .worker = request.worker,
        .started = Time{1764070000100},
        .ended = Time{1764070001100},
        .end = completion.succeeded ? AttemptEnd::succeeded : AttemptEnd::failed,
        .reason = completion.reason};
    job.attempts.push_back({attempt, completion});
    job.state = completion.succeeded ? ferry::sched::State::succeeded : ferry::sched::State::failed;
    job.reason = completion.reason;
  }
  for (const RejectedCompletion& rejected : request.rejected)
    job.attempts.push_back({{.number = ++number,
                             .worker = request.worker,
                             .end = AttemptEnd::failed,
                             .reason = rejected.error},
                            std::nullopt});
  job.attempts.push_back({{.number = ++number, .worker = request.worker}, std::nullopt});
  job.attempt_count = job.attempts.size();
  return job;
}

void check_job(const JobView& job) {
  json::value rendered = reparsed(render_job(job), "render_job gives JSON");
  require(rendered.at("spec") == reparsed(job.spec_json, "a spec is JSON"),
          "render_job shows the spec");
  require(rendered.at("name").as_string() == job.name &&
              rendered.at("reason").as_string() == job.reason,
          "render_job shows the name and the reason");
  const json::array& attempts = rendered.at("attempts").as_array();
  require(attempts.size() == job.attempts.size(), "render_job shows every attempt");
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const AttemptView& view = job.attempts[i];
    require(attempts[i].at("reason").as_string() == view.attempt.reason,
            "an attempt shows its reason");
    if (!view.details) continue;
    require(attempts[i].at("stdout").as_string() == view.details->stdout_tail &&
                attempts[i].at("stderr").as_string() == view.details->stderr_tail,
            "an attempt shows its outputs");
    require(attempts[i].at("result") == result_of(view.details->result_json),
            "an attempt shows its result");
  }
  ListPage page{.jobs = {job}, .next_before = job.id};
  json::value list = reparsed(render_job_list(page), "render_job_list gives JSON");
  require(list.at("jobs").as_array().at(0).at("spec") == rendered.at("spec"),
          "a list shows the spec");
}

void check_events(const JobView& job, const LeaseRequest& request) {
  JobEvent event{
      .id = job.id,
      .queue = job.queue,
      .state = job.state,
      .reason = &job.reason,
      .attempts = job.attempts.size(),
      .last_report = request.completions.empty() ? nullptr : &request.completions.back()};
  for (bool results : {false, true}) {
    json::value rendered = reparsed(render_event(event, results), "render_event gives JSON");
    require(rendered.at("queue").as_string() == job.queue, "an event shows its queue");
    if (results && event.last_report) {
      require(rendered.at("stdout").as_string() == event.last_report->stdout_tail,
              "an event shows the output");
      require(rendered.at("result") == result_of(event.last_report->result_json),
              "an event shows the result");
    }
  }
}

void check_lease(const JobView& job, const LeaseRequest& request) {
  LeaseReply reply;
  reply.jobs.push_back({job.id, 908, 1, job.spec_json, Time{1764070030000}});
  reply.rejected = request.rejected;
  reply.stop = {job.id};
  reply.stop_tokens = {907};
  json::value rendered =
      reparsed(render_lease(reply, std::chrono::milliseconds(1500)), "render_lease gives JSON");
  require(rendered.at("jobs").as_array().at(0).at("spec") == reparsed(job.spec_json, "a spec"),
          "a lease carries the spec");
}

// A flow made of the job: its name and key are the spec's (a flow's are text
// as a job's are), its one job the job.
void check_flow(const JobSpec& spec, const JobView& job) {
  FlowView flow{.row = {.id = 7,
                        .name = spec.name,
                        .key = spec.key,
                        .created_ms = 1764070000000,
                        .first_job = job.id,
                        .jobs = 1},
                .jobs = {{.id = job.id,
                          .ref = spec.ref,
                          .name = job.name,
                          .state = job.state,
                          .reason = job.reason,
                          .attempts = job.attempts.size()}},
                .state = "running"};
  json::value rendered = reparsed(render_flow(flow), "render_flow gives JSON");
  require(rendered.at("name").as_string() == spec.name &&
              (spec.key.empty() ? rendered.at("key").is_null()
                                : rendered.at("key").as_string() == spec.key),
          "a flow shows its name and key");
  const json::value& shown = rendered.at("jobs").as_array().at(0);
  require(shown.at("ref").as_string() == spec.ref && shown.at("name").as_string() == job.name &&
              shown.at("reason").as_string() == job.reason,
          "a flow shows its jobs' refs, names and reasons");
  reparsed(render_flows({flow, flow}), "render_flows gives JSON");
}

void check_others(const JobSpec& spec, const LeaseRequest& request, std::string_view detail) {
  Service::WorkerPage workers{.workers = {{request.worker, request.queues, request.labels,
                                           request.free_slots, Time{1764070000000}}},
                              .next_after = request.worker};
  reparsed(render_workers(workers, Time{1764070000400}), "render_workers gives JSON");
  ferry::sched::Counts counts;
  counts.by_state[1] = 12;
  counts.stale_completions = 2;
  QueueView queue{.name = spec.queue, .settings = {.paused = true}, .counts = counts};
  reparsed(render_queues({queue}), "render_queues gives JSON");
  StoreView store{.size = {.bytes = 4096, .oldest_id = 41, .oldest_created_ms = 1764070000000},
                  .keep_finished = spec.keep};
  reparsed(render_stats(counts, 1, store, 7, {}), "render_stats gives JSON");
  reparsed(render_submitted({.ids = {41, 42}, .existing = {41}, .flow = 7}),
           "render_submitted gives JSON");
  json::value error = reparsed(render_error("invalid_request", detail), "render_error gives JSON");
  require(error.at("detail").as_string() == output_text(detail), "an error keeps its detail");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input = ferry::fuzz::text_of(data, size);
  std::string_view spec_text = next_part(input);
  std::string_view lease_text = next_part(input);
  std::string refusals;
  JobSpec spec{.work = CommandSpec{.argv = {"true"}}};
  try {
    spec = parse_job_spec(spec_text);
  } catch (const SpecError& refusal) {
    refusals += refusal.what();
  }
  LeaseRequest request{.worker = "host-4242"};
  try {
    request = parse_lease(lease_text, 8);
  } catch (const SpecError& refusal) {
    refusals += refusal.what();
  }
  JobView job = view_of(spec, request);
  check_job(job);
  check_events(job, request);
  check_lease(job, request);
  check_flow(spec, job);
  check_others(spec, request, input);
  // What a refusal says reaches the client as JSON too.
  reparsed(render_error("invalid_request", refusals), "a refusal renders as JSON");
  return 0;
}
