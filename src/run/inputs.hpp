// Inputs of `ferry run`: where arguments come from and how they combine.
//
// After the command, `::: a b c` gives a group of arguments and `:::: FILE`
// a group read from a file (one argument per line; `-` is stdin). Several
// groups combine as their cross product, the first group varying slowest,
// as in GNU parallel. With no group at all, arguments are read from stdin.
// The product is never materialized: row(i) computes it on demand.
#pragma once

#include <cstdint>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ferry::run {

// A mistake in what the user asked for: the CLI prints it and exits with 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct InputSource {
  enum class Kind { arguments, file } kind = Kind::arguments;
  std::vector<std::string> values;  // for arguments
  std::string path;                 // for file; "-" is stdin
};

struct CommandLine {
  std::vector<std::string> command;  // the template words before the first ::: or ::::
  std::vector<InputSource> sources;
};

// Splits the words after the options into the command and its input groups.
CommandLine split_command_line(const std::vector<std::string>& words);

// One argument per line; a trailing "\r" is kept, empty lines are skipped.
std::vector<std::string> read_lines(std::istream& in);

class InputTable {
 public:
  explicit InputTable(std::vector<std::vector<std::string>> groups);
  std::uint64_t size() const { return size_; }
  std::size_t group_count() const { return groups_.size(); }
  // The arguments of row `index` (0-based), one per group.
  std::vector<std::string> row(std::uint64_t index) const;

 private:
  std::vector<std::vector<std::string>> groups_;
  std::uint64_t size_ = 0;
};

// Reads every source (stdin when `sources` is empty) into a table.
InputTable load_inputs(const std::vector<InputSource>& sources, std::istream& stdin_stream);

}  // namespace ferry::run
