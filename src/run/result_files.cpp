#include "run/result_files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace ferry::run {
namespace {

int create(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("--results: cannot write '{}': {}", path.string(), std::strerror(errno)));
  return fd;
}

void write_all(int fd, std::string_view data) {
  while (fd >= 0 && !data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::string results_component(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '/')
      out += "\\_";
    else
      out += c;
  }
  return out.empty() ? "\\0" : out;
}

std::unique_ptr<ResultFiles> ResultFiles::for_results(const std::string& directory,
                                                      const std::vector<std::string>& args,
                                                      std::uint64_t seq) {
  std::filesystem::path dir = directory;
  for (std::size_t i = 0; i < args.size(); ++i)
    dir = dir / std::to_string(i + 1) / results_component(args[i]);
  if (args.empty()) dir = dir / "1" / std::to_string(seq);  // --pipe: no inputs to name it by
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  std::unique_ptr<ResultFiles> files(new ResultFiles);
  files->out_ = create(dir / "stdout");
  files->err_ = create(dir / "stderr");
  int seq_fd = create(dir / "seq");
  write_all(seq_fd, std::to_string(seq));
  ::close(seq_fd);
  return files;
}

std::unique_ptr<ResultFiles> ResultFiles::for_files(const std::string& directory) {
  std::string name = directory + "/parXXXXXX.par";
  int fd = ::mkostemps(name.data(), 4, O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("--files: cannot create a file in '{}': {}", directory, std::strerror(errno)));
  std::unique_ptr<ResultFiles> files(new ResultFiles);
  files->out_ = fd;
  files->name_ = name;
  return files;
}

ResultFiles::~ResultFiles() {
  if (out_ >= 0) ::close(out_);
  if (err_ >= 0) ::close(err_);
}

void ResultFiles::write(exec::Stream stream, std::string_view data) const {
  write_all(stream == exec::Stream::out ? out_ : err_, data);
}

}  // namespace ferry::run
