// `ferry run` end to end: the real binary, real child processes, real files.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "ferry_process.hpp"
#include "run/joblog.hpp"

namespace ferry::e2e {
namespace {

using Strings = std::vector<std::string>;

std::vector<Strings> joblog_rows(const std::string& path) {
  std::vector<Strings> rows;
  auto lines = lines_of(read_file(path));
  for (std::size_t i = 1; i < lines.size(); ++i) {
    Strings fields;
    std::size_t start = 0, tab;
    while ((tab = lines[i].find('\t', start)) != std::string::npos) {
      fields.push_back(lines[i].substr(start, tab - start));
      start = tab + 1;
    }
    fields.push_back(lines[i].substr(start));
    rows.push_back(fields);
  }
  return rows;
}

Strings sorted(Strings values) {
  std::sort(values.begin(), values.end());
  return values;
}

bool process_gone(pid_t pid) {
  return eventually([&] {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    char state = line[line.rfind(')') + 2];
    return state == 'Z' || state == 'X';
  });
}

TEST(FerryRun, PlaceholdersAndCrossProduct) {
  TempDir dir;
  auto r =
      run_ferry({"run", "-k", "echo", "{1}-{2}", "{#}", ":::", "a", "b", ":::", "1", "2"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a-1 1\na-2 2\nb-1 3\nb-2 4\n");
  EXPECT_EQ(r.err, "");
}

TEST(FerryRun, AppendsArgumentsAndReadsStdin) {
  TempDir dir;
  auto r = run_ferry({"run", "-k", "echo", "got"}, dir, "x\ny y\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "got x\ngot y y\n");
}

TEST(FerryRun, ArgumentsReachTheProgramUnsplitAndUninterpreted) {
  TempDir dir;
  auto r = run_ferry({"run", "printf", "[%s]\\n", ":::", "a b", "$HOME", "*", "x;y"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sorted(lines_of(r.out)), (Strings{"[$HOME]", "[*]", "[a b]", "[x;y]"}));
}

TEST(FerryRun, ShellModeQuotesInputsIntoTheScript) {
  TempDir dir;
  auto r = run_ferry({"run", "-k", "--shell", "echo {} | tr a-z A-Z", ":::", "it's", "a;b"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "IT'S\nA;B\n");
}

TEST(FerryRun, InputLinesAreCommandsWhenNoCommandIsGiven) {
  TempDir dir;
  auto r = run_ferry({"run", "-k"}, dir, "echo one\necho two | tr a-z A-Z\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\nTWO\n");
}

TEST(FerryRun, FourColonsReadsAFileAndFerrySeqIsSet) {
  TempDir dir;
  std::ofstream(dir / "inputs") << "p\nq\n";
  auto r = run_ferry({"run", "-k", "--shell", "echo {}=$FERRY_SEQ", "::::", dir / "inputs"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "p=1\nq=2\n");
}

TEST(FerryRun, OutputIsGroupedPerJob) {
  TempDir dir;
  // Four jobs write three lines each, pausing between lines so that they
  // would interleave if output were not grouped.
  auto r = run_ferry({"run", "-j", "4", "--shell",
                      "for i in 1 2 3; do echo {}-$i; sleep 0.05; done", ":::", "a", "b", "c", "d"},
                     dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 12u);
  for (std::size_t job = 0; job < 4; ++job) {
    char name = lines[job * 3][0];
    for (std::size_t i = 0; i < 3; ++i)
      EXPECT_EQ(lines[job * 3 + i], std::string(1, name) + "-" + std::to_string(i + 1)) << r.out;
  }
}

TEST(FerryRun, KeepOrderPrintsInInputOrder) {
  TempDir dir;
  auto r = run_ferry(
      {"run", "-j", "3", "-k", "--shell", "sleep {}; echo {}", ":::", "0.4", "0.2", "0"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0.4\n0.2\n0\n");
}

TEST(FerryRun, RetriesUntilSuccessAndLogsEveryAttempt) {
  TempDir dir;
  // Fails twice, then succeeds: a counter file per input remembers attempts.
  std::string flaky =
      "n=$(cat count-{} 2>/dev/null || echo 0); echo $((n+1)) > count-{}; "
      "echo attempt $n; [ $n -ge 2 ]";
  auto r =
      run_ferry({"run", "--retries", "2", "--joblog", "log", "--shell", flaky, ":::", "x"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "attempt 2\n");  // only the final attempt's output is printed
  auto rows = joblog_rows(dir / "log");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][6], "1");
  EXPECT_EQ(rows[1][6], "1");
  EXPECT_EQ(rows[2][6], "0");
  for (auto& row : rows) EXPECT_EQ(row[0], "1");

  TempDir again;
  r = run_ferry({"run", "--retries", "1", "--shell", flaky, ":::", "x"}, again);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ferry: 1 of 1 jobs failed"), std::string::npos) << r.err;
}

TEST(FerryRun, TimeoutKillsTheJobAndItsGrandchildren) {
  TempDir dir;
  auto r = run_ferry({"run", "--timeout", "1", "--joblog", "log", "--shell",
                      "sleep 60 & echo $! > grandchild.{}; wait", ":::", "pid"},
                     dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ferry: job 1 timed out after 1s"), std::string::npos) << r.err;
  auto rows = joblog_rows(dir / "log");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][7], "15");  // SIGTERM
  pid_t grandchild = std::stoi(read_file(dir / "grandchild.pid"));
  EXPECT_TRUE(process_gone(grandchild));
}

TEST(FerryRun, MissingProgramFailsOnlyItsJob) {
  TempDir dir;
  auto r = run_ferry(
      {"run", "--joblog", "log", "{}", ":::", "true", "ferry-no-such-program", "true"}, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot run 'ferry-no-such-program': No such file or directory"),
            std::string::npos)
      << r.err;
  auto rows = joblog_rows(dir / "log");
  ASSERT_EQ(rows.size(), 3u);
  std::map<std::string, std::string> exit_by_seq;
  for (auto& row : rows) exit_by_seq[row[0]] = row[6];
  EXPECT_EQ(exit_by_seq["2"], "127");
  EXPECT_EQ(exit_by_seq["1"], "0");
  EXPECT_EQ(exit_by_seq["3"], "0");
}

TEST(FerryRun, HaltSoonStopsStartingJobsAfterAFailure) {
  TempDir dir;
  auto r = run_ferry({"run", "-j", "1", "--halt", "soon,fail=1", "--shell", "echo {}; exit {}",
                      ":::", "0", "3", "0", "0"},
                     dir);
  EXPECT_EQ(r.exit_code, 3);  // one failed, two never ran
  EXPECT_EQ(r.out, "0\n3\n");
  EXPECT_NE(r.err.find("1 of 4 jobs failed, 2 did not run (halted after 1 failed jobs)"),
            std::string::npos)
      << r.err;
}

TEST(FerryRun, HaltNowKillsRunningJobs) {
  TempDir dir;
  auto started = std::chrono::steady_clock::now();
  auto r = run_ferry({"run", "-j", "2", "--halt", "now,fail=50%", "--shell", "{}",
                      ":::", "sleep 0.2; exit 1", "sleep 60"},
                     dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(50));
}

TEST(FerryRun, ExitStatusCountsUnsuccessfulJobsUpTo101) {
  TempDir dir;
  EXPECT_EQ(run_ferry({"run", "true", ":::", "a", "b"}, dir).exit_code, 0);
  EXPECT_EQ(run_ferry({"run", "--shell", "exit {}", ":::", "0", "1", "2", "3"}, dir).exit_code, 3);
  Strings many = {"run", "-j", "8", "false", ":::"};
  for (int i = 0; i < 150; ++i) many.push_back(std::to_string(i));
  EXPECT_EQ(run_ferry(many, dir).exit_code, 101);
  EXPECT_EQ(run_ferry({"run", "true", ":::"}, dir).exit_code, 0);  // no inputs, nothing to do
}

TEST(FerryRun, DryRunPrintsCommandsAndRunsNothing) {
  TempDir dir;
  auto r = run_ferry({"run", "--dry-run", "touch", "{}", ":::", "a b", "c"}, dir);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "touch 'a b'\ntouch c\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "c"));
}

TEST(FerryRun, JoblogHasParallelsHeaderAndColumns) {
  TempDir dir;
  auto r = run_ferry({"run", "--joblog", "log", "echo", ":::", "a b"}, dir);
  EXPECT_EQ(r.exit_code, 0);
  auto lines = lines_of(read_file(dir / "log"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], run::kJoblogHeader);
  auto rows = joblog_rows(dir / "log");
  EXPECT_EQ(rows[0][0], "1");
  EXPECT_EQ(rows[0][1], ":");
  EXPECT_EQ(rows[0][5], "4");  // "a b\n"
  EXPECT_EQ(rows[0][6], "0");
  EXPECT_EQ(rows[0][7], "0");
  EXPECT_EQ(rows[0][8], "echo 'a b'");
}

// Interrupt a run, then --resume it: every input runs exactly once in total.
TEST(FerryRun, ResumeAfterInterruptRunsOnlyWhatDidNotSucceed) {
  TempDir dir;
  Strings args = {
      "run", "-j", "2", "--joblog", "log", "--shell", "echo {} >> ran.txt; sleep 0.2; echo done {}",
      ":::"};
  for (int i = 1; i <= 20; ++i) args.push_back(std::to_string(i));

  exec::ProcessSet set;
  auto id = set.start(ferry_command(args, dir));
  ASSERT_TRUE(eventually([&] { return joblog_rows(dir / "log").size() >= 3; }));
  ASSERT_EQ(::kill(set.pid(id), SIGINT), 0);
  exec::Result first;
  for (auto finished = set.wait(std::nullopt);; finished = set.wait(std::nullopt))
    if (!finished.empty()) {
      first = finished[0].result;
      break;
    }
  EXPECT_EQ(first.end, exec::End::exited);
  EXPECT_NE(first.err.find("interrupted; waiting for"), std::string::npos) << first.err;
  auto ran_first = lines_of(read_file(dir / "ran.txt"));
  auto rows = joblog_rows(dir / "log");
  // The running jobs were allowed to finish: everything started succeeded.
  EXPECT_EQ(rows.size(), ran_first.size());
  for (auto& row : rows) EXPECT_EQ(row[6], "0");
  ASSERT_LT(ran_first.size(), 20u);
  EXPECT_EQ(first.exit_code, static_cast<int>(20 - ran_first.size()));

  args.insert(args.begin() + 1, "--resume");
  auto second = run_ferry(args, dir);
  EXPECT_EQ(second.exit_code, 0) << second.err;
  auto ran_all = lines_of(read_file(dir / "ran.txt"));
  EXPECT_EQ(ran_all.size(), 20u);
  std::set<std::string> unique(ran_all.begin(), ran_all.end());
  EXPECT_EQ(unique.size(), 20u);
  EXPECT_EQ(joblog_rows(dir / "log").size(), 20u);
}

TEST(FerryRun, SecondInterruptKillsRunningJobs) {
  TempDir dir;
  exec::ProcessSet set;
  // stderr goes to a file, so the test sees when the first interrupt was
  // handled: two signals sent at once could merge into one.
  exec::Command command = ferry_command({"run", "-j", "2", "--joblog", "log", "--shell",
                                         "echo started > s{}; sleep 60", ":::", "1", "2", "3"},
                                        dir);
  command.argv.insert(command.argv.begin(), {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2> stderr"});
  auto id = set.start(command);
  ASSERT_TRUE(eventually(
      [&] { return std::filesystem::exists(dir / "s1") && std::filesystem::exists(dir / "s2"); }));
  pid_t pid = set.pid(id);
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  ASSERT_TRUE(eventually(
      [&] { return read_file(dir / "stderr").find("interrupted") != std::string::npos; }));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  exec::Result result;
  for (;;) {
    auto finished = set.wait(std::nullopt);
    if (!finished.empty()) {
      result = finished[0].result;
      break;
    }
  }
  result.err = read_file(dir / "stderr");
  EXPECT_EQ(result.exit_code, 3) << result.err;
  EXPECT_NE(result.err.find("killing 2 running jobs"), std::string::npos) << result.err;
  auto rows = joblog_rows(dir / "log");
  ASSERT_EQ(rows.size(), 2u);
  for (auto& row : rows) EXPECT_EQ(row[7], "15");
}

struct BadInput {
  std::string name;
  Strings args;
  std::string message;
};

void PrintTo(const BadInput& input, std::ostream* out) { *out << input.name; }

class FerryRunBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(FerryRunBadInput, ClearMessageExitTwoAndNothingRuns) {
  TempDir dir;
  std::ofstream(dir / "not-a-joblog") << "precious\n";
  auto r = run_ferry(GetParam().args, dir);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(std::filesystem::exists(dir / "ran"));
  EXPECT_EQ(read_file(dir / "not-a-joblog"), "precious\n");
}

INSTANTIATE_TEST_SUITE_P(
    Messages, FerryRunBadInput,
    ::testing::Values(
        BadInput{"NoSubcommand", {}, "A subcommand is required"},
        BadInput{"UnknownSubcommand", {"launch"}, "unknown command 'launch'"},
        BadInput{"UnknownOption",
                 {"run", "--bogus", "touch", "ran", ":::", "a"},
                 "unknown option '--bogus'"},
        BadInput{"BadJobs",
                 {"run", "-j", "lots", "touch", "ran", ":::", "a"},
                 "-j: 'lots' is not a number"},
        BadInput{
            "NegativeRetries", {"run", "--retries", "-1", "touch", "ran", ":::", "a"}, "--retries"},
        BadInput{"ZeroTimeout", {"run", "--timeout", "0", "touch", "ran", ":::", "a"}, "--timeout"},
        BadInput{
            "BadHalt", {"run", "--halt", "sometimes", "touch", "ran", ":::", "a"}, "--halt takes"},
        BadInput{"ZeroHalt",
                 {"run", "--halt", "now,fail=0", "touch", "ran", ":::", "a"},
                 "'0' is not a positive count"},
        BadInput{"MissingInputFile",
                 {"run", "touch", "ran", "::::", "missing.txt"},
                 "cannot read input file 'missing.txt'"},
        BadInput{
            "FourColonsWithoutFile", {"run", "touch", "ran", "::::"}, ":::: needs a file name"},
        BadInput{"ResumeWithoutJoblog",
                 {"run", "--resume", "touch", "ran", ":::", "a"},
                 "--resume needs --joblog"},
        BadInput{"ResumeFromNonJoblog",
                 {"run", "--resume", "--joblog", "not-a-joblog", "touch", "ran", ":::", "a"},
                 "'not-a-joblog' is not a joblog"},
        BadInput{"JoblogInMissingDir",
                 {"run", "--joblog", "no/such/dir/log", "touch", "ran", ":::", "a"},
                 "cannot open joblog 'no/such/dir/log'"},
        BadInput{"PlaceholderBeyondGroups",
                 {"run", "touch", "ran{3}", ":::", "a"},
                 "{3} refers to input group 3"}),
    [](const auto& test) { return test.param.name; });

}  // namespace
}  // namespace ferry::e2e
