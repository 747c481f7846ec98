#include "run/runner.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "exec/process_set.hpp"
#include "exec/signal_watch.hpp"
#include "run/command_template.hpp"
#include "run/joblog.hpp"
#include "run/progress.hpp"
#include "sched/scheduler.hpp"

namespace ferry::run {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed pipe downstream: nothing sensible to do
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// How many children the fd limit allows: each holds 3 or 4 descriptors.
int slot_cap() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  auto usable = static_cast<long long>(std::min<rlim_t>(limit.rlim_cur, 1 << 16)) - 64;
  return static_cast<int>(std::clamp(usable / 4, 1LL, 4096LL));
}

int terminal_width() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

std::string seconds_text(milliseconds duration) {
  return fmt::format("{:g}s", static_cast<double>(duration.count()) / 1000.0);
}

class LocalRun {
 public:
  LocalRun(const RunOptions& options, InputTable table)
      : options_(options),
        table_(std::move(table)),
        template_(options.command_line.command, options.shell) {}

  int run();

 private:
  struct Running {
    sched::Lease lease;
    std::uint64_t seq;
    int slot;
    std::string display;
    double started_epoch;  // seconds, for the joblog
  };
  struct Output {
    std::string out;
    std::string err;
  };

  sched::Time now() const {
    return std::chrono::duration_cast<sched::Time>(Clock::now() - started_);
  }
  void submit_jobs(const std::set<std::uint64_t>& already_succeeded);
  void start_ready();
  void on_finished(exec::ProcessSet::Finished& finished);
  void on_signal(int signal);
  void stop(std::string reason, bool kill_running);
  void check_halt();
  void deliver(std::uint64_t seq, Output output);
  void print(const Output& output);
  void draw_bar(bool final);
  int finish();

  const RunOptions& options_;
  InputTable table_;
  CommandTemplate template_;
  sched::Scheduler scheduler_;
  exec::ProcessSet processes_;
  std::optional<Joblog> joblog_;
  std::vector<std::uint64_t> seq_of_job_;  // [job id - 1]
  std::unordered_map<exec::ProcessSet::Id, Running> running_;
  std::set<int> free_slots_;
  std::map<std::uint64_t, Output> pending_output_;  // --keep-order: finished, not yet printed
  std::uint64_t next_to_print_ = 1;
  std::uint64_t skipped_ = 0;  // succeeded in an earlier run (--resume)
  Clock::time_point started_ = Clock::now();
  std::optional<std::string> stop_reason_;
  int interrupts_ = 0;
  bool show_bar_ = false;
  bool bar_drawn_ = false;
  Clock::time_point next_bar_ = Clock::now();
};

void LocalRun::submit_jobs(const std::set<std::uint64_t>& already_succeeded) {
  sched::JobOptions job;
  job.retry.max_retries = options_.retries;
  job.retry.backoff = options_.retry_delay;
  for (std::uint64_t seq = 1; seq <= table_.size(); ++seq) {
    if (already_succeeded.count(seq)) {
      ++skipped_;
      deliver(seq, {});
      continue;
    }
    scheduler_.submit(job, now());
    seq_of_job_.push_back(seq);
  }
}

void LocalRun::start_ready() {
  while (!free_slots_.empty()) {
    auto lease = scheduler_.lease(now(), "local", std::nullopt);
    if (!lease) return;
    std::uint64_t seq = seq_of_job_[lease->job - 1];
    int slot = *free_slots_.begin();
    free_slots_.erase(free_slots_.begin());
    auto rendered = template_.render(table_.row(seq - 1), seq, slot);
    exec::Command command;
    command.argv = std::move(rendered.argv);
    command.env = {fmt::format("FERRY_SEQ={}", seq), fmt::format("FERRY_SLOT={}", slot)};
    command.timeout = options_.timeout;
    command.kill_grace = options_.kill_grace;
    double epoch =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto id = processes_.start(command);
    running_.emplace(id, Running{*lease, seq, slot, std::move(rendered.display), epoch});
  }
}

void LocalRun::on_finished(exec::ProcessSet::Finished& finished) {
  auto node = running_.extract(finished.id);
  Running& job = node.mapped();
  exec::Result& result = finished.result;
  free_slots_.insert(job.slot);

  if (joblog_) {
    JoblogRow row;
    row.seq = job.seq;
    row.start = job.started_epoch;
    row.runtime = std::chrono::duration<double>(result.wall).count();
    row.received = result.out.size() + result.err.size() + result.out_dropped + result.err_dropped;
    bool has_status = result.end == exec::End::exited || result.end == exec::End::failed_to_start;
    row.exit_code = has_status ? result.exit_code : -1;
    row.signal = result.signal;
    row.command = job.display;
    joblog_->append(row);
  }

  Output output{std::move(result.out), std::move(result.err)};
  if (result.out_dropped)
    output.out.insert(0, fmt::format("[ferry: {} earlier bytes dropped]\n", result.out_dropped));
  if (result.err_dropped)
    output.err.insert(0, fmt::format("[ferry: {} earlier bytes dropped]\n", result.err_dropped));
  if (result.end == exec::End::timed_out)
    output.err +=
        fmt::format("ferry: job {} timed out after {}\n", job.seq, seconds_text(options_.timeout));
  else if (result.end != exec::End::exited)
    output.err += fmt::format("ferry: job {}: {}\n", job.seq, exec::describe(result));

  scheduler_.complete(job.lease.job, job.lease.token, result.succeeded(), exec::describe(result),
                      now());
  sched::State state = scheduler_.find(job.lease.job)->state;
  if (!sched::is_final(state)) return;  // a retry follows; this attempt lives on in the joblog
  deliver(job.seq, std::move(output));
  if (state == sched::State::failed) check_halt();
}

void LocalRun::check_halt() {
  const HaltPolicy& halt = options_.halt;
  if (halt.when == HaltPolicy::When::never || stop_reason_) return;
  auto failed = static_cast<double>(scheduler_.counts()[sched::State::failed]);
  auto total = static_cast<double>(scheduler_.counts().total());
  bool reached = halt.percent ? failed * 100 >= halt.failures * total : failed >= halt.failures;
  if (reached)
    stop(fmt::format("halted after {} failed jobs", failed), halt.when == HaltPolicy::When::now);
}

void LocalRun::stop(std::string reason, bool kill_running) {
  if (!stop_reason_) stop_reason_ = std::move(reason);
  if (kill_running) processes_.terminate_all(options_.kill_grace);
}

void LocalRun::on_signal(int signal) {
  std::size_t running = running_.size();
  if (signal == SIGINT && ++interrupts_ == 1) {
    stop("interrupted", false);
    if (running > 0) {
      draw_bar(true);
      write_all(STDERR_FILENO, fmt::format("ferry: interrupted; waiting for {} running job{} "
                                           "(interrupt again to kill them)\n",
                                           running, running == 1 ? "" : "s"));
    }
    return;
  }
  if (running > 0) {
    draw_bar(true);
    write_all(STDERR_FILENO,
              fmt::format("ferry: killing {} running job{}\n", running, running == 1 ? "" : "s"));
  }
  stop(signal == SIGINT ? "interrupted" : fmt::format("stopped by SIG{}", ::sigabbrev_np(signal)),
       true);
}

void LocalRun::deliver(std::uint64_t seq, Output output) {
  if (!options_.keep_order) {
    print(output);
    return;
  }
  pending_output_.emplace(seq, std::move(output));
  for (auto it = pending_output_.begin();
       it != pending_output_.end() && it->first == next_to_print_;
       it = pending_output_.erase(it), ++next_to_print_)
    print(it->second);
}

void LocalRun::print(const Output& output) {
  if (output.out.empty() && output.err.empty()) return;
  if (bar_drawn_) {
    write_all(STDERR_FILENO, "\r\033[K");
    bar_drawn_ = false;
  }
  write_all(STDOUT_FILENO, output.out);
  write_all(STDERR_FILENO, output.err);
}

void LocalRun::draw_bar(bool final) {
  if (!show_bar_) return;
  auto at = Clock::now();
  // Throttled while visible; once job output wiped it, it comes back at once.
  if (!final && bar_drawn_ && at < next_bar_) return;
  next_bar_ = at + milliseconds(100);
  const sched::Counts& counts = scheduler_.counts();
  Progress progress;
  progress.total = counts.total();
  progress.succeeded = counts[sched::State::succeeded];
  progress.failed = counts[sched::State::failed] + counts[sched::State::cancelled];
  progress.running = running_.size();
  progress.elapsed = std::chrono::duration<double>(at - started_).count();
  write_all(STDERR_FILENO,
            "\r\033[K" + render_progress(progress, terminal_width() - 1) + (final ? "\n" : ""));
  bar_drawn_ = !final;
}

int LocalRun::finish() {
  // Whatever never got to run (or to its retry) ends cancelled, with the reason.
  for (sched::JobId id = 1; id <= seq_of_job_.size(); ++id) {
    if (sched::is_final(scheduler_.find(id)->state)) continue;
    scheduler_.cancel(id, stop_reason_.value_or("stopped"), now());
    deliver(seq_of_job_[id - 1], {});
  }
  for (auto& [seq, output] : pending_output_) print(output);
  pending_output_.clear();
  draw_bar(true);

  const sched::Counts& counts = scheduler_.counts();
  std::size_t failed = counts[sched::State::failed];
  std::size_t not_run = counts[sched::State::cancelled];
  std::size_t unsuccessful = failed + not_run;
  if (unsuccessful > 0 || stop_reason_) {
    std::string summary = fmt::format("ferry: {} of {} jobs failed", failed, counts.total());
    if (not_run) summary += fmt::format(", {} did not run", not_run);
    if (stop_reason_) summary += fmt::format(" ({})", *stop_reason_);
    if (!options_.joblog.empty())
      summary += fmt::format("; rerun with --resume --joblog {} to retry only those",
                             shell_quote(options_.joblog));
    write_all(STDERR_FILENO, summary + "\n");
  }
  return static_cast<int>(std::min<std::size_t>(unsuccessful, 101));
}

int LocalRun::run() {
  if (table_.size() > 0) template_.render(table_.row(0), 1, 1);  // reports bad placeholders now

  std::set<std::uint64_t> already_succeeded;
  if (options_.resume) {
    if (options_.joblog.empty()) throw UsageError("--resume needs --joblog FILE");
    already_succeeded = succeeded_jobs(options_.joblog);
  }

  if (options_.dry_run) {
    for (std::uint64_t seq = 1; seq <= table_.size(); ++seq)
      if (!already_succeeded.count(seq))
        write_all(STDOUT_FILENO, template_.render(table_.row(seq - 1), seq, 1).display + "\n");
    return 0;
  }

  if (!options_.joblog.empty()) joblog_.emplace(options_.joblog, options_.resume);
  int cap = slot_cap();
  auto pending = static_cast<long long>(table_.size());
  int slots = options_.jobs == 0 ? static_cast<int>(std::clamp(pending, 1LL, 1LL * cap))
                                 : std::min(options_.jobs, cap);
  if (options_.jobs > cap)
    write_all(STDERR_FILENO,
              fmt::format("ferry: -j {} exceeds what the open-file limit allows; using {}\n",
                          options_.jobs, cap));
  for (int slot = 1; slot <= slots; ++slot) free_slots_.insert(slot);

  exec::SignalWatch signals;
  show_bar_ = options_.bar && ::isatty(STDERR_FILENO);
  submit_jobs(already_succeeded);

  for (;;) {
    scheduler_.advance(now());
    if (!stop_reason_) start_ready();
    if (running_.empty() && (stop_reason_ || scheduler_.all_final())) break;

    std::optional<Clock::time_point> deadline;
    if (auto wakeup = scheduler_.next_wakeup(); wakeup && !stop_reason_)
      deadline = started_ + *wakeup;
    if (show_bar_ && (!deadline || next_bar_ < *deadline)) deadline = next_bar_;

    auto finished = processes_.wait(deadline, signals.fd());
    for (int signal : signals.take()) on_signal(signal);
    for (auto& one : finished) on_finished(one);
    draw_bar(false);
  }
  return finish();
}

}  // namespace

HaltPolicy parse_halt(const std::string& text) {
  HaltPolicy halt;
  if (text == "never") return halt;
  std::string rest = text;
  halt.when = HaltPolicy::When::soon;
  if (auto comma = text.find(','); comma != std::string::npos) {
    std::string when = text.substr(0, comma);
    if (when == "now")
      halt.when = HaltPolicy::When::now;
    else if (when != "soon")
      throw UsageError("--halt: '" + when + "' is not 'now' or 'soon'");
    rest = text.substr(comma + 1);
  }
  if (rest.rfind("fail=", 0) != 0)
    throw UsageError("--halt takes never, soon,fail=N, now,fail=N or a percent like now,fail=10%");
  std::string number = rest.substr(5);
  if (!number.empty() && number.back() == '%') {
    halt.percent = true;
    number.pop_back();
  }
  std::size_t used = 0;
  try {
    halt.failures = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != number.size() || halt.failures <= 0 ||
      (halt.percent && halt.failures > 100))
    throw UsageError("--halt: '" + rest.substr(5) + "' is not a positive count or percent");
  return halt;
}

int parse_jobs(const std::string& text, int cores) {
  auto bad = [&] {
    return UsageError("-j: '" + text + "' is not a number of jobs (N, 0, N%, +N or -N)");
  };
  if (text.empty()) throw bad();
  std::string number = text;
  char mode = 0;
  if (number.front() == '+' || number.front() == '-') {
    mode = number.front();
    number.erase(0, 1);
  } else if (number.back() == '%') {
    mode = '%';
    number.pop_back();
  }
  if (number.empty() || number.size() > 7 ||
      !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw bad();
  int value = std::stoi(number);
  switch (mode) {
    case '+':
      return cores + value;
    case '-':
      return std::max(1, cores - value);
    case '%':
      return std::max(1, static_cast<int>(std::lround(cores * value / 100.0)));
    default:
      return value;
  }
}

int run(const RunOptions& options, std::istream& stdin_stream) {
  if (options.jobs < 0) throw UsageError("-j must not be negative");
  if (options.retries < 0) throw UsageError("--retries must not be negative");
  InputTable table = load_inputs(options.command_line.sources, stdin_stream);
  LocalRun local(options, std::move(table));
  return local.run();
}

}  // namespace ferry::run
