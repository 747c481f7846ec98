#include "run/inputs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace ferry::run {

CommandLine split_command_line(const std::vector<std::string>& words) {
  CommandLine line;
  InputSource* current = nullptr;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == ":::" || word == ":::+") {
      current = &line.sources.emplace_back();
      current->linked = word == ":::+";
      if (current->linked && line.sources.size() == 1)
        throw UsageError(":::+ links to the input group before it, and there is none");
    } else if (word == "::::" || word == "::::+") {
      if (i + 1 >= words.size()) throw UsageError(word + " needs a file name (or - for stdin)");
      if (word == "::::+" && line.sources.empty())
        throw UsageError("::::+ links to the input group before it, and there is none");
      // `:::: a b` reads both files, each a group of its own.
      bool linked = word == "::::+";
      while (i + 1 < words.size() && words[i + 1].rfind(":::", 0) != 0) {
        InputSource& source = line.sources.emplace_back();
        source.kind = InputSource::Kind::file;
        source.path = words[++i];
        source.linked = linked;
      }
      current = nullptr;
    } else if (current) {
      current->values.push_back(word);
    } else if (line.sources.empty()) {
      line.command.push_back(word);
    } else {
      throw UsageError("unexpected '" + word + "' after the files of ::::");
    }
  }
  return line;
}

RecordReader::RecordReader(int fd, char delimiter, bool owns_fd)
    : fd_(fd), delimiter_(delimiter), owns_fd_(owns_fd) {
  struct stat info {};
  if (::fstat(fd, &info) == 0)
    pollable_ = S_ISFIFO(info.st_mode) || S_ISSOCK(info.st_mode) || ::isatty(fd);
}

RecordReader::~RecordReader() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

std::optional<std::string> RecordReader::next() {
  std::size_t end = buffer_.find(delimiter_, std::max(start_, scanned_));
  if (end == std::string::npos) {
    scanned_ = buffer_.size();
    if (!eof_ || start_ >= buffer_.size()) return std::nullopt;
    end = buffer_.size();  // the last record, without a delimiter
  }
  std::string record = buffer_.substr(start_, end - start_);
  start_ = std::min(end + 1, buffer_.size());
  if (eof_ && end == buffer_.size()) start_ = buffer_.size();
  return record;
}

void RecordReader::fill() {
  if (eof_) return;
  // Drop what was consumed, so the buffer holds at most one read ahead of
  // the longest record.
  if (start_ > 0) {
    buffer_.erase(0, start_);
    scanned_ -= std::min(scanned_, start_);
    start_ = 0;
  }
  constexpr std::size_t kChunk = 64 * 1024;
  std::size_t old_size = buffer_.size();
  buffer_.resize(old_size + kChunk);
  ssize_t n;
  do {
    n = ::read(fd_, buffer_.data() + old_size, kChunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int error = errno;
    buffer_.resize(old_size);
    throw std::runtime_error(std::string("cannot read the input: ") + std::strerror(error));
  }
  buffer_.resize(old_size + static_cast<std::size_t>(n));
  if (n == 0) eof_ = true;
}

struct InputRows::Group {
  // Which row positions this group's values fill: one, or several when
  // groups are linked to it.
  std::vector<std::size_t> positions;
  std::vector<std::vector<std::string>> tuples;  // held whole
  std::unique_ptr<RecordReader> reader;          // streamed (the first group only)
  bool stopped = false;                          // -E seen
};

namespace {

bool blank(const std::string& value) {
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

std::unique_ptr<RecordReader> open_source(const InputSource& source, const InputOptions& options,
                                          int stdin_fd, bool& stdin_used) {
  if (source.path == "-") {
    if (stdin_used) throw UsageError("stdin can be read only once (- given twice)");
    stdin_used = true;
    return std::make_unique<RecordReader>(stdin_fd, options.delimiter, false);
  }
  int fd = ::open(source.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw UsageError("cannot read input file '" + source.path + "': " + std::strerror(errno));
  return std::make_unique<RecordReader>(fd, options.delimiter, true);
}

// Whether `record` is a value (-r skips blank ones); sets `stop` at -E's line.
bool accept(const std::string& record, const InputOptions& options, bool& stop) {
  if (!options.end_of_file.empty() && record == options.end_of_file) {
    stop = true;
    return false;
  }
  return !(options.skip_empty && blank(record));
}

std::vector<std::string> read_whole(RecordReader& reader, const InputOptions& options) {
  std::vector<std::string> values;
  bool stop = false;
  while (!stop) {
    auto record = reader.next();
    if (!record) {
      if (reader.at_end()) break;
      reader.fill();
      continue;
    }
    if (accept(*record, options, stop)) values.push_back(std::move(*record));
  }
  return values;
}

}  // namespace

InputRows::InputRows(const std::vector<InputSource>& sources, const InputOptions& options,
                     int stdin_fd)
    : options_(options) {
  std::vector<InputSource> all = sources;
  if (all.empty()) {
    InputSource from_stdin;
    from_stdin.kind = InputSource::Kind::file;
    from_stdin.path = "-";
    all.push_back(from_stdin);
  }
  group_count_ = all.size();
  bool stdin_used = false;
  // Each unlinked source starts a group; linked ones join the group before.
  std::vector<std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i].linked && !members.empty())
      members.back().push_back(i);
    else
      members.push_back({i});
  }
  for (std::size_t g = 0; g < members.size(); ++g) {
    auto group = std::make_unique<Group>();
    group->positions = members[g];
    bool streamed =
        g == 0 && members[g].size() == 1 && all[members[g][0]].kind == InputSource::Kind::file;
    if (streamed) {
      group->reader = open_source(all[members[g][0]], options_, stdin_fd, stdin_used);
    } else {
      // Linked values pair by position; a shorter source wraps around, as
      // in GNU parallel.
      std::vector<std::vector<std::string>> columns;
      std::size_t longest = 0;
      for (std::size_t index : members[g]) {
        const InputSource& source = all[index];
        if (source.kind == InputSource::Kind::arguments) {
          columns.push_back(source.values);
        } else {
          auto reader = open_source(source, options_, stdin_fd, stdin_used);
          columns.push_back(read_whole(*reader, options_));
        }
        longest = std::max(longest, columns.back().size());
      }
      bool any_empty = std::any_of(columns.begin(), columns.end(),
                                   [](const auto& column) { return column.empty(); });
      if (!any_empty)
        for (std::size_t row = 0; row < longest; ++row) {
          std::vector<std::string> tuple;
          for (const auto& column : columns) tuple.push_back(column[row % column.size()]);
          group->tuples.push_back(std::move(tuple));
        }
    }
    groups_.push_back(std::move(group));
  }
  odometer_.assign(groups_.size(), 0);
}

InputRows::~InputRows() = default;

int InputRows::wait_fd() const {
  const Group& first = *groups_[0];
  if (ended_ || !first.reader || !first.reader->pollable()) return -1;
  return first.reader->fd();
}

void InputRows::fill() {
  if (groups_[0]->reader) groups_[0]->reader->fill();
}

// Moves to the next combination of the groups after the first; false when
// they wrapped around (the first group moves on).
bool InputRows::advance_odometer() {
  for (std::size_t g = groups_.size(); g-- > 1;) {
    if (++odometer_[g] < groups_[g]->tuples.size()) return true;
    odometer_[g] = 0;
  }
  return false;
}

InputRows::Status InputRows::next(Row& row) {
  if (ended_) return Status::end;
  for (std::size_t g = 1; g < groups_.size(); ++g)
    if (groups_[g]->tuples.empty()) {
      ended_ = true;  // an empty group: no combinations at all
      return Status::end;
    }
  Group& first = *groups_[0];
  if (!first_) {
    if (first.reader) {
      for (;;) {
        if (first.stopped) break;
        auto record = first.reader->next();
        if (!record) {
          if (first.reader->at_end()) break;
          return Status::need_input;
        }
        if (accept(*record, options_, first.stopped)) {
          first_ = std::vector<std::string>{std::move(*record)};
          break;
        }
      }
    } else if (odometer_[0] < first.tuples.size()) {
      first_ = first.tuples[odometer_[0]];
    }
    if (!first_) {
      ended_ = true;
      return Status::end;
    }
  }
  row.args.assign(group_count_, std::string());
  for (std::size_t i = 0; i < first.positions.size(); ++i)
    row.args[first.positions[i]] = (*first_)[i];
  for (std::size_t g = 1; g < groups_.size(); ++g) {
    const auto& tuple = groups_[g]->tuples[odometer_[g]];
    for (std::size_t i = 0; i < groups_[g]->positions.size(); ++i)
      row.args[groups_[g]->positions[i]] = tuple[i];
  }
  if (!advance_odometer()) {
    first_.reset();
    ++odometer_[0];
  }
  return Status::row;
}

std::vector<Row> read_all_rows(InputRows& rows) {
  std::vector<Row> all;
  for (;;) {
    Row row;
    switch (rows.next(row)) {
      case InputRows::Status::row:
        all.push_back(std::move(row));
        break;
      case InputRows::Status::need_input:
        rows.fill();
        break;
      case InputRows::Status::end:
        return all;
    }
  }
}

}  // namespace ferry::run
