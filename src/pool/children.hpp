// Test helper: the processes whose parent is this one, zombies included.
#pragma once

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace ferry::testing {

inline std::vector<pid_t> children() {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  while (dirent* entry = ::readdir(proc)) {
    std::string name = entry->d_name;
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    // After "pid (comm) ": the state, then the parent's pid.
    std::string rest = line.substr(close + 2);
    pid_t parent = std::stoi(rest.substr(rest.find(' ') + 1));
    if (parent == ::getpid()) found.push_back(std::stoi(name));
  }
  ::closedir(proc);
  return found;
}

}  // namespace ferry::testing
