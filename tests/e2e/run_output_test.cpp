// `ferry run`'s output is exact: any size passes through whole and unaltered,
// grouped, in input order (-k), line by line (--line-buffer) or ungrouped
// (-u); ferry's own notes go to stderr. Each test pipes ferry's stdout into a
// checksum and bounds ferry's memory (the peak RSS of the pipeline's
// processes, from wait4: ferry is by far the largest of them).
#include <gtest/gtest.h>

#include <string>

#include "ferry_process.hpp"

namespace ferry::e2e {
namespace {

constexpr long kMaxRssKb = 100 * 1024;  // generous: the whole output is 10x this

// Runs `script` with sh in `dir`, with $FERRY naming the binary and the
// temporary files of ferry kept in `dir`.
exec::Result run_script(const std::string& script, const TempDir& dir) {
  exec::Command command = exec::shell_command(script);
  command.cwd = dir.path().string();
  command.env = {std::string("FERRY=") + FERRY_BINARY, "TMPDIR=" + dir.path().string()};
  command.timeout = std::chrono::seconds(600);
  return run_to_end(command);
}

// The sha256 of what `generator` (a shell pipeline) prints.
std::string sha256_of(const std::string& generator, const TempDir& dir) {
  auto r = run_script("(" + generator + ") | sha256sum", dir);
  return r.out.substr(0, 64);
}

// RSS bounds hold in the release build; see under_address_sanitizer().
void expect_small(long rss_kb, const std::string& what = "") {
  if (!under_address_sanitizer()) {
    EXPECT_LT(rss_kb, kMaxRssKb) << what;
  }
}

// ferry's stdout through sha256sum; ferry's exit status in the file "status".
std::string ferry_sha256(const std::string& ferry_args, const TempDir& dir, long& max_rss_kb) {
  auto r = run_script(
      "{ \"$FERRY\" run " + ferry_args + " 2>stderr; echo $? > status; } | sha256sum", dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  max_rss_kb = r.max_rss_kb;
  return r.out.substr(0, 64);
}

TEST(FerryRunOutput, OneGigabyteFromOneJobPassesWhole) {
  TempDir dir;
  long rss = 0;
  // `seq 1 200000000 | head -c 1000000000 | sha256sum` prints this.
  EXPECT_EQ(ferry_sha256("sh -c 'seq 1 200000000 | head -c 1000000000' ::: x", dir, rss),
            "7728970ef6db7da83cadbe99dd040908ed4a3e0001f3cf8664dfa35a612ca55a");
  EXPECT_EQ(read_file(dir / "status"), "0\n") << read_file(dir / "stderr");
  EXPECT_EQ(read_file(dir / "stderr"), "");
  expect_small(rss);
}

TEST(FerryRunOutput, HundredMegabytesPassWholeInEveryOutputMode) {
  TempDir dir;
  std::string generator = "seq 1 20000000 | head -c 100000000";
  std::string expected = sha256_of(generator, dir);
  for (std::string mode : {"", "-k", "--line-buffer", "-u", "-k --line-buffer", "--group"}) {
    long rss = 0;
    EXPECT_EQ(ferry_sha256(mode + " sh -c '" + generator + "' ::: x", dir, rss), expected) << mode;
    EXPECT_EQ(read_file(dir / "status"), "0\n") << mode << ": " << read_file(dir / "stderr");
    expect_small(rss, mode);
  }
}

// --pipe: stdin cut into blocks of whole lines, each a job's stdin; with -k
// the outputs put it back together byte for byte.
TEST(FerryRunOutput, PipeCutsStdinIntoBlocksAndKeepOrderJoinsThem) {
  TempDir dir;
  std::string generator = "seq 1 20000000 | head -c 100000000";
  std::string expected = sha256_of(generator, dir);
  auto r = run_script("(" + generator + ") | \"$FERRY\" run --pipe --block 3M -k -j 3 cat " +
                          "2>stderr | sha256sum",
                      dir);
  EXPECT_EQ(r.out.substr(0, 64), expected) << read_file(dir / "stderr");
  expect_small(r.max_rss_kb);
  r = run_script("seq 100000 | \"$FERRY\" run --pipe --block 100k -k wc -l", dir);
  long total = 0;
  for (const std::string& line : lines_of(r.out)) total += std::stol(line);
  EXPECT_EQ(total, 100000);
  EXPECT_GT(lines_of(r.out).size(), 3u);  // several blocks
}

TEST(FerryRunOutput, FiftyJobsOfTwentyMegabytesKeepOrder) {
  TempDir dir;
  std::string expected = sha256_of("for i in $(seq 50); do yes $i | head -c 20000000; done", dir);
  long rss = 0;
  EXPECT_EQ(ferry_sha256("-k -j 4 sh -c 'yes $0 | head -c 20000000' ::: $(seq 50)", dir, rss),
            expected);
  EXPECT_EQ(read_file(dir / "status"), "0\n") << read_file(dir / "stderr");
  expect_small(rss);
}

// Grouped: each job's lines arrive together, whatever the order of jobs.
TEST(FerryRunOutput, GroupedJobsNeverInterleave) {
  TempDir dir;
  auto r = run_script(
      "\"$FERRY\" run -j 8 sh -c 'yes $0 | head -n 500000' ::: $(seq 30) | uniq -c | sort -n -k 2",
      dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (int i = 1; i <= 30; ++i) expected += "500000 " + std::to_string(i) + "\n";
  std::string got;
  for (const std::string& line : lines_of(r.out)) {
    auto start = line.find_first_not_of(' ');
    got += line.substr(start) + "\n";
  }
  EXPECT_EQ(got, expected);
}

// --line-buffer and -u pass a running job's output on at once: the job
// prints "ready" and then waits (bounded) for the reader to have seen it.
TEST(FerryRunOutput, LineBufferAndUngroupStreamWhileTheJobRuns) {
  for (std::string mode : {"--line-buffer", "-u", "-k --line-buffer"}) {
    TempDir dir;
    auto r = run_script(
        "\"$FERRY\" run " + mode +
            " sh -c 'echo ready; i=0; while [ ! -e seen ] && [ $i -lt 3000 ]; do sleep 0.01; "
            "i=$((i+1)); done; [ -e seen ] && echo saw-reader || echo gave-up' ::: x | "
            "{ read line; touch seen; echo $line; cat; }",
        dir);
    EXPECT_EQ(r.out, "ready\nsaw-reader\n") << mode;
  }
}

TEST(FerryRunOutput, NotesGoToStderrNeverIntoStdout) {
  TempDir dir;
  auto r = run_script("\"$FERRY\" run --timeout 0.5 sh -c 'echo out; sleep 30' ::: x 2>err", dir);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_NE(read_file(dir / "err").find("timed out"), std::string::npos);
}

}  // namespace
}  // namespace ferry::e2e
