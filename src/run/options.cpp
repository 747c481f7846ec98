#include "run/options.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <string_view>

namespace ferry::run {
namespace {

using std::chrono::milliseconds;

// A number of seconds: finite, not negative (or positive when `positive`).
milliseconds parse_seconds(const std::string& option, const std::string& text, bool positive) {
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  bool valid = !text.empty() && error == std::errc() && end == text.data() + text.size() &&
               std::isfinite(value) && value >= 0 && value < 1e9 && (!positive || value > 0);
  if (!valid)
    throw UsageError(option + " takes " + (positive ? "a positive" : "a") +
                     " number of seconds, like 30 or 0.5 (not '" + text + "')");
  return milliseconds(std::llround(value * 1000));
}

int parse_count(const std::string& option, const std::string& text, int minimum, int maximum) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < minimum ||
      value > maximum)
    throw UsageError(option + " takes a whole number from " + std::to_string(minimum) + " to " +
                     std::to_string(maximum) + " (not '" + text + "')");
  return value;
}

// -d: one byte, or an escape: \n \t \r \0 \\ (as GNU parallel takes them).
char parse_delimiter(const std::string& text) {
  if (text.size() == 1) return text[0];
  static const std::pair<std::string_view, char> escapes[] = {
      {"\\n", '\n'}, {"\\t", '\t'}, {"\\r", '\r'}, {"\\0", '\0'}, {"\\\\", '\\'}};
  for (auto [name, value] : escapes)
    if (text == name) return value;
  throw UsageError("-d takes one character or \\n, \\t, \\r, \\0, \\\\ (not '" + text + "')");
}

// 1k, 10M, 2G (powers of 1024, as parallel reads them), or bytes.
std::uint64_t parse_size(const std::string& option, const std::string& text) {
  std::string number = text;
  std::uint64_t unit = 1;
  if (!number.empty()) {
    switch (number.back()) {
      case 'k':
      case 'K':
        unit = 1ull << 10;
        break;
      case 'm':
      case 'M':
        unit = 1ull << 20;
        break;
      case 'g':
      case 'G':
        unit = 1ull << 30;
        break;
      case 't':
      case 'T':
        unit = 1ull << 40;
        break;
    }
    if (unit != 1) number.pop_back();
  }
  double value = 0;
  auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || error != std::errc() || end != number.data() + number.size() ||
      !std::isfinite(value) || value < 0 || value * static_cast<double>(unit) > 1e15)
    throw UsageError(option + " takes a size like 100M or 2G (not '" + text + "')");
  return static_cast<std::uint64_t>(value * static_cast<double>(unit));
}

// parallel's --termseq TERM,200,TERM,100,KILL,25: ferry sends SIGTERM, then
// SIGKILL after the milliseconds before the KILL.
milliseconds parse_termseq(const std::string& text) {
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    auto comma = text.find(',', start);
    parts.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const char* usage = "--termseq takes TERM,ms,...,KILL,ms (ferry sends SIGTERM, then SIGKILL)";
  if (parts.size() < 2 || parts.size() % 2 || parts[0] != "TERM" ||
      parts[parts.size() - 2] != "KILL")
    throw UsageError(usage);
  long long total = 0;
  for (std::size_t i = 0; i + 1 < parts.size(); i += 2) {
    int wait = parse_count("--termseq", parts[i + 1], 0, 3'600'000);
    if (parts[i] == "KILL") {
      if (i + 2 != parts.size()) throw UsageError(usage);
      break;
    }
    if (parts[i] != "TERM") throw UsageError(usage);
    total += wait;
  }
  return milliseconds(std::max(total, 1LL));
}

struct Option {
  std::vector<std::string_view> names;
  bool takes_value;
  std::function<void(RunOptions&, const std::string& name, const std::string& value)> apply;
};

// Options GNU parallel has that ferry refuses, with the reason.
struct Refused {
  std::vector<std::string_view> names;
  const char* reason;
};

const std::vector<Refused>& refused_options() {
  static const std::vector<Refused> refused = {
      {{"-S", "--sshlogin", "--sshloginfile", "--slf", "--transferfile", "--return", "--cleanup",
        "--trc", "--basefile", "--bf"},
       "runs jobs on this machine; for many machines use a ferry server and workers "
       "(ferry map)"},
      {{"--semaphore", "--sem", "--fg", "--bg"}, "has no semaphore mode"},
      {{"--plus"}, "has no --plus replacement strings"},
      {{"--cat", "--fifo"}, "gives jobs their input on stdin with --pipe, not as files"},
      {{"--roundrobin", "--round-robin"}, "starts one job per --pipe block"},
      {{"--env", "--record-env", "--session"},
       "passes ferry's whole environment to every job already"},
      {{"--sql", "--sqlmaster", "--sqlworker", "--sqlandworker"}, "has no SQL queue"},
  };
  return refused;
}

// parallel's older forms: 1 and 2 halt on a failure (soon, now), -1 and -2
// on a success.
HaltPolicy halt_shorthand(int level) {
  HaltPolicy halt;
  if (level == 0) return halt;
  halt.when = std::abs(level) == 1 ? HaltPolicy::When::soon : HaltPolicy::When::now;
  halt.on = level > 0 ? HaltPolicy::On::fail : HaltPolicy::On::success;
  halt.count = 1;
  return halt;
}

const std::vector<Option>& options() {
  using O = RunOptions;
  static const std::vector<Option> all = {
      {{"-j", "--jobs", "-P", "--max-procs"},
       true,
       [](O& o, const std::string&, const std::string& v) {
         o.jobs_file.clear();
         try {
           o.jobs = parse_jobs(v, o.jobs);
         } catch (const UsageError&) {
           if (::access(v.c_str(), R_OK) != 0) throw;
           o.jobs_file = v;  // -j FILE: read as the run goes, so it can be changed
         }
       }},
      {{"--shell"}, false, [](O& o, const std::string&, const std::string&) { o.shell = true; }},
      {{"-q", "--quote"}, false, [](O&, const std::string&, const std::string&) {}},
      {{"--retries"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.attempts = parse_count(n, v, 0, 1'000'000);
       }},
      {{"--retry-delay"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.retry_delay = parse_seconds(n, v, false);
       }},
      {{"--timeout"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         if (!v.empty() && v.back() == '%') {  // of the median runtime so far
           o.timeout_percent =
               static_cast<double>(parse_seconds(n, v.substr(0, v.size() - 1), true).count()) /
               1000;
           o.timeout = milliseconds(0);
         } else {
           o.timeout = parse_seconds(n, v, false);  // 0: none, as in parallel
           o.timeout_percent = 0;
         }
       }},
      {{"--termseq"},
       true,
       [](O& o, const std::string&, const std::string& v) { o.kill_grace = parse_termseq(v); }},
      {{"--kill-grace"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.kill_grace = parse_seconds(n, v, false);
       }},
      {{"-k", "--keep-order"},
       false,
       [](O& o, const std::string&, const std::string&) { o.keep_order = true; }},
      {{"--group"},
       false,
       [](O& o, const std::string&, const std::string&) { o.output = OutputMode::group; }},
      {{"--line-buffer", "--lb"},
       false,
       [](O& o, const std::string&, const std::string&) { o.output = OutputMode::line; }},
      {{"-u", "--ungroup"},
       false,
       [](O& o, const std::string&, const std::string&) { o.output = OutputMode::ungroup; }},
      {{"--joblog"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         if (v.empty()) throw UsageError(n + " needs a file name");
         o.joblog = v;
       }},
      {{"--resume"},
       false,
       [](O& o, const std::string&, const std::string&) { o.resume = Resume::all; }},
      {{"--resume-failed"},
       false,
       [](O& o, const std::string&, const std::string&) { o.resume = Resume::failed; }},
      {{"--halt", "--halt-on-error"},
       true,
       [](O& o, const std::string&, const std::string& v) { o.halt = parse_halt(v); }},
      {{"--bar", "--progress", "--eta"},
       false,
       [](O& o, const std::string&, const std::string&) { o.bar = true; }},
      {{"--dry-run", "--dryrun"},
       false,
       [](O& o, const std::string&, const std::string&) { o.dry_run = true; }},
      {{"-a", "--arg-file"},
       true,
       [](O& o, const std::string&, const std::string& v) {
         InputSource source;
         source.kind = InputSource::Kind::file;
         source.path = v;
         o.command_line.sources.push_back(source);  // before any ::: group, in order
       }},
      {{"-0", "--null"},
       false,
       [](O& o, const std::string&, const std::string&) { o.input.delimiter = '\0'; }},
      {{"-d", "--delimiter"},
       true,
       [](O& o, const std::string&, const std::string& v) {
         o.input.delimiter = parse_delimiter(v);
       }},
      {{"-E", "--eof"},
       true,
       [](O& o, const std::string&, const std::string& v) { o.input.end_of_file = v; }},
      {{"-r", "--no-run-if-empty"},
       false,
       [](O& o, const std::string&, const std::string&) { o.input.skip_empty = true; }},
      {{"--link", "--xapply"},
       false,
       [](O& o, const std::string&, const std::string&) { o.link = true; }},
      {{"--tmpdir", "--tempdir"},
       true,
       [](O& o, const std::string&, const std::string& v) { o.tmpdir = v; }},
      {{"-I"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         if (v.empty()) throw UsageError(n + " needs a replacement string, like -I XX");
         o.replace = v;
       }},
      {{"-N", "-n", "--max-args", "-L", "--max-lines"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.args_per_job = parse_count(n, v, 1, 100'000);
       }},
      {{"-m"}, false, [](O& o, const std::string&, const std::string&) { o.fill_jobs = true; }},
      {{"-X", "--xargs"},
       false,
       [](O& o, const std::string& n, const std::string&) {
         o.fill_jobs = true;
         o.context_replace = n == "-X";
       }},
      {{"--colsep", "-C"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         if (v.empty()) throw UsageError(n + " needs a separator (a regular expression)");
         o.colsep = v;
       }},
      {{"--header"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         if (v != ":" && v != ".*")
           throw UsageError(n + " takes : (the first line names the columns), not '" + v + "'");
         o.header = true;
       }},
      {{"--tag"}, false, [](O& o, const std::string&, const std::string&) { o.tag = true; }},
      {{"--tagstring"},
       true,
       [](O& o, const std::string&, const std::string& v) {
         o.tag = true;
         o.tagstring = v;
       }},
      {{"--results", "--res"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         if (v.empty()) throw UsageError(n + " needs a directory");
         o.results = v;
       }},
      {{"--delay"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.delay = parse_seconds(n, v, false);
       }},
      {{"--files"}, false, [](O& o, const std::string&, const std::string&) { o.files = true; }},
      {{"--shuf"}, false, [](O& o, const std::string&, const std::string&) { o.shuffle = true; }},
      {{"--nice"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.nice = parse_count(n, v, -20, 19);
       }},
      {{"--memfree"},
       true,
       [](O& o, const std::string& n, const std::string& v) { o.memfree = parse_size(n, v); }},
      {{"--load"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         o.max_load = static_cast<double>(parse_seconds(n, v, true).count()) / 1000;
       }},
      {{"--pipe", "--spreadstdin"},
       false,
       [](O& o, const std::string&, const std::string&) { o.pipe = true; }},
      {{"--block", "--block-size"},
       true,
       [](O& o, const std::string& n, const std::string& v) {
         std::uint64_t size = parse_size(n, v);
         if (size == 0 || size > (1u << 30)) throw UsageError(n + " takes 1 byte to 1G");
         o.block = static_cast<std::size_t>(size);
       }},
      {{"--recstart"},
       true,
       [](O& o, const std::string&, const std::string& v) { o.recstart = v; }},
      {{"--recend"}, true, [](O& o, const std::string&, const std::string& v) { o.recend = v; }},
      {{"-h", "--help"},
       false,
       [](O& o, const std::string&, const std::string&) { o.help = true; }},
  };
  return all;
}

const Option* find_option(std::string_view name) {
  for (const Option& option : options())
    if (std::find(option.names.begin(), option.names.end(), name) != option.names.end())
      return &option;
  return nullptr;
}

[[noreturn]] void unknown(const std::string& name) {
  for (const Refused& refused : refused_options())
    if (std::find(refused.names.begin(), refused.names.end(), name) != refused.names.end())
      throw UsageError(name + " is not supported: ferry run " + refused.reason);
  throw UsageError("unknown option '" + name + "' (see ferry run --help)");
}

}  // namespace

HaltPolicy parse_halt(const std::string& text) {
  if (text == "never" || text == "0") return halt_shorthand(0);
  if (text == "1" || text == "2") return halt_shorthand(text[0] - '0');
  if (text == "-1" || text == "-2") return halt_shorthand('0' - text[1]);
  if (!text.empty() && text.back() == '%' && text.find('=') == std::string::npos)
    return parse_halt("soon,fail=" + text);  // "10%": soon,fail=10%
  const char* usage =
      "--halt takes never, 0, 1, 2, -1, -2, N% or WHEN,WHAT=N: WHEN now or soon, WHAT fail, "
      "success or done, N a count or a percent";
  HaltPolicy halt;
  halt.when = HaltPolicy::When::soon;
  std::string rest = text;
  if (auto comma = text.find(','); comma != std::string::npos) {
    std::string when = text.substr(0, comma);
    if (when == "now")
      halt.when = HaltPolicy::When::now;
    else if (when != "soon")
      throw UsageError(usage);
    rest = text.substr(comma + 1);
  }
  auto equals = rest.find('=');
  if (equals == std::string::npos) throw UsageError(usage);
  std::string what = rest.substr(0, equals);
  if (what == "fail")
    halt.on = HaltPolicy::On::fail;
  else if (what == "success")
    halt.on = HaltPolicy::On::success;
  else if (what == "done")
    halt.on = HaltPolicy::On::done;
  else
    throw UsageError(usage);
  std::string number = rest.substr(equals + 1);
  if (!number.empty() && number.back() == '%') {
    halt.percent = true;
    number.pop_back();
  }
  auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), halt.count);
  if (number.empty() || error != std::errc() || end != number.data() + number.size() ||
      !(halt.count > 0) || halt.count > (halt.percent ? 100 : 1e12))
    throw UsageError("--halt: '" + rest.substr(equals + 1) +
                     "' is not a positive count or percent");
  return halt;
}

int parse_jobs(const std::string& text, int cores) {
  auto bad = [&] { return UsageError("-j takes N, 0, N%, +N or -N jobs (not '" + text + "')"); };
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
  // In 64 bits: a percent of many cores is past an int. Every form gives
  // at most what -j can say plainly.
  constexpr std::int64_t kMostJobs = 9'999'999;
  int value = std::stoi(number);
  std::int64_t jobs = value;
  if (mode == '+') jobs = std::int64_t{cores} + value;
  if (mode == '-') jobs = std::max<std::int64_t>(1, std::int64_t{cores} - value);
  if (mode == '%') jobs = std::max<std::int64_t>(1, std::llround(cores * (value / 100.0)));
  return static_cast<int>(std::min(jobs, kMostJobs));
}

RunOptions parse_run_options(const std::vector<std::string>& words, int cores) {
  RunOptions parsed;
  parsed.jobs = cores;
  // -j's relative forms need the core count: parse_jobs gets it through
  // `jobs` until the value is set.
  auto apply = [&](const Option& option, const std::string& name, const std::string& value) {
    if (option.names[0] == "-j") parsed.jobs = cores;
    option.apply(parsed, name, value);
  };
  std::size_t i = 0;
  bool quote = false;
  for (; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "--") {
      ++i;
      break;
    }
    if (word.size() < 2 || word[0] != '-') break;  // the command (or ::: / ::::) begins
    if (word[1] == '-') {
      auto equals = word.find('=');
      std::string name = word.substr(0, equals);
      const Option* option = find_option(name);
      if (!option) unknown(name);
      if (!option->takes_value) {
        if (equals != std::string::npos) throw UsageError(name + " takes no value");
        apply(*option, name, "");
      } else if (equals != std::string::npos) {
        apply(*option, name, word.substr(equals + 1));
      } else {
        if (i + 1 >= words.size()) throw UsageError(name + " needs a value");
        apply(*option, name, words[++i]);
      }
      continue;
    }
    // Short options, bundled as in parallel: -kq, -j4, -kj 4.
    for (std::size_t at = 1; at < word.size(); ++at) {
      std::string name = std::string("-") + word[at];
      const Option* option = find_option(name);
      if (!option) unknown(at == 1 ? word.substr(0, 2) : name);
      if (name == "-q") quote = true;
      if (!option->takes_value) {
        apply(*option, name, "");
        continue;
      }
      if (at + 1 < word.size()) {
        apply(*option, name, word.substr(at + 1));
      } else {
        if (i + 1 >= words.size()) throw UsageError(name + " needs a value");
        apply(*option, name, words[++i]);
      }
      break;
    }
  }
  if (parsed.help) return parsed;
  if (quote && parsed.shell)
    throw UsageError(
        "-q keeps every word one argument; --shell makes the command a script: "
        "give one of them");

  // -a files come first, then the groups after the command; --link pairs all.
  std::vector<InputSource> from_options = std::move(parsed.command_line.sources);
  parsed.command_line = split_command_line({words.begin() + static_cast<long>(i), words.end()});
  parsed.command_line.sources.insert(parsed.command_line.sources.begin(), from_options.begin(),
                                     from_options.end());
  if (parsed.link)
    for (std::size_t g = 1; g < parsed.command_line.sources.size(); ++g)
      parsed.command_line.sources[g].linked = true;
  if (parsed.jobs < 0) throw UsageError("-j must not be negative");
  return parsed;
}

std::string run_help() {
  return R"(Usage: ferry run [OPTIONS] COMMAND [ARGS...] ::: A B C     arguments given inline
       ferry run [OPTIONS] COMMAND [ARGS...] :::: FILE     one argument per line (- is stdin)
       ferry run [OPTIONS] COMMAND [ARGS...] < FILE        one argument per line
       ferry run [OPTIONS] < COMMANDS                      each line is a shell command

Runs COMMAND once per input, in parallel, on this machine, with GNU parallel's
options. Inputs are read as jobs need them: a job starts before its input
ended, and `tail -f queue | ferry run CMD` works.

Inputs:
  ::: A B      a group of arguments        :::: FILE   a group read from FILE
  -a FILE      the same as :::: FILE       -0, -d C    records end in NUL, or C
  -E STR       input ends at a line STR    -r          skip blank lines
  --colsep RE  a line's columns are {1} {2}...; --header : names them {name}
  -N n         n inputs per job            -m, -X      as many as fit, spread over the slots
  --pipe       stdin in blocks of whole records (--block 1M, --recend, --recstart),
               each a job's stdin
  Several groups run every combination (the first varies slowest); :::+ and
  ::::+ (or --link, for all groups) pair a group with the one before instead.

Replacement strings in COMMAND: {} the arguments, {1} {2}... one group's
argument, {.} without extension, {/} basename, {//} dirname, {/.} basename
without extension (also after a number: {2/.}), {-1} the last group's, {#}
the job number, {%} the slot (1..-j); -I STR names {} otherwise. A COMMAND
with none of them gets the arguments appended. Each job also sees FERRY_SEQ
and FERRY_SLOT in its environment.

What is interpreted: without --shell, ferry starts COMMAND's program itself
with each word as one argument; no shell reads the command or the inputs.
But a program you run may itself be a shell: in `ferry run sh -c 'echo {}'`
the input is pasted into sh's script, and sh runs whatever code it holds
(an input `$(rm -rf ~)` is run). Give inputs to a shell as arguments
instead: `ferry run sh -c 'echo "$1"' sh {}`, or use --shell, which quotes
every input it puts into the script. With --shell, COMMAND is a script for
/bin/sh -c (as in GNU parallel).

Options:
  -j, -P N        jobs at once: N, 0 (as many as possible), N%, +N or -N of the
                  cores, or a FILE holding one, read again as it changes [default: cores]
  --shell         run COMMAND as a /bin/sh script; inputs are quoted into it
  -q              keep each word one argument (the default; for parallel's -q)
  -k              print outputs in input order
  --group         print each job's output whole when it ends [default]
  --line-buffer   print whole lines as jobs write them
  -u              jobs write straight to ferry's stdout and stderr
  --tag           start each output line with the inputs and a tab (--tagstring STR)
  --results DIR   each job's stdout, stderr and seq in DIR/1/<input>/, not printed
  --retries N     try a failing job at most N times in all; 0: until it succeeds
  --retry-delay S seconds before the first retry, doubling after [default: 0]
  --timeout S     SIGTERM an attempt's process group after S seconds (N%: of the
                  median runtime so far)
  --kill-grace S  seconds between SIGTERM and SIGKILL [default: 2] (or --termseq)
  --joblog FILE   one row per attempt, GNU parallel's columns
  --resume        skip the jobs the joblog has a row for
  --resume-failed skip the jobs the joblog has a succeeded row for
  --halt H        stop early: now or soon, on fail=N, success=N or done=N (N a
                  count or a percent); 1 is soon,fail=1; 2 is now,fail=1
  --delay S       seconds between two job starts     --shuf    inputs in random order
  --nice N        run niced     --memfree SIZE, --load N   wait for memory or a lower load
  --bar           progress bar with ETA on stderr, when it is a terminal
  --dry-run       print the commands, run nothing
  --tmpdir DIR    where output too large for memory waits [default: $TMPDIR]

Output is passed on whole and unaltered, whatever its size; ferry's own
messages go to stderr. When stdout is closed (`| head`), ferry starts no more
jobs, stops the running ones and exits with 141, as parallel does.

Refused (no such thing here): {=perl=}, --plus, --semaphore, --env,
-S/--sshlogin (use ferry map with workers: the same command line).
--files prints, for each job, the name of a file in --tmpdir holding its stdout.

Exit status: 0 when every job succeeded; otherwise the number of jobs that
did not (failed, or refused), at most 101; with --halt, as in GNU parallel;
2 for a usage error; 141 when stdout closed; 128+N when signal N stopped
it (130: Ctrl-C). Ctrl-C once: start no new jobs, let running ones finish;
twice: kill them.
)";
}

}  // namespace ferry::run
