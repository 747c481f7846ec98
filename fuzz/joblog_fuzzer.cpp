// The joblog reader behind `ferry run --resume` (docs/joblog.md), on files
// as a crash, an editor or another tool may leave them.
//
// An input starting with 'w' is rows to write (as `ferry run` does, then a
// torn line); any other input is the file itself.
//
// - The reader throws nothing but UsageError;
// - a file whose first line is not the header is refused, unless empty;
// - each Seq it returns has a complete row whose Exitval and Signal are 0;
// - a torn last line changes nothing;
// - rows written by Joblog read back as exactly the Seqs that succeeded.
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

std::optional<std::set<std::uint64_t>> read_back() {
  try {
    return succeeded_jobs(log_path());
  } catch (const UsageError&) {
    return std::nullopt;
  }
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

// Whether `text` holds a complete row for `seq` with Exitval and Signal 0.
bool has_success_row(std::string_view text, std::uint64_t seq) {
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
    if (found == 8 && writes(field(0), seq) && writes_zero(field(6)) && writes_zero(field(7)))
      return true;
    start = end;
  }
  return false;
}

void check_file(std::string_view text) {
  write_file(text);
  auto succeeded = read_back();
  bool headed = text.substr(0, text.find('\n')) == kJoblogHeader;
  if (!text.empty() && !headed) require(!succeeded, "a file without the header is refused");
  if (!succeeded) return;
  for (std::uint64_t seq : *succeeded)
    require(has_success_row(text, seq), "each Seq returned has a row that succeeded");
  if (text.empty() || text.back() != '\n') return;
  // A row torn by a crash, after the complete ones: ignored.
  std::string torn = std::string(text) + "7\t:\t1764070000.000\t0";
  write_file(torn);
  require(read_back() == succeeded, "a torn last line changes nothing");
}

void check_written(FuzzedDataProvider& input) {
  std::set<std::uint64_t> expected;
  {
    Joblog joblog(log_path(), false);
    for (int rows = input.ConsumeIntegralInRange(0, 16); rows > 0; --rows) {
      JoblogRow row;
      row.seq = input.ConsumeIntegral<std::uint64_t>();
      row.start = input.ConsumeFloatingPoint<double>();
      row.runtime = input.ConsumeFloatingPoint<double>();
      row.sent = input.ConsumeIntegral<std::uint64_t>();
      row.received = input.ConsumeIntegral<std::uint64_t>();
      row.exit_code = input.ConsumeBool() ? 0 : input.ConsumeIntegral<int>();
      row.signal = input.ConsumeBool() ? 0 : input.ConsumeIntegral<int>();
      row.command = input.ConsumeRandomLengthString(200);
      joblog.append(row);
      if (row.exit_code == 0 && row.signal == 0) expected.insert(row.seq);
    }
  }
  std::string torn = input.ConsumeRemainingBytesAsString();
  torn.erase(std::remove(torn.begin(), torn.end(), '\n'), torn.end());
  std::ofstream(log_path(), std::ios::binary | std::ios::app) << torn;
  auto succeeded = read_back();
  require(succeeded.has_value(), "a joblog written by Joblog is read");
  require(*succeeded == expected, "the Seqs that succeeded read back");
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
