#include "exec/process_set.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace ferry::exec {
namespace {

using namespace std::chrono_literals;

// Runs every command to completion; results in start order.
std::vector<Result> run_all(ProcessSet& set, const std::vector<Command>& commands) {
  std::map<ProcessSet::Id, std::size_t> index;
  for (const Command& command : commands) index[set.start(command)] = index.size();
  std::vector<Result> results(commands.size());
  while (set.size() > 0)
    for (auto& finished : set.wait(std::nullopt)) results[index[finished.id]] = finished.result;
  return results;
}

Result run_one(const Command& command) {
  ProcessSet set;
  return run_all(set, {command})[0];
}

Command argv(std::vector<std::string> args) {
  Command command;
  command.argv = std::move(args);
  return command;
}

bool process_gone(pid_t pid) {
  // Bounded: a killed process is reaped by init within moments.
  for (int i = 0; i < 200; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    auto state = line.substr(line.rfind(')') + 2, 1);
    if (state == "Z" || state == "X") return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::filesystem::path temp_dir() {
  char pattern[] = "/tmp/ferry-exec-test-XXXXXX";
  return ::mkdtemp(pattern);
}

TEST(ProcessSet, CapturesStdoutAndStderrSeparately) {
  Result r = run_one(shell_command("echo out; echo err >&2; exit 3"));
  EXPECT_EQ(r.end, End::exited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.succeeded());
  EXPECT_EQ(describe(r), "exit 3");
}

TEST(ProcessSet, RunsArgvWithoutAShell) {
  Result r = run_one(argv({"printf", "%s|", "a b", "$HOME", "*"}));
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.out, "a b|$HOME|*|");
}

TEST(ProcessSet, MissingProgramFailsThatChildLikeAShell) {
  Result r = run_one(argv({"ferry-no-such-program", "x"}));
  EXPECT_EQ(r.end, End::failed_to_start);
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_EQ(r.error, "cannot run 'ferry-no-such-program': No such file or directory");
  EXPECT_EQ(describe(r), r.error);
}

TEST(ProcessSet, NonExecutableFileFailsWith126) {
  Result r = run_one(argv({"/etc/hostname"}));
  EXPECT_EQ(r.end, End::failed_to_start);
  EXPECT_EQ(r.exit_code, 126);
}

TEST(ProcessSet, EmptyCommandFailsToStart) {
  Result r = run_one(argv({}));
  EXPECT_EQ(r.end, End::failed_to_start);
  EXPECT_EQ(r.error, "cannot run an empty command");
}

TEST(ProcessSet, ReportsTheSignalThatKilledIt) {
  Result r = run_one(shell_command("kill -SEGV $$"));
  EXPECT_EQ(r.end, End::signaled);
  EXPECT_EQ(r.signal, SIGSEGV);
  EXPECT_EQ(describe(r), "killed by SIGSEGV");
}

TEST(ProcessSet, StdinIsDevNullByDefault) {
  Result r = run_one(argv({"wc", "-c"}));
  EXPECT_EQ(r.out, "0\n");
}

TEST(ProcessSet, FeedsLargeStdinWithoutDeadlock) {
  Command command = argv({"cat"});
  std::string data(3 << 20, 'x');
  for (std::size_t i = 0; i < data.size(); i += 4096) data[i] = '\n';
  command.stdin_data = data;
  Result r = run_one(command);
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.out.size(), data.size());
  EXPECT_EQ(r.out, data);
}

TEST(ProcessSet, ChildClosingStdinEarlyDoesNotHurtTheSupervisor) {
  Command command = argv({"head", "-c", "1"});
  command.stdin_data = std::string(1 << 20, 'y');
  Result r = run_one(command);
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.out, "y");
}

TEST(ProcessSet, KeepsTheTailOfOutputPastTheLimit) {
  Command command = shell_command("seq 1 100000");
  command.output_limit = 13;
  Result r = run_one(command);
  EXPECT_EQ(r.out, "99999\n100000\n");
  EXPECT_EQ(r.out_dropped, 588895u - 13u);  // `seq 1 100000 | wc -c` is 588895
}

TEST(ProcessSet, EnvironmentAndWorkingDirectory) {
  auto dir = temp_dir();
  Command command = shell_command("echo \"$FERRY_A:$HOME_X\"; pwd");
  command.env = {"FERRY_A=1", "HOME_X=two words"};
  command.cwd = dir;
  Result r = run_one(command);
  EXPECT_EQ(r.out, "1:two words\n" + dir.string() + "\n");
  std::filesystem::remove_all(dir);
}

TEST(ProcessSet, MissingWorkingDirectoryIsNamed) {
  Command command = argv({"true"});
  command.cwd = "/nonexistent-ferry-dir";
  Result r = run_one(command);
  EXPECT_EQ(r.end, End::failed_to_start);
  EXPECT_NE(r.error.find("in '/nonexistent-ferry-dir'"), std::string::npos) << r.error;
}

TEST(ProcessSet, TimeoutKillsTheWholeGroupIncludingGrandchildren) {
  auto dir = temp_dir();
  auto pid_file = dir / "grandchild.pid";
  Command command = shell_command("sleep 60 & echo $! > " + pid_file.string() + "; wait");
  command.timeout = 1000ms;  // ample time for sh to start and write the pid file
  Result r = run_one(command);
  EXPECT_EQ(r.end, End::timed_out);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_EQ(describe(r), "timed out");
  std::ifstream in(pid_file);
  pid_t grandchild = 0;
  in >> grandchild;
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(process_gone(grandchild));
  std::filesystem::remove_all(dir);
}

TEST(ProcessSet, TimeoutEscalatesToSigkillAfterGrace) {
  Command command = shell_command("trap '' TERM; sleep 60");
  command.timeout = 1000ms;  // ample time for sh to set the trap before the SIGTERM
  command.kill_grace = 100ms;
  Result r = run_one(command);
  EXPECT_EQ(r.end, End::timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(ProcessSet, DoesNotWaitForABackgroundedGrandchildHoldingThePipe) {
  auto dir = temp_dir();
  auto pid_file = dir / "grandchild.pid";
  Result r = run_one(shell_command("sleep 60 & echo $! > " + pid_file.string() + "; echo done"));
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.out, "done\n");
  pid_t grandchild = 0;
  std::ifstream(pid_file) >> grandchild;
  ASSERT_GT(grandchild, 0);
  ::kill(grandchild, SIGKILL);
  std::filesystem::remove_all(dir);
}

TEST(ProcessSet, RunsManyAtOnce) {
  ProcessSet set;
  std::vector<Command> commands;
  for (int i = 0; i < 200; ++i) commands.push_back(argv({"echo", std::to_string(i)}));
  auto results = run_all(set, commands);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(results[i].out, std::to_string(i) + "\n");
  EXPECT_EQ(set.size(), 0u);
}

TEST(ProcessSet, WaitReturnsAtDeadlineAndOnWakeFd) {
  ProcessSet set;
  auto id = set.start(argv({"sleep", "60"}));
  EXPECT_GT(set.pid(id), 0);
  EXPECT_TRUE(set.wait(Clock::now() + 20ms).empty());

  int wake[2];
  ASSERT_EQ(::pipe(wake), 0);
  ASSERT_EQ(::write(wake[1], "x", 1), 1);
  EXPECT_TRUE(set.wait(std::nullopt, wake[0]).empty());
  ::close(wake[0]);
  ::close(wake[1]);

  set.terminate_all(1000ms);
  auto finished = set.wait(std::nullopt);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].result.end, End::signaled);
  EXPECT_EQ(finished[0].result.signal, SIGTERM);
  EXPECT_EQ(set.pid(id), 0);
}

TEST(ProcessSet, TerminatesOneChildAndLeavesTheOthers) {
  ProcessSet set;
  auto doomed = set.start(argv({"sleep", "60"}));
  auto spared = set.start(shell_command("sleep 0.2; echo spared"));
  set.terminate(doomed, 1000ms);
  set.terminate(12345, 1000ms);  // unknown: nothing happens
  std::map<ProcessSet::Id, Result> results;
  while (set.size() > 0)
    for (auto& finished : set.wait(std::nullopt)) results[finished.id] = finished.result;
  EXPECT_EQ(results[doomed].end, End::signaled);
  EXPECT_EQ(results[doomed].signal, SIGTERM);
  EXPECT_TRUE(results[spared].succeeded());
  EXPECT_EQ(results[spared].out, "spared\n");
}

TEST(ProcessSet, DestructorKillsAndReapsRunningChildren) {
  pid_t pid = 0;
  {
    ProcessSet set;
    pid = set.pid(set.start(argv({"sleep", "60"})));
    ASSERT_GT(pid, 0);
  }
  errno = 0;
  EXPECT_EQ(::kill(pid, 0), -1);  // reaped: not even a zombie
  EXPECT_EQ(errno, ESRCH);
}

TEST(ProcessSet, MeasuresCpuTimeAndMemory) {
  Result r = run_one(shell_command("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"));
  EXPECT_TRUE(r.succeeded());
  EXPECT_GT(r.user_cpu + r.system_cpu, 0us);
  EXPECT_GT(r.max_rss_kb, 0);
  EXPECT_GE(r.wall, r.user_cpu);
}

}  // namespace
}  // namespace ferry::exec

namespace ferry::exec {
namespace {

TEST(ProcessSet, OutputHandlerSeesEveryByteAndNothingIsKept) {
  std::string out, err;
  Command command = shell_command("head -c 3000000 /dev/zero; echo e >&2");
  command.output_limit = 1000;  // does not apply to handed-over output
  command.on_output = [&](Stream stream, std::string_view data) {
    (stream == Stream::out ? out : err).append(data);
  };
  ProcessSet set;
  set.start(command);
  Result result;
  while (set.size() > 0)
    for (auto& finished : set.wait(std::nullopt)) result = finished.result;
  EXPECT_TRUE(result.succeeded());
  EXPECT_EQ(out, std::string(3000000, '\0'));
  EXPECT_EQ(err, "e\n");
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.out_dropped, 0u);
  EXPECT_EQ(result.out_bytes, 3000000u);
  EXPECT_EQ(result.err_bytes, 2u);
}

TEST(ProcessSet, AStreamCanGoStraightToADescriptor) {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-exec-fd-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  int fd = ::open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  Command command = shell_command("echo direct; echo captured >&2");
  command.stdout_fd = fd;
  ProcessSet set;
  set.start(command);
  Result result;
  while (set.size() > 0)
    for (auto& finished : set.wait(std::nullopt)) result = finished.result;
  ::close(fd);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "captured\n");
  std::ifstream in(dir / "out");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "direct");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::exec
