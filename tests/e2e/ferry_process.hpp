// Helpers for end-to-end tests: run the real ferry binary in a scratch
// directory and look at what it left behind.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "exec/process_set.hpp"

namespace ferry::e2e {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

exec::Command ferry_command(std::vector<std::string> args, const TempDir& cwd,
                            std::optional<std::string> stdin_data = std::nullopt);

// Runs a command to completion.
exec::Result run_to_end(const exec::Command& command);

// Runs ferry to completion (a generous safety timeout stops a hang).
exec::Result run_ferry(std::vector<std::string> args, const TempDir& cwd,
                       std::optional<std::string> stdin_data = std::nullopt);

std::string read_file(const std::string& path);
std::vector<std::string> lines_of(const std::string& text);

// Built with AddressSanitizer: its shadow memory and quarantine make a
// process's RSS say nothing about its own use, and big data slow. Memory
// bounds are checked by the release build's run of the same tests.
constexpr bool under_address_sanitizer() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  return false;
#endif
}

// Polls `condition` every 10 ms for at most `seconds`.
bool eventually(const std::function<bool()>& condition, double seconds = 20);

}  // namespace ferry::e2e
