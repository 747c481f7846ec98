// Test support for shared objects: names a test process gives its objects,
// a check that none is left in /dev/shm, and processes run to completion.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ferry/process.hpp"
#include "pool/children.hpp"

namespace ferry::testing {

// "ferry-test-<pid>-<what>": unique to this test process, so that tests
// running at the same time never see each other's objects.
inline std::string test_name(const std::string& what) {
  return "ferry-test-" + std::to_string(::getpid()) + "-" + what;
}

// Entries of /dev/shm this process made: the names above, and the fresh
// names of objects nobody named ("ferry-<pid>-...").
inline std::vector<std::string> leftover_shared_memory() {
  std::string mine = "ferry-" + std::to_string(::getpid()) + "-";
  std::string named = test_name("");
  std::vector<std::string> found;
  if (DIR* directory = ::opendir("/dev/shm")) {
    while (dirent* entry = ::readdir(directory)) {
      std::string name = entry->d_name;
      if (name.rfind(mine, 0) == 0 || name.rfind(named, 0) == 0) found.push_back(name);
    }
    ::closedir(directory);
  }
  return found;
}

// Every test of shared objects ends with no child process and nothing of
// its own left in /dev/shm.
class SharedTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_TRUE(children().empty()) << "a child process was left behind";
    EXPECT_EQ(leftover_shared_memory(), std::vector<std::string>{})
        << "a shared memory object was left in /dev/shm";
  }
};

// Runs `count` processes of `body(index)` and returns their exit codes,
// each joined within a hang guard (a process still running then is killed
// and reported as -9).
inline std::vector<int> run_processes(int count, const std::function<void(int)>& body,
                                      std::chrono::seconds guard = std::chrono::seconds(60)) {
  std::vector<Process> processes;
  for (int i = 0; i < count; ++i) processes.emplace_back([&body, i] { body(i); });
  for (auto& process : processes) process.start();
  std::vector<int> codes;
  for (auto& process : processes) {
    if (!process.join(guard)) {
      process.kill();
      process.join();
    }
    codes.push_back(*process.exit_code());
  }
  return codes;
}

// Waits (at most 10 s) until `pid` is asleep: a test that needs a process
// to be inside a wait before it acts looks here, not at a clock.
inline bool wait_until_asleep(pid_t pid) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'S')
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace ferry::testing
