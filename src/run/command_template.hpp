// CommandTemplate — turns a command with placeholders into one job's command.
//
// Placeholders, as in GNU parallel:
//   {}    all arguments of the row, one word each         {N}   the N-th group's argument
//   {.}   without extension   {/} basename   {//} dirname   {/.} basename without extension
//         (these modifiers also follow N: {2/.})
//   {#}   the job's sequence number (1-based)            {%}   its slot (1..jobs)
//   {-1}  the last group's argument ({-2} the one before, ...)
// A command with no replacement string at all gets the arguments appended,
// one word per group, as in GNU parallel. Anything else in braces is left as
// written, except {=...=} (Perl in parallel), which is refused.
//
// The path modifiers are basename(1) and dirname(1) with the extension
// rule of parallel, except that a name starting with a dot has no
// extension: {.} of `.bashrc` is `.bashrc` (parallel: empty), {/} of `dir/`
// is `dir` (parallel: empty), {//} of `dir/` is `.`.
//
// Without --shell each word becomes one argv entry: arguments are never split
// or interpreted. With --shell the words are joined into a `sh -c` script and
// substituted arguments are shell-quoted. An empty command means each input
// line is itself a shell command.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferry::run {

// `value` quoted for a POSIX shell, unchanged when it needs no quoting.
std::string shell_quote(const std::string& value);

// One line of sh that runs `argv` (or, when `script`, runs argv[0] as a
// script): the joblog's Command column and --dry-run's output. Words with
// control characters (newlines, tabs) are rebuilt with printf, so the line
// holds none of them and /bin/sh (dash too) runs exactly what ran.
std::string command_line_for_sh(const std::vector<std::string>& argv);
std::string script_line_for_sh(const std::string& script);

// When a one-word command is not a program but looks like a shell command
// ('gzip -9 {} && echo done'), the message that says to add --shell.
std::optional<std::string> shell_hint(const std::vector<std::string>& words);

struct TemplateOptions {
  std::string replace;                    // -I STR: STR stands for {} (and {} is plain text)
  bool context_replace = false;           // -X: a word with {} repeats for each argument
  std::vector<std::string> column_names;  // --header: {name} is the column of that name
  bool missing_is_empty = false;          // -N: {3} of a last job with two inputs is empty
  bool append_inputs = true;              // false: nothing appended (--tagstring)
};

class CommandTemplate {
 public:
  CommandTemplate(const std::vector<std::string>& words, bool shell,
                  const TemplateOptions& options = {});

  struct Rendered {
    std::vector<std::string> argv;  // ready for exec
    std::string display;            // as a user would type it (joblog, --dry-run)
  };
  Rendered render(const std::vector<std::string>& args, std::uint64_t seq, int slot) const;

 private:
  struct Piece {
    enum class Kind { text, argument, seq, slot } kind = Kind::text;
    std::string text;
    int group = 0;         // 0: all groups ({}), else 1-based; negative: from the end
    std::string modifier;  // "", ".", "/", "//", "/."
  };
  using Word = std::vector<Piece>;

  void expand(const Word& word, const std::vector<std::string>& args, std::uint64_t seq, int slot,
              std::vector<std::string>& out) const;

  std::vector<Word> words_;
  bool shell_ = false;
  bool context_replace_ = false;
  bool missing_is_empty_ = false;
  bool inputs_are_commands_ = false;
  bool append_arguments_ = false;
};

}  // namespace ferry::run
