#include "run/runner.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <unordered_map>
#include <utility>

#include "exec/process_set.hpp"
#include "exec/signal_watch.hpp"
#include "run/blocks.hpp"
#include "run/command_template.hpp"
#include "run/job_queue.hpp"
#include "run/joblog.hpp"
#include "run/output_order.hpp"
#include "run/progress.hpp"
#include "run/result_files.hpp"
#include "sched/scheduler.hpp"

namespace ferry::run {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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

double epoch_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// MemAvailable from /proc/meminfo, in bytes; 0 when unknown.
std::uint64_t memory_available() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kilobytes = 0;
  std::string unit;
  while (meminfo >> key >> kilobytes >> unit)
    if (key == "MemAvailable:") return kilobytes * 1024;
  return 0;
}

std::string plural(std::size_t count, const char* word) {
  return fmt::format("{} {}{}", count, word, count == 1 ? "" : "s");
}

class LocalRun {
 public:
  LocalRun(const RunOptions& options, int stdin_fd);
  ~LocalRun();
  int run();

 private:
  struct Running {
    std::uint64_t seq;
    int attempts;  // including this one
    int slot;
    std::vector<std::string> args;
    std::optional<std::string> stdin_data;
    std::string display;
    double started_epoch;  // seconds, for the joblog
    std::shared_ptr<ResultFiles> results;
    milliseconds timeout;  // this attempt's (--timeout N% makes it vary)
  };
  enum WakeTag : std::uint64_t { kSignals = 1, kInput = 2 };

  void read_inputs();
  InputRows::Status next_row(Row& row);
  void accept_row(Row row);
  void take_row(Row row);
  void take_block(std::string block);
  void preload_rows();
  void fill_input();
  int input_fd() const;
  bool resources_allow_start();
  void refresh_slots();
  std::string tag_for(const PendingJob& job, int slot) const;
  void make_tag_template();
  std::shared_ptr<ResultFiles> open_results(const PendingJob& job);
  void start_ready();
  void start(PendingJob job);
  void on_finished(exec::ProcessSet::Finished& finished);
  void on_signal(int signal);
  void stop(std::string reason, bool kill_running);
  void check_halt(const exec::Result& last);
  void watch_input(bool watch);
  void note(const std::string& line);
  void draw_bar(bool final);
  int dry_run();
  int finish();

  const RunOptions& options_;
  InputRows rows_;
  std::unique_ptr<BlockReader> blocks_;      // --pipe: stdin in blocks, instead of rows
  std::optional<CommandTemplate> template_;  // with --header, once the header line is read
  std::optional<CommandTemplate> tag_template_;
  TemplateOptions template_options_;
  std::optional<std::regex> colsep_;
  std::deque<Row> preloaded_;  // --shuf, -m, -X: every row, read first
  bool preloaded_all_ = false;
  std::vector<std::string> batch_;  // -N: inputs gathered for the next job
  std::size_t args_per_job_ = 0;
  std::uint64_t expected_jobs_ = 0;           // --halt with a percent: every input, read first
  std::deque<double> runtimes_;               // --timeout N%: recent succeeded runtimes, seconds
  std::optional<Clock::time_point> wake_at_;  // --delay, --memfree, --load: try again then
  Clock::time_point next_start_ = Clock::now();
  int slot_limit_ = 0;  // slots above it are not given back (-j FILE lowered)
  std::filesystem::file_time_type jobs_file_time_{};
  JobQueue queue_;
  exec::ProcessSet processes_;  // first: it ignores SIGPIPE before anything is written
  OutputStreams streams_{STDOUT_FILENO, STDERR_FILENO};
  SpoolBudget budget_;
  std::unique_ptr<OutputOrder> output_;  // none with -u: jobs write to our stdout themselves
  std::optional<Joblog> joblog_;
  std::set<std::uint64_t> skip_;  // --resume: seqs the joblog settled
  std::unordered_map<exec::ProcessSet::Id, Running> running_;
  std::set<int> free_slots_;
  std::uint64_t last_seq_ = 0;  // rows read so far
  std::uint64_t skipped_ = 0, refused_ = 0, succeeded_ = 0, failed_ = 0, not_run_ = 0;
  bool input_ended_ = false;
  int epoll_fd_ = -1;  // the signals and, while waiting for it, the input
  bool input_watched_ = false;
  std::uint64_t keep_order_window_ = 0;
  Clock::time_point started_ = Clock::now();
  std::optional<std::string> stop_reason_;
  std::optional<int> halt_status_;
  bool output_closed_ = false;
  int stop_signal_ = 0;  // the first signal that stopped the run
  int interrupts_ = 0;
  bool show_bar_ = false;
  bool bar_drawn_ = false;
  Clock::time_point next_bar_ = Clock::now();
};

LocalRun::LocalRun(const RunOptions& options, int stdin_fd)
    : options_(options),
      rows_(options.pipe ? std::vector<InputSource>{{InputSource::Kind::arguments, {}, ""}}
                         : options.command_line.sources,
            options.input, stdin_fd) {
  if (options.pipe) {
    if (!options.command_line.sources.empty())
      throw UsageError("--pipe reads stdin: give no ::: or :::: inputs");
    blocks_ =
        std::make_unique<BlockReader>(stdin_fd, options.block, options.recstart, options.recend);
  }
  if ((options.args_per_job || options.fill_jobs) && rows_.group_count() != 1)
    throw UsageError("-N, -n, -m and -X take one input group");
  if (options.output == OutputMode::ungroup && (options.tag || !options.results.empty()))
    throw UsageError(
        "-u writes output straight through: it cannot be tagged or kept (--tag, "
        "--results)");
  if (!options.colsep.empty()) {
    try {
      colsep_.emplace(options.colsep);  // ECMAScript: close to the Perl regexes of parallel
    } catch (const std::regex_error&) {
      throw UsageError("--colsep: '" + options.colsep + "' is not a regular expression");
    }
  }
  template_options_.replace = options.replace;
  template_options_.context_replace = options.context_replace;
  template_options_.missing_is_empty = options.args_per_job > 0;
  args_per_job_ = static_cast<std::size_t>(options.args_per_job);
  if (!options.header) {
    template_.emplace(options.command_line.command, options.shell, template_options_);
    // Bad replacement strings ({3} with two groups) are reported before anything runs.
    if (!colsep_)
      template_->render(
          std::vector<std::string>(std::max<std::size_t>(rows_.group_count(), args_per_job_)), 1,
          1);
  }
  make_tag_template();
  if (!options.shell)
    if (auto hint = shell_hint(options.command_line.command)) throw UsageError(*hint);
  if (options.resume != Resume::none) {
    if (options.joblog.empty())
      throw UsageError(std::string(options.resume == Resume::all ? "--resume" : "--resume-failed") +
                       " needs --joblog FILE");
    JoblogSummary summary = read_joblog(options.joblog);
    skip_ = options.resume == Resume::all ? summary.recorded : summary.succeeded;
  }
  budget_.directory = temporary_directory(options.tmpdir);
  if (options.output != OutputMode::ungroup)
    output_ = std::make_unique<OutputOrder>(
        options.output == OutputMode::line ? OutputOrder::Mode::line : OutputOrder::Mode::group,
        options.keep_order, streams_, budget_);
  streams_.before_write = [this] {
    if (!bar_drawn_) return;
    bar_drawn_ = false;
    ::write(STDERR_FILENO, "\r\033[K", 4);
  };
}

LocalRun::~LocalRun() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void LocalRun::note(const std::string& line) { streams_.write(exec::Stream::err, line + "\n"); }

// Reads rows while a slot would take them: the read-ahead is one job per
// free slot, so input waits in its pipe, not in ferry's memory.
void LocalRun::read_inputs() {
  while (!input_ended_ && !stop_reason_ && free_slots_.size() > queue_.ready_count()) {
    if (options_.keep_order && !options_.dry_run && output_ &&
        last_seq_ >= output_->next_to_print() + keep_order_window_)
      return;  // -k: enough finished outputs wait for an earlier job
    if (blocks_) {
      if (auto block = blocks_->next()) {
        take_block(std::move(*block));
      } else if (blocks_->at_end()) {
        input_ended_ = true;
      } else if (!blocks_->pollable()) {
        blocks_->fill();
      } else {
        watch_input(true);
        return;
      }
      continue;
    }
    Row row;
    switch (next_row(row)) {
      case InputRows::Status::row:
        accept_row(std::move(row));
        break;
      case InputRows::Status::need_input:
        if (input_fd() < 0) {
          rows_.fill();  // a regular file: ready at once
          break;
        }
        watch_input(true);
        return;
      case InputRows::Status::end:
        if (!batch_.empty()) take_row(Row{std::exchange(batch_, {})});
        input_ended_ = true;
        watch_input(false);
        break;
    }
  }
}

InputRows::Status LocalRun::next_row(Row& row) {
  if (!preloaded_all_) return rows_.next(row);
  if (preloaded_.empty()) return InputRows::Status::end;
  row = std::move(preloaded_.front());
  preloaded_.pop_front();
  return InputRows::Status::row;
}

// --shuf and -m/-X need every row before the first job: read them all.
void LocalRun::preload_rows() {
  for (Row& row : read_all_rows(rows_)) preloaded_.push_back(std::move(row));
  preloaded_all_ = true;
  if (options_.shuffle) {
    std::mt19937_64 random(std::random_device{}());
    std::shuffle(preloaded_.begin(), preloaded_.end(), random);
  }
}

// Columns, the header line and -N's batches, then a job.
void LocalRun::accept_row(Row row) {
  if (colsep_) {
    std::vector<std::string> columns;
    for (const std::string& value : row.args) {
      std::sregex_token_iterator it(value.begin(), value.end(), *colsep_, -1), end;
      for (; it != end; ++it) columns.push_back(*it);
      if (value.empty()) columns.emplace_back();
    }
    row.args = std::move(columns);
  }
  if (!template_) {  // --header: this line names the columns
    template_options_.column_names = row.args;
    template_.emplace(options_.command_line.command, options_.shell, template_options_);
    make_tag_template();
    return;
  }
  if (args_per_job_ > 0) {
    batch_.insert(batch_.end(), row.args.begin(), row.args.end());
    if (batch_.size() >= args_per_job_) take_row(Row{std::exchange(batch_, {})});
    return;
  }
  take_row(std::move(row));
}

void LocalRun::take_block(std::string block) {
  std::uint64_t seq = ++last_seq_;
  if (skip_.count(seq)) {
    ++skipped_;
    if (output_) output_->skipped(seq);
    return;
  }
  queue_.push(PendingJob{seq, 0, {}, std::move(block)});
}

void LocalRun::take_row(Row row) {
  std::uint64_t seq = ++last_seq_;
  if (skip_.count(seq)) {
    ++skipped_;
    if (output_) output_->skipped(seq);
    return;
  }
  for (const std::string& arg : row.args)
    if (arg.find('\0') != std::string::npos) {
      ++refused_;
      note(
          fmt::format("ferry: input {} holds a NUL byte, which no argument can carry: not run "
                      "(for NUL-separated input, use -0)",
                      seq));
      if (output_) output_->skipped(seq);
      return;
    }
  queue_.push(PendingJob{seq, 0, std::move(row.args), std::nullopt});
}

int LocalRun::input_fd() const {
  if (blocks_) return blocks_->pollable() && !input_ended_ ? blocks_->fd() : -1;
  return preloaded_all_ ? -1 : rows_.wait_fd();
}

void LocalRun::fill_input() {
  if (blocks_)
    blocks_->fill();
  else
    rows_.fill();
}

void LocalRun::watch_input(bool watch) {
  if (watch == input_watched_) return;
  int fd = input_fd();
  if (watch && fd >= 0) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kInput;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) < 0) {
      fill_input();  // cannot be watched: read it blocking, it is all we can do
      return;
    }
    input_watched_ = true;
  } else if (!watch && input_watched_) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    input_watched_ = false;
  }
}

void LocalRun::start_ready() {
  while (!free_slots_.empty() && queue_.has_ready(Clock::now())) {
    auto now = Clock::now();
    if (options_.delay.count() > 0 && now < next_start_) {
      wake_at_ = next_start_;
      return;
    }
    if (!resources_allow_start()) {
      wake_at_ = now + std::chrono::seconds(1);
      return;
    }
    start(std::move(*queue_.pop(now)));
    next_start_ = now + options_.delay;
  }
}

// --memfree and --load: the machine has room for another job.
bool LocalRun::resources_allow_start() {
  if (options_.memfree > 0 && memory_available() < options_.memfree) return false;
  if (options_.max_load > 0) {
    double load[1];
    if (::getloadavg(load, 1) == 1 && load[0] >= options_.max_load) return false;
  }
  return true;
}

// -j FILE: the file says how many jobs at once; it may change as the run goes.
void LocalRun::refresh_slots() {
  std::error_code error;
  auto modified = std::filesystem::last_write_time(options_.jobs_file, error);
  if (error || modified == jobs_file_time_) return;
  jobs_file_time_ = modified;
  std::ifstream file(options_.jobs_file);
  std::string text;
  file >> text;
  int wanted = 0;
  try {
    wanted = parse_jobs(text, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
  } catch (const UsageError&) {
    return;  // keep the slots while the file is being written
  }
  wanted = std::clamp(wanted == 0 ? slot_cap() : wanted, 1, slot_cap());
  for (int slot = slot_limit_ + 1; slot <= wanted; ++slot) free_slots_.insert(slot);
  std::erase_if(free_slots_, [&](int slot) { return slot > wanted; });
  slot_limit_ = wanted;
}

// --tagstring: replacement strings (and --header's names), nothing appended.
void LocalRun::make_tag_template() {
  if (options_.tagstring.empty()) return;
  TemplateOptions tag_options = template_options_;
  tag_options.append_inputs = false;
  tag_options.context_replace = false;
  tag_template_.emplace(std::vector{options_.tagstring}, false, tag_options);
}

std::string LocalRun::tag_for(const PendingJob& job, int slot) const {
  if (!options_.tag) return "";
  std::string tag;
  if (tag_template_) {
    auto words = tag_template_->render(job.args, job.seq, slot).argv;
    for (std::size_t i = 0; i < words.size(); ++i) tag += (i ? " " : "") + words[i];
  } else {
    for (std::size_t i = 0; i < job.args.size(); ++i) tag += (i ? " " : "") + job.args[i];
  }
  return tag + "\t";
}

std::shared_ptr<ResultFiles> LocalRun::open_results(const PendingJob& job) {
  if (options_.files) return ResultFiles::for_files(budget_.directory);
  if (options_.results.empty()) return nullptr;
  return ResultFiles::for_results(options_.results, job.args, job.seq);
}

void LocalRun::start(PendingJob job) {
  int slot = *free_slots_.begin();
  free_slots_.erase(free_slots_.begin());
  auto rendered = template_->render(job.args, job.seq, slot);
  exec::Command command;
  command.argv = std::move(rendered.argv);
  command.env = {fmt::format("FERRY_SEQ={}", job.seq), fmt::format("FERRY_SLOT={}", slot)};
  command.timeout = options_.timeout;
  if (options_.timeout_percent > 0 && runtimes_.size() >= 3) {
    std::vector<double> sorted(runtimes_.begin(), runtimes_.end());
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2),
                     sorted.end());
    double median = sorted[sorted.size() / 2];
    command.timeout =
        milliseconds(std::max<long long>(1, std::llround(median * options_.timeout_percent * 10)));
  }
  command.kill_grace = options_.kill_grace;
  command.stdin_data = job.stdin_data;
  int attempts = job.attempts + 1;
  auto results = open_results(job);
  if (output_) {
    bool final = options_.attempts != 0 && attempts >= options_.attempts;
    output_->started(job.seq, final, tag_for(job, slot));
    if (results && !results->name().empty())
      output_->output(job.seq, exec::Stream::out, results->name() + "\n");
    command.on_output = [this, seq = job.seq, results](exec::Stream stream, std::string_view data) {
      if (results && results->keeps(stream))
        results->write(stream, data);  // as in GNU parallel, kept in the files, not printed
      else
        output_->output(seq, stream, data);
    };
  } else {
    command.stdout_fd = STDOUT_FILENO;
    command.stderr_fd = STDERR_FILENO;
  }
  auto id = processes_.start(command);
  running_.emplace(id, Running{job.seq, attempts, slot, std::move(job.args),
                               std::move(job.stdin_data), std::move(rendered.display),
                               epoch_seconds(), std::move(results), command.timeout});
}

void LocalRun::on_finished(exec::ProcessSet::Finished& finished) {
  auto node = running_.extract(finished.id);
  Running& job = node.mapped();
  exec::Result& result = finished.result;
  if (options_.jobs_file.empty() || job.slot <= slot_limit_) free_slots_.insert(job.slot);

  if (joblog_) {
    JoblogRow row;
    row.seq = job.seq;
    row.start = job.started_epoch;
    row.runtime = std::chrono::duration<double>(result.wall).count();
    row.received = result.out_bytes + result.err_bytes;
    row.sent = job.stdin_data ? job.stdin_data->size() : 0;
    bool has_status = result.end == exec::End::exited || result.end == exec::End::failed_to_start;
    row.exit_code = has_status ? result.exit_code : -1;
    row.signal = result.signal;
    row.command = job.display;
    joblog_->append(row);
  }

  std::string message;
  if (result.end == exec::End::timed_out)
    message = fmt::format("ferry: job {} timed out after {}\n", job.seq, seconds_text(job.timeout));
  else if (result.end != exec::End::exited)
    message = fmt::format("ferry: job {}: {}\n", job.seq, exec::describe(result));

  bool succeeded = result.succeeded();
  bool retry =
      !succeeded && !stop_reason_ && (options_.attempts == 0 || job.attempts < options_.attempts);
  if (output_)
    output_->ended(job.seq, !retry, message);
  else if (!message.empty())
    streams_.write(exec::Stream::err, message);
  if (retry) {
    sched::RetryPolicy policy;
    policy.backoff = options_.retry_delay;
    queue_.push_at(
        PendingJob{job.seq, job.attempts, std::move(job.args), std::move(job.stdin_data)},
        Clock::now() + sched::retry_delay(policy, job.attempts));
    return;
  }
  ++(succeeded ? succeeded_ : failed_);
  if (succeeded && options_.timeout_percent > 0) {
    runtimes_.push_back(std::chrono::duration<double>(result.wall).count());
    if (runtimes_.size() > 1000) runtimes_.pop_front();  // the median of recent jobs
  }
  check_halt(result);
}

void LocalRun::check_halt(const exec::Result& last) {
  const HaltPolicy& halt = options_.halt;
  if (halt.when == HaltPolicy::When::never || halt_status_) return;
  bool succeeded = last.succeeded();
  std::uint64_t counted = 0;
  switch (halt.on) {
    case HaltPolicy::On::fail:
      if (succeeded) return;
      counted = failed_;
      break;
    case HaltPolicy::On::success:
      if (!succeeded) return;
      counted = succeeded_;
      break;
    case HaltPolicy::On::done:
      counted = failed_ + succeeded_;
      break;
  }
  // A percent is of all jobs: the input was read whole first (see run()).
  auto jobs = static_cast<double>(std::max<std::uint64_t>(expected_jobs_, last_seq_) - skipped_);
  bool reached = halt.percent ? static_cast<double>(counted) * 100 >= halt.count * jobs
                              : static_cast<double>(counted) >= halt.count;
  if (!reached) return;
  // GNU parallel's exit status: success=... gives 0; fail=1 (or done=1) the
  // status of the job that ended it; a percent the percentage of jobs that
  // failed; otherwise the number of failed jobs.
  int own = last.end == exec::End::exited || last.end == exec::End::failed_to_start
                ? last.exit_code
                : 128 + last.signal;
  if (halt.on == HaltPolicy::On::success)
    halt_status_ = 0;
  else if (!halt.percent && halt.count == 1)
    halt_status_ = own;
  else if (halt.percent)
    halt_status_ = static_cast<int>(std::lround(static_cast<double>(failed_) * 100 / jobs));
  else
    halt_status_ = static_cast<int>(std::min<std::uint64_t>(failed_, 101));
  const char* what = halt.on == HaltPolicy::On::fail      ? "failed"
                     : halt.on == HaltPolicy::On::success ? "succeeded"
                                                          : "ended";
  stop(fmt::format("halted: {} {}", plural(counted, "job"), what),
       halt.when == HaltPolicy::When::now);
}

void LocalRun::stop(std::string reason, bool kill_running) {
  if (!stop_reason_) stop_reason_ = std::move(reason);
  if (kill_running) processes_.terminate_all(options_.kill_grace);
}

void LocalRun::on_signal(int signal) {
  if (!stop_signal_) stop_signal_ = signal;
  std::size_t running = running_.size();
  if (signal == SIGINT && ++interrupts_ == 1) {
    stop("interrupted", false);
    if (running > 0) {
      draw_bar(true);
      note(fmt::format("ferry: interrupted; waiting for {} {} (interrupt again to kill them)",
                       running, running == 1 ? "running job" : "running jobs"));
    }
    return;
  }
  if (running > 0) {
    draw_bar(true);
    note(fmt::format("ferry: killing {} running job{}", running, running == 1 ? "" : "s"));
  }
  stop(signal == SIGINT ? "interrupted" : fmt::format("stopped by SIG{}", ::sigabbrev_np(signal)),
       true);
}

void LocalRun::draw_bar(bool final) {
  if (!show_bar_) return;
  auto at = Clock::now();
  // Throttled while visible; once job output wiped it, it comes back at once.
  if (!final && bar_drawn_ && at < next_bar_) return;
  next_bar_ = at + milliseconds(100);
  Progress progress;
  progress.total = last_seq_ - skipped_;
  progress.total_known = input_ended_;
  progress.succeeded = succeeded_;
  progress.failed = failed_ + refused_;
  progress.running = running_.size();
  progress.elapsed = std::chrono::duration<double>(at - started_).count();
  std::string line =
      "\r\033[K" + render_progress(progress, terminal_width() - 1) + (final ? "\n" : "");
  ::write(STDERR_FILENO, line.data(), line.size());
  bar_drawn_ = !final;
}

// --dry-run: every job's command, through the same rows, columns and
// batches as a real run, started never.
int LocalRun::dry_run() {
  free_slots_.insert(1);  // read_inputs() reads while a slot would take a job
  for (;;) {
    while (!input_ended_ && queue_.ready_count() == 0) {
      read_inputs();
      if (input_watched_) {  // a pipe with nothing yet: wait for it
        watch_input(false);
        fill_input();
      }
    }
    auto job = queue_.pop(Clock::now());
    if (!job) return 0;
    streams_.write(exec::Stream::out, template_->render(job->args, job->seq, 1).display + "\n");
    if (streams_.stdout_closed()) return 141;
  }
}

int LocalRun::finish() {
  // What was read and never got to run (or to its retry) did not run.
  for (PendingJob& job : queue_.take_all()) {
    ++not_run_;
    if (output_) output_->skipped(job.seq);
  }
  if (output_) output_->flush();
  draw_bar(true);

  std::uint64_t unsuccessful = failed_ + not_run_ + refused_;
  if (unsuccessful > 0 || stop_reason_) {
    std::string summary =
        fmt::format("ferry: {} of {} failed", failed_, plural(failed_ + succeeded_, "job"));
    if (not_run_ + refused_) summary += fmt::format(", {} did not run", not_run_ + refused_);
    if (!input_ended_) summary += ", input left unread";
    if (stop_reason_) summary += fmt::format(" ({})", *stop_reason_);
    if (!options_.joblog.empty() && !output_closed_)
      summary += fmt::format("; rerun with --resume-failed --joblog {} to retry only those",
                             shell_quote(options_.joblog));
    note(summary);
  }
  if (output_closed_) return 141;               // as if killed by SIGPIPE, like parallel
  if (stop_signal_) return 128 + stop_signal_;  // as a shell reports an interrupted program
  if (halt_status_) return *halt_status_;
  if (options_.halt.percent && options_.halt.on != HaltPolicy::On::success) {
    // As in GNU parallel: with a percent, the percentage of jobs that failed.
    auto jobs = std::max<std::uint64_t>(1, last_seq_ - skipped_);
    return static_cast<int>(
        std::lround(static_cast<double>(failed_) * 100 / static_cast<double>(jobs)));
  }
  return static_cast<int>(std::min<std::uint64_t>(unsuccessful, 101));
}

int LocalRun::run() {
  if (options_.dry_run) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    return dry_run();
  }
  if (!options_.joblog.empty()) joblog_.emplace(options_.joblog, options_.resume != Resume::none);
  if (options_.nice != 0 && ::setpriority(PRIO_PROCESS, 0, options_.nice) < 0)
    note(fmt::format("ferry: --nice {}: {}", options_.nice, std::strerror(errno)));
  int cap = slot_cap();
  int slots = options_.jobs == 0 ? cap : std::min(options_.jobs, cap);
  if (!options_.jobs_file.empty()) {
    refresh_slots();
    slots = slot_limit_;
  }
  if (options_.jobs > cap)
    note(fmt::format("ferry: -j {} exceeds what the open-file limit allows; using {}",
                     options_.jobs, cap));
  for (int slot = 1; slot <= slots; ++slot) free_slots_.insert(slot);
  slot_limit_ = slots;
  // --shuf and -m/-X need every row first; so does a --halt percent, which
  // is of all jobs.
  if (options_.shuffle || options_.fill_jobs || options_.halt.percent) preload_rows();
  if (options_.halt.percent) {
    std::uint64_t rows = preloaded_.size();
    if (args_per_job_ > 0) rows = (rows + args_per_job_ - 1) / args_per_job_;
    expected_jobs_ = rows;
  }
  if (options_.fill_jobs) {
    // -m/-X: the inputs spread evenly over the slots, as in GNU parallel.
    std::size_t total = preloaded_.size();
    args_per_job_ = std::max<std::size_t>(
        1, (total + static_cast<std::size_t>(slots) - 1) / static_cast<std::size_t>(slots));
  }
  // -k: how many jobs may run ahead of the earliest unprinted one, so that
  // a slow job does not make ferry hold every later output meanwhile.
  keep_order_window_ = std::max<std::uint64_t>(1024, 4 * static_cast<std::uint64_t>(slots));

  exec::SignalWatch signals;
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kSignals;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signals.fd(), &event);
  show_bar_ = options_.bar && ::isatty(STDERR_FILENO);

  for (;;) {
    if (!options_.jobs_file.empty()) refresh_slots();
    wake_at_.reset();
    read_inputs();
    if (!stop_reason_) start_ready();
    bool nothing_left = input_ended_ && queue_.empty();
    if (running_.empty() && (stop_reason_ || nothing_left)) break;

    std::optional<Clock::time_point> deadline;
    if (!stop_reason_) deadline = queue_.next_wakeup();
    if (wake_at_ && !stop_reason_ && (!deadline || *wake_at_ < *deadline)) deadline = wake_at_;
    if (!options_.jobs_file.empty() &&
        (!deadline || Clock::now() + std::chrono::seconds(1) < *deadline))
      deadline = Clock::now() + std::chrono::seconds(1);  // look at the -j file again
    if (show_bar_ && (!deadline || next_bar_ < *deadline)) deadline = next_bar_;

    auto finished = processes_.wait(deadline, epoll_fd_);
    for (int signal : signals.take()) on_signal(signal);
    if (input_watched_) {
      epoll_event ready[2];
      int n = ::epoll_wait(epoll_fd_, ready, 2, 0);
      for (int i = 0; i < n; ++i)
        if (ready[i].data.u64 == kInput) {
          watch_input(false);
          fill_input();
        }
    }
    for (auto& one : finished) on_finished(one);
    if (streams_.stdout_closed() && !output_closed_) {
      output_closed_ = true;
      note("ferry: output closed (its reader went away): starting no more jobs");
      stop("output closed", true);
    }
    draw_bar(false);
  }
  return finish();
}

}  // namespace

int run(const RunOptions& options, int stdin_fd) {
  LocalRun local(options, stdin_fd);
  return local.run();
}

}  // namespace ferry::run
