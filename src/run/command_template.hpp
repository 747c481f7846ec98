// CommandTemplate — turns a command with placeholders into one job's command.
//
// Placeholders, as in GNU parallel:
//   {}    all arguments of the row, joined by spaces    {N}   the N-th group's argument
//   {.}   without extension   {/} basename   {//} dirname   {/.} basename without extension
//         (these modifiers also follow N: {2/.})
//   {#}   the job's sequence number (1-based)            {%}   its slot (1..jobs)
// A command with no argument placeholder gets the arguments appended, one
// word per group. Anything else in braces is left as written.
//
// Without --shell each word becomes one argv entry: arguments are never split
// or interpreted. With --shell the words are joined into a `sh -c` script and
// substituted arguments are shell-quoted. An empty command means each input
// line is itself a shell command.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::run {

// `value` quoted for a POSIX shell, unchanged when it needs no quoting.
std::string shell_quote(const std::string& value);

class CommandTemplate {
 public:
  CommandTemplate(const std::vector<std::string>& words, bool shell);

  struct Rendered {
    std::vector<std::string> argv;  // ready for exec
    std::string display;            // as a user would type it (joblog, --dry-run)
  };
  Rendered render(const std::vector<std::string>& args, std::uint64_t seq, int slot) const;

 private:
  struct Piece {
    enum class Kind { text, argument, seq, slot } kind = Kind::text;
    std::string text;
    int group = 0;         // 0: all groups ({}), else 1-based
    std::string modifier;  // "", ".", "/", "//", "/."
  };
  using Word = std::vector<Piece>;

  std::string expand(const Word& word, const std::vector<std::string>& args, std::uint64_t seq,
                     int slot) const;

  std::vector<Word> words_;
  bool shell_ = false;
  bool inputs_are_commands_ = false;
  bool append_arguments_ = false;
};

}  // namespace ferry::run
