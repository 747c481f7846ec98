#include "ferry_process.hpp"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace ferry::e2e {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ferry-e2e-XXXXXX").string();
  path_ = ::mkdtemp(pattern.data());
}

TempDir::~TempDir() { std::filesystem::remove_all(path_); }

exec::Command ferry_command(std::vector<std::string> args, const TempDir& cwd,
                            std::optional<std::string> stdin_data) {
  exec::Command command;
  command.argv = {FERRY_BINARY};
  command.argv.insert(command.argv.end(), args.begin(), args.end());
  command.cwd = cwd.path().string();
  command.stdin_data = std::move(stdin_data);
  command.timeout = std::chrono::seconds(90);
  return command;
}

exec::Result run_to_end(const exec::Command& command) {
  exec::ProcessSet set;
  set.start(command);
  for (;;) {
    auto finished = set.wait(std::nullopt);
    if (!finished.empty()) return finished[0].result;
  }
}

exec::Result run_ferry(std::vector<std::string> args, const TempDir& cwd,
                       std::optional<std::string> stdin_data) {
  return run_to_end(ferry_command(std::move(args), cwd, std::move(stdin_data)));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool eventually(const std::function<bool()>& condition, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace ferry::e2e
