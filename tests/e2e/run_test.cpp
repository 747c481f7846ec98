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
  // As in GNU parallel, --retries N is N attempts in all.
  auto r =
      run_ferry({"run", "--retries", "3", "--joblog", "log", "--shell", flaky, ":::", "x"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "attempt 2\n");  // only the final attempt's output is printed
  auto rows = joblog_rows(dir / "log");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][6], "1");
  EXPECT_EQ(rows[1][6], "1");
  EXPECT_EQ(rows[2][6], "0");
  for (auto& row : rows) EXPECT_EQ(row[0], "1");

  TempDir again;
  r = run_ferry({"run", "--retries", "2", "--shell", flaky, ":::", "x"}, again);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ferry: 1 of 1 job failed"), std::string::npos) << r.err;
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
  EXPECT_EQ(r.exit_code, 3);  // as in parallel: fail=1 exits with the failed job's status
  EXPECT_EQ(r.out, "0\n3\n");
  EXPECT_NE(r.err.find("1 of 2 jobs failed, input left unread (halted: 1 job failed)"),
            std::string::npos)
      << r.err;
}

TEST(FerryRun, HaltNowKillsRunningJobs) {
  TempDir dir;
  auto started = std::chrono::steady_clock::now();
  auto r = run_ferry({"run", "-j", "2", "--halt", "now,fail=50%", "--shell", "{}",
                      ":::", "sleep 0.2; exit 1", "sleep 60"},
                     dir);
  EXPECT_EQ(r.exit_code, 50);  // as in parallel: the percentage of jobs that failed
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
  EXPECT_EQ(first.exit_code, 130);  // 128 + SIGINT, as a shell reports it

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
  EXPECT_EQ(result.exit_code, 130) << result.err;
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
                 "-j takes N, 0, N%, +N or -N jobs (not 'lots')"},
        BadInput{
            "NegativeRetries", {"run", "--retries", "-1", "touch", "ran", ":::", "a"}, "--retries"},
        BadInput{
            "NegativeTimeout", {"run", "--timeout", "-1", "touch", "ran", ":::", "a"}, "--timeout"},
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
                 "{3} refers to input 3"}),
    [](const auto& test) { return test.param.name; });

}  // namespace
}  // namespace ferry::e2e

namespace ferry::e2e {
namespace {

exec::Result run_script(const std::string& script, const TempDir& dir) {
  exec::Command command = exec::shell_command(script);
  command.cwd = dir.path().string();
  command.env = {std::string("FERRY=") + FERRY_BINARY, "TMPDIR=" + dir.path().string()};
  command.timeout = std::chrono::seconds(120);
  return run_to_end(command);
}

// `| head -1`: once the reader is gone, ferry starts nothing new and exits
// like a program killed by SIGPIPE (141), saying so. Jobs 3 and later print
// only once the reader has gone, so the test does not race the reader.
TEST(FerryRunExact, ClosedOutputStopsTheRun) {
  TempDir dir;
  auto r = run_script(
      "{ \"$FERRY\" run -j 2 sh -c 'touch started.$0; [ $0 -le 2 ] || { i=0; while [ ! -e gone ] "
      "&& [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; }; echo $0; sleep 0.1' ::: $(seq 20) "
      "2>stderr; echo $? > status; } | { head -n 1; touch gone; }",
      dir);
  EXPECT_EQ(read_file(dir / "status"), "141\n") << read_file(dir / "stderr");
  EXPECT_NE(read_file(dir / "stderr").find("output closed"), std::string::npos)
      << read_file(dir / "stderr");
  int started = 0;
  for (int i = 1; i <= 20; ++i)
    started += std::filesystem::exists(dir / ("started." + std::to_string(i)));
  EXPECT_LE(started, 6);
}

// A crash tore the last row; --resume drops the fragment before appending,
// so a later --resume still reads the joblog.
TEST(FerryRunExact, TornLastJoblogLineDoesNotBreakResume) {
  TempDir dir;
  std::ofstream(dir / "log") << run::kJoblogHeader << "\n1\t:\t1\t0.1\t0\t2\t0\t0\techo a\n2\t:\t1";
  auto first = run_ferry({"run", "--resume", "--joblog", "log", "echo", ":::", "a", "b", "c"}, dir);
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(sorted(lines_of(first.out)), (Strings{"b", "c"}));
  auto second =
      run_ferry({"run", "--resume", "--joblog", "log", "echo", ":::", "a", "b", "c"}, dir);
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, "");
  EXPECT_EQ(joblog_rows(dir / "log").size(), 3u);
}

// The Command column is a command `sh` runs as the job ran.
TEST(FerryRunExact, JoblogCommandIsAValidShellCommand) {
  TempDir dir;
  Strings inputs = {"it's", "back\\slash", "tab\there", "new\nline", "$(touch x)", "\"q\""};
  Strings args = {"run", "-j", "1", "--joblog", "log", "printf", "[%s]", ":::"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  auto r = run_ferry(args, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = joblog_rows(dir / "log");
  ASSERT_EQ(rows.size(), inputs.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto again = run_to_end(exec::shell_command(rows[i][8]));
    EXPECT_EQ(again.out, "[" + inputs[i] + "]") << rows[i][8];
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

// Every usage error is one short line that starts with "ferry run:" or "ferry:".
TEST(FerryRunExact, UsageErrorsAreOneShortLine) {
  TempDir dir;
  std::vector<Strings> cases = {{"run", "--timeout", "1e999", "true", ":::", "a"},
                                {"run", "--timeout", "abc", "true", ":::", "a"},
                                {"run", "-j", "x", "true", ":::", "a"},
                                {"run", "--retries", "1e999", "true", ":::", "a"},
                                {"run", "--joblog"},
                                {"run", "--halt", "sometimes", "true", ":::", "a"},
                                {"run", "--kill-grace", "-1", "true", ":::", "a"},
                                {"run", "--bogus", "true", ":::", "a"}};
  for (const Strings& args : cases) {
    auto r = run_ferry(args, dir);
    EXPECT_EQ(r.exit_code, 2) << args[1];
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("ferry", 0), 0u) << r.err;
    EXPECT_LT(r.err.size(), 160u) << r.err;
  }
}

TEST(FerryRunExact, ParallelsSpellingsAreAccepted) {
  TempDir dir;
  auto r = run_ferry({"run", "-j", "1", "-j", "2", "-k", "echo", ":::", "a"}, dir);
  EXPECT_EQ(r.out, "a\n") << r.err;
  r = run_ferry({"run", "-P", "2", "-q", "-k", "echo", "{}", ":::", "a b"}, dir);
  EXPECT_EQ(r.out, "a b\n") << r.err;
  r = run_ferry({"run", "--dryrun", "touch", ":::", "c"}, dir);
  EXPECT_EQ(r.out, "touch c\n") << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "c"));
}

TEST(FerryRunExact, HelpSaysWhatAShellInTheCommandInterprets) {
  TempDir dir;
  auto r = run_ferry({"run", "--help"}, dir);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sh -c 'echo {}'"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ferry::e2e

// The same flag means the same as in GNU parallel.
namespace ferry::e2e {
namespace {

TEST(FerryRunSameMeaning, RetriesCountsAttemptsInAllAndZeroMeansUntilSuccess) {
  TempDir dir;
  auto r = run_ferry({"run", "--retries", "3", "--joblog", "log", "false", ":::", "x"}, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(joblog_rows(dir / "log").size(), 3u);
  // Succeeds at the 5th attempt.
  std::string flaky = "echo {} >> tries; [ $(wc -l < tries) -ge 5 ]";
  r = run_ferry({"run", "--retries", "0", "--joblog", "log", "--shell", flaky, ":::", "x"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(joblog_rows(dir / "log").size(), 5u);
}

TEST(FerryRunSameMeaning, ResumeSkipsEveryLoggedJobResumeFailedRerunsFailures) {
  TempDir dir;
  std::string log = std::string(run::kJoblogHeader) +
                    "\n1\t:\t1\t0.1\t0\t2\t0\t0\techo a\n2\t:\t1\t0.1\t0\t2\t1\t0\techo b\n";
  std::ofstream(dir / "log") << log;
  auto r = run_ferry({"run", "--resume", "--joblog", "log", "echo", ":::", "a", "b", "c"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "c\n");
  std::ofstream(dir / "log") << log;
  r = run_ferry({"run", "-k", "--resume-failed", "--joblog", "log", "echo", ":::", "a", "b", "c"},
                dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "b\nc\n");
}

TEST(FerryRunSameMeaning, AnyReplacementStringStopsAppending) {
  TempDir dir;
  auto r = run_ferry({"run", "-k", "echo", "{#}", ":::", "A", "B", "C"}, dir);
  EXPECT_EQ(r.out, "1\n2\n3\n");
  r = run_ferry({"run", "-j", "1", "echo", "slot", "{%}", ":::", "A"}, dir);
  EXPECT_EQ(r.out, "slot 1\n");
}

TEST(FerryRunSameMeaning, PathReplacementEdgeCasesAsDocumented) {
  TempDir dir;
  auto r = run_ferry({"run", "-k", "echo", "{.}", "{//}", "{/}", ":::", ".bashrc", "dir/"}, dir);
  EXPECT_EQ(r.out, ".bashrc . .bashrc\ndir/ . dir\n");
}

TEST(FerryRunSameMeaning, HaltTakesParallelsForms) {
  TempDir dir;
  auto r =
      run_ferry({"run", "-j", "1", "--halt", "2", "--shell", "exit {}", ":::", "0", "4", "0"}, dir);
  EXPECT_EQ(r.exit_code, 4) << r.err;  // now,fail=1: the failed job's status
  r = run_ferry({"run", "-j", "1", "--halt", "soon,success=1", "--shell", "echo {}; exit {}",
                 ":::", "3", "0", "5"},
                dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n0\n");
  r = run_ferry({"run", "-j", "1", "--halt", "now,done=1", "--shell", "exit {}", ":::", "7", "0"},
                dir);
  EXPECT_EQ(r.exit_code, 7) << r.err;
}

TEST(FerryRunSameMeaning, AOneWordShellCommandGetsTheShellHintOnce) {
  TempDir dir;
  auto r = run_ferry({"run", "touch ran {} && echo done", ":::", "a", "b", "c"}, dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("--shell"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "ran"));
}

TEST(FerryRunSameMeaning, PerlExpressionsAreRefused) {
  TempDir dir;
  auto r = run_ferry({"run", "touch", "{=s/a/b/=}", ":::", "a"}, dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Perl"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace
}  // namespace ferry::e2e

namespace ferry::e2e {
namespace {

// -j FILE is read again while the run goes: job 1 raises it from 1 to 2 and
// waits (bounded) for job 2 to start beside it.
TEST(FerryRunOptions, JobsFromAFileChangeWhileRunning) {
  TempDir dir;
  std::ofstream(dir / "procs") << "1\n";
  std::string job =
      "if [ {} = 1 ]; then echo 2 > procs; i=0; while [ ! -e started.2 ] && [ $i -lt 3000 ]; "
      "do sleep 0.01; i=$((i+1)); done; [ -e started.2 ] && echo saw-2 || echo alone; "
      "else touch started.{}; fi";
  auto r = run_ferry({"run", "-j", "procs", "--shell", job, ":::", "1", "2"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "saw-2\n");
}

TEST(FerryRunOptions, TagResultsAndColumnsTogether) {
  TempDir dir;
  std::ofstream(dir / "table.csv") << "name,size\nx,1\ny,2\n";
  auto r = run_ferry({"run", "-k", "--header", ":", "--colsep", ",", "--tagstring", "{name}",
                      "echo", "{size}", "::::", dir / "table.csv"},
                     dir);
  EXPECT_EQ(r.out, "x\t1\ny\t2\n") << r.err;
  r = run_ferry({"run", "--results", "out", "echo", "{}", ":::", "a"}, dir);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(read_file(dir / "out/1/a/stdout"), "a\n");
}

}  // namespace
}  // namespace ferry::e2e
