// The joblog behind `ferry run --resume` (docs/joblog.md), on files as a
// crash, an editor or another tool may leave them.
//
// An input starting with 'w' is rows to write (as `ferry run` does, then a
// torn line); any other input is the file itself.
//
// - The reader throws nothing but UsageError;
// - a file whose first line is not the header is refused, unless empty;
// - each Seq it returns has a complete row, and each that succeeded a row
//   whose Exitval and Signal are 0;
// - a torn last line changes nothing;
// - a file the reader accepts, reopened to resume (its torn line cut off),
//   takes a row that then reads back along with every earlier one;
// - rows written by Joblog read back as exactly their Seqs.
#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "fuzz_checks.hpp"
#include "run/inputs.hpp"
#include "run/joblog.hpp"

namespace {

using namespace ferry::run;
using ferry::fuzz::require;

// One file per process, in memory when the machine has /dev/shm. The
// path outlives static destructors, for the handler that removes the file.
const std::string& log_path() {
  static const std::string* path = [] {
    std::filesystem::path directory = std::filesystem::is_directory("/dev/shm")
                                          ? "/dev/shm"
                                          : std::filesystem::temp_directory_path();
    auto* made = new std::string(directory / ("ferry-joblog-fuzz-" + std::to_string(::getpid())));
    std::atexit([] { std::filesystem::remove(log_path()); });
    return made;
  }();
  return *path;
}

void write_file(std::string_view text) {
  std::ofstream file(log_path(), std::ios::binary | std::ios::trunc);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
}

struct Seqs {
  std::set<std::uint64_t> recorded, succeeded;
  bool operator==(const Seqs&) const = default;
};

std::optional<Seqs> read_back() {
  try {
    JoblogSummary summary = read_joblog(log_path());
    return Seqs{summary.recorded, summary.succeeded};
  } catch (const UsageError&) {
    return std::nullopt;
  }
}

// A row as `ferry run` writes it: the command is one line of sh.
JoblogRow row_of(FuzzedDataProvider& input) {
  JoblogRow row;
  row.seq = input.ConsumeIntegral<std::uint64_t>();
  row.start = input.ConsumeFloatingPoint<double>();
  row.runtime = input.ConsumeFloatingPoint<double>();
  row.sent = input.ConsumeIntegral<std::uint64_t>();
  row.received = input.ConsumeIntegral<std::uint64_t>();
  row.exit_code = input.ConsumeBool() ? 0 : input.ConsumeIntegral<int>();
  row.signal = input.ConsumeBool() ? 0 : input.ConsumeIntegral<int>();
  row.command = input.ConsumeRandomLengthString(200);
  std::erase_if(row.command, [](char c) { return c == '\t' || c == '\n'; });
  return row;
}

void add(Seqs& seqs, const JoblogRow& row) {
  seqs.recorded.insert(row.seq);
  if (row.exit_code == 0 && row.signal == 0) seqs.succeeded.insert(row.seq);
}

// Resuming: the file reopened, one more row appended, all read back.
void check_resume(Seqs seqs, const JoblogRow& row) {
  {
    Joblog joblog(log_path(), true);
    joblog.append(row);
  }
  add(seqs, row);
  require(read_back() == seqs, "a resumed joblog reads back every row, the new one too");
}

// Whether `field` writes `number` in decimal, leading zeros allowed.
bool writes(std::string_view field, std::uint64_t number) {
  std::size_t zeros = field.find_first_not_of('0');
  if (zeros == std::string_view::npos) return !field.empty() && number == 0;
  return field.substr(zeros) == std::to_string(number);
}

bool writes_zero(std::string_view field) {
  return writes(field.starts_with('-') ? field.substr(1) : field, 0);
}

// Whether `text` holds a complete row for `seq`, one that succeeded if
// `succeeded`.
bool has_row(std::string_view text, std::uint64_t seq, bool succeeded) {
  for (std::size_t start = text.find('\n'); start != std::string_view::npos;) {
    std::size_t end = text.find('\n', start + 1);
    if (end == std::string_view::npos) return false;
    std::string_view line = text.substr(start + 1, end - start - 1);
    std::size_t tabs[8], found = 0;
    for (std::size_t i = 0; i < line.size() && found < 8; ++i)
      if (line[i] == '\t') tabs[found++] = i;
    auto field = [&](int n) {
      return n == 0 ? line.substr(0, tabs[0])
                    : line.substr(tabs[n - 1] + 1, tabs[n] - tabs[n - 1] - 1);
    };
    if (found == 8 && writes(field(0), seq) &&
        (!succeeded || (writes_zero(field(6)) && writes_zero(field(7)))))
      return true;
    start = end;
  }
  return false;
}

void check_file(std::string_view text) {
  write_file(text);
  auto seqs = read_back();
  bool headed = text.substr(0, text.find('\n')) == kJoblogHeader;
  if (!text.empty() && !headed) require(!seqs, "a file without the header is refused");
  if (!seqs) return;
  for (std::uint64_t seq : seqs->recorded)
    require(has_row(text, seq, false), "each Seq recorded has a row");
  for (std::uint64_t seq : seqs->succeeded)
    require(has_row(text, seq, true), "each Seq that succeeded has a row that did");
  std::string torn(text);
  if (!torn.empty() && torn.back() == '\n') {
    // A row torn by a crash, after the header and the complete rows: ignored.
    torn += "7\t:\t1764070000.000\t0";
    write_file(torn);
    require(read_back() == seqs, "a torn last line changes nothing");
  }
  check_resume(*seqs, {.seq = 7, .start = 1764070000.5, .command = "echo resumed"});
}

void check_written(FuzzedDataProvider& input) {
  Seqs expected;
  {
    Joblog joblog(log_path(), false);
    for (int rows = input.ConsumeIntegralInRange(0, 16); rows > 0; --rows) {
      JoblogRow row = row_of(input);
      joblog.append(row);
      add(expected, row);
    }
  }
  JoblogRow last = row_of(input);
  std::string torn = input.ConsumeRemainingBytesAsString();
  std::erase(torn, '\n');
  std::ofstream(log_path(), std::ios::binary | std::ios::app) << torn;
  require(read_back() == expected, "rows written by Joblog read back");
  check_resume(expected, last);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 0 && data[0] == 'w') {
    FuzzedDataProvider input(data + 1, size - 1);
    check_written(input);
  } else {
    check_file(ferry::fuzz::text_of(data, size));
  }
  return 0;
}
