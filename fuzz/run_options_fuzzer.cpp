// The command line of `ferry run` (run/options.hpp), its inputs given
// inline (`::: a b`) and the command each row makes (run/command_template.hpp).
//
// The input's first byte sets the number of cores (1 to 4081); the rest is
// the words after `ferry run`, split at NUL bytes (argv holds none).
//
// - Every mistake is a UsageError that says something; nothing else is thrown;
// - what is accepted keeps its documented ranges;
// - each row of inline inputs renders a command whose line for the joblog
//   and --dry-run is one line: no newline, no tab.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_checks.hpp"
#include "run/command_template.hpp"
#include "run/options.hpp"

namespace {

using namespace ferry::run;
using ferry::fuzz::require;

std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  for (;;) {
    std::size_t nul = text.find('\0');
    words.emplace_back(text.substr(0, nul));
    if (nul == std::string_view::npos) return words;
    text.remove_prefix(nul + 1);
  }
}

void check_ranges(const RunOptions& options) {
  require(options.jobs >= 0, "-j is not negative");
  require(options.attempts >= 0, "--retries is not negative");
  for (auto duration : {options.retry_delay, options.timeout, options.kill_grace, options.delay})
    require(duration.count() >= 0, "durations are not negative");
  require(options.args_per_job >= 0, "-N is not negative");
  require(options.timeout_percent >= 0, "--timeout N% is not negative");
  const HaltPolicy& halt = options.halt;
  if (halt.when != HaltPolicy::When::never)
    require(halt.count > 0 && (!halt.percent || halt.count <= 100),
            "--halt counts from 1, percents up to 100");
}

void check_rendered(const CommandTemplate::Rendered& rendered) {
  require(!rendered.argv.empty(), "a command has a program");
  require(rendered.display.find_first_of("\n\t") == std::string::npos,
          "a command's line for the joblog is one line without tabs", rendered.display);
}

// Renders up to 64 rows of the inline inputs, as the runner would.
void check_commands(const RunOptions& options) {
  const std::vector<InputSource>& sources = options.command_line.sources;
  if (sources.empty() || options.header || options.pipe || !options.colsep.empty()) return;
  if (std::any_of(sources.begin(), sources.end(), [](const InputSource& source) {
        return source.kind != InputSource::Kind::arguments;
      }))
    return;
  CommandTemplate command(options.command_line.command, options.shell,
                          {.replace = options.replace,
                           .context_replace = options.context_replace,
                           .missing_is_empty = options.args_per_job > 0});
  InputRows rows(sources, options.input, -1);
  Row row;
  for (std::uint64_t seq = 1; seq <= 64 && rows.next(row) == InputRows::Status::row; ++seq) {
    require(row.args.size() == rows.group_count(), "a row has one value per group");
    check_rendered(command.render(row.args, seq, 1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  int cores = 1 + data[0] * 16;
  std::vector<std::string> words = words_of(ferry::fuzz::text_of(data + 1, size - 1));
  try {
    RunOptions options = parse_run_options(words, cores);
    if (options.help) return 0;
    check_ranges(options);
    check_commands(options);
  } catch (const UsageError& mistake) {
    require(std::string_view(mistake.what()).size() > 0, "a mistake says what it is");
  }
  return 0;
}
