// Inputs of `ferry run`: where arguments come from and how they combine.
//
// After the command, `::: a b c` gives a group of arguments and `:::: FILE`
// a group read from a file (one argument per line; `-` is stdin). Several
// groups combine as their cross product, the first group varying slowest,
// as in GNU parallel; `:::+` and `::::+` link a group to the one before it
// instead (the n-th values go together). With no group at all, arguments are
// read from stdin.
//
// Rows are made as the runner asks for them: the first group is read a
// buffer at a time, so a job can start before its input ended (`tail -f
// queue | ferry run ...`) and memory does not grow with the input's length.
// The other groups are read whole first, since each of their values comes
// back once per value of the first group.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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
  bool linked = false;              // :::+ / ::::+: paired with the group before, not crossed
};

struct CommandLine {
  std::vector<std::string> command;  // the template words before the first ::: or ::::
  std::vector<InputSource> sources;
};

// Splits the words after the options into the command and its input groups.
CommandLine split_command_line(const std::vector<std::string>& words);

// Reads records ending in `delimiter` from a descriptor, one buffer at a
// time; the last record needs no delimiter. A trailing "\r" is kept.
class RecordReader {
 public:
  RecordReader(int fd, char delimiter, bool owns_fd);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // The next record the buffer holds, or nullopt: then fill() or at_end().
  std::optional<std::string> next();
  // One read(2) into the buffer; blocks when a pipe holds nothing yet.
  void fill();
  bool at_end() const { return eof_ && start_ >= buffer_.size(); }
  int fd() const { return fd_; }
  // A pipe, socket or terminal: wait until it is readable before fill().
  // A regular file is always ready.
  bool pollable() const { return pollable_; }

 private:
  int fd_;
  char delimiter_;
  bool owns_fd_;
  bool pollable_ = false;
  bool eof_ = false;
  std::string buffer_;
  std::size_t start_ = 0;    // where the next record begins in buffer_
  std::size_t scanned_ = 0;  // buffer_ before this holds no delimiter after start_
};

struct InputOptions {
  char delimiter = '\n';
  bool skip_empty = false;  // -r: lines of only whitespace make no job
  std::string end_of_file;  // -E: a line equal to it ends the input
};

// One job's arguments: one value per group.
struct Row {
  std::vector<std::string> args;
};

class InputRows {
 public:
  // Opens every source (stdin when `sources` is empty) and reads all groups
  // but the first. Throws UsageError for a file that cannot be read.
  InputRows(const std::vector<InputSource>& sources, const InputOptions& options, int stdin_fd);
  ~InputRows();

  enum class Status { row, need_input, end };
  // row: `row` is the next one. need_input: call fill() (after wait_fd() is
  // readable, when it is not -1). end: no more rows.
  Status next(Row& row);
  void fill();
  int wait_fd() const;
  std::size_t group_count() const { return group_count_; }

 private:
  struct Group;
  bool advance_odometer();

  InputOptions options_;
  std::size_t group_count_ = 0;
  // groups_[0] streams when it is one file; the others are held whole.
  // Linked sources ride along in the group they are linked to.
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<std::size_t> odometer_;              // position in each crossed group but the first
  std::optional<std::vector<std::string>> first_;  // the current values of the first group
  bool ended_ = false;
};

// Reads every row at once (for `ferry map`, which submits them all).
std::vector<Row> read_all_rows(InputRows& rows);

}  // namespace ferry::run
