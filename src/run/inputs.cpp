#include "run/inputs.hpp"

#include <fstream>
#include <limits>

namespace ferry::run {

CommandLine split_command_line(const std::vector<std::string>& words) {
  CommandLine line;
  InputSource* current = nullptr;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == ":::") {
      current = &line.sources.emplace_back();
    } else if (word == "::::") {
      if (i + 1 >= words.size()) throw UsageError(":::: needs a file name (or - for stdin)");
      // `:::: a b` reads both files, each a group of its own.
      while (i + 1 < words.size() && words[i + 1] != ":::" && words[i + 1] != "::::") {
        InputSource& source = line.sources.emplace_back();
        source.kind = InputSource::Kind::file;
        source.path = words[++i];
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

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

InputTable::InputTable(std::vector<std::vector<std::string>> groups) : groups_(std::move(groups)) {
  size_ = groups_.empty() ? 0 : 1;
  for (const auto& group : groups_) {
    if (!group.empty() && size_ > std::numeric_limits<std::uint64_t>::max() / group.size())
      throw UsageError("too many combinations of inputs");
    size_ *= group.size();
  }
}

std::vector<std::string> InputTable::row(std::uint64_t index) const {
  std::vector<std::string> values(groups_.size());
  for (std::size_t g = groups_.size(); g-- > 0;) {
    values[g] = groups_[g][index % groups_[g].size()];
    index /= groups_[g].size();
  }
  return values;
}

InputTable load_inputs(const std::vector<InputSource>& sources, std::istream& stdin_stream) {
  std::vector<std::vector<std::string>> groups;
  bool stdin_used = false;
  auto read_stdin = [&] {
    if (stdin_used) throw UsageError("stdin can be read only once (:::: - given twice)");
    stdin_used = true;
    return read_lines(stdin_stream);
  };
  if (sources.empty()) groups.push_back(read_stdin());
  for (const InputSource& source : sources) {
    if (source.kind == InputSource::Kind::arguments) {
      groups.push_back(source.values);
    } else if (source.path == "-") {
      groups.push_back(read_stdin());
    } else {
      std::ifstream file(source.path);
      if (!file) throw UsageError("cannot read input file '" + source.path + "'");
      groups.push_back(read_lines(file));
    }
  }
  return InputTable(std::move(groups));
}

}  // namespace ferry::run
