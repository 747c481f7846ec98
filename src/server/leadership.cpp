#include "server/leadership.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

namespace ferry::server {
namespace {

void log(std::string_view line) { std::cerr << "ferry server: " << line << std::endl; }

constexpr const char* kListeningSocket = "FERRY_LISTENING_SOCKET";

}  // namespace

Leadership::Leadership(std::unique_ptr<store::Election> election, std::string name, std::string url,
                       Post post, Events events)
    : election_(std::move(election)),
      name_(std::move(name)),
      url_(std::move(url)),
      post_(std::move(post)),
      events_(std::move(events)),
      lease_(election_->lease()) {}

Leadership::~Leadership() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Leadership::start() {
  thread_ = std::thread([this] { run(); });
}

bool Leadership::leading() const {
  return epoch_ != 0 && Clock::now().time_since_epoch().count() < valid_until_;
}

std::string Leadership::leader_url() const {
  std::lock_guard lock(mutex_);
  return leading() ? url_ : leader_url_;
}

void Leadership::resign() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (std::uint64_t epoch = epoch_.exchange(0)) {
    try {
      election_->resign(epoch);
    } catch (const std::exception& problem) {
      log(
          fmt::format("could not give up the leadership (a standby takes over when the lease "
                      "runs out): {}",
                      problem.what()));
    }
  }
}

void Leadership::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, duration, [this] { return stopping_; });
}

void Leadership::log_problem(const std::string& problem) {
  if (problem == last_problem_) return;
  last_problem_ = problem;
  if (!problem.empty()) log(problem);
}

void Leadership::run() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (epoch_ == 0) {
      stand_by();
      pause(lease_ / 6);
    } else {
      if (!keep_leading()) return;
      pause(lease_ / 3);
    }
  }
}

void Leadership::stand_by() {
  try {
    auto sent = Clock::now();
    if (std::optional<std::uint64_t> won = election_->try_lead(name_, url_)) {
      valid_until_ = (sent + lease_ - lease_ / 6).time_since_epoch().count();
      epoch_ = *won;
      log_problem("");
      post_([this, epoch = *won] { events_.won(epoch); });
      return;
    }
    store::Election::View view = election_->observe();
    std::lock_guard lock(mutex_);
    leader_url_ = view.expired ? "" : view.url;
    last_problem_.clear();
  } catch (const std::exception& problem) {
    {
      std::lock_guard lock(mutex_);
      leader_url_.clear();
    }
    log_problem(fmt::format("standing by: {}", problem.what()));
  }
}

bool Leadership::keep_leading() {
  std::uint64_t epoch = epoch_;
  auto sent = Clock::now();
  std::string lost;
  try {
    if (election_->renew(epoch)) {
      // The database holds the lease a lease past the moment it renewed,
      // which came after `sent`: stepping aside a sixth of a lease before
      // that leaves room for clocks that run at slightly different rates.
      valid_until_ = (sent + lease_ - lease_ / 6).time_since_epoch().count();
      log_problem("");
      return true;
    }
    lost = fmt::format("another server took over (epoch {} ended)", epoch);
  } catch (const std::exception& problem) {
    if (leading()) {
      log_problem(fmt::format("cannot renew the leadership yet: {}", problem.what()));
      return true;  // the lease may still be ours: try again
    }
    lost = fmt::format("could not renew the leadership within its lease: {}", problem.what());
  }
  valid_until_ = 0;
  post_([this, lost] { events_.lost(lost); });
  return false;
}

void restart(int listening) {
  // The program and its arguments as they were started.
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  std::vector<char*> argv;
  for (std::size_t at = 0; at < all.size(); at += std::strlen(all.data() + at) + 1)
    argv.push_back(all.data() + at);
  argv.push_back(nullptr);
  // Nothing of this program goes on in the next but the listening socket.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (listening >= 0) {
    ::fcntl(listening, F_SETFD, 0);
    ::setenv(kListeningSocket, std::to_string(listening).c_str(), 1);
  }
  ::execv("/proc/self/exe", argv.data());
  log(fmt::format("cannot start again: {}; exiting", std::strerror(errno)));
  ::_exit(1);
}

std::optional<int> listening_socket() {
  const char* given = std::getenv(kListeningSocket);
  if (!given) return std::nullopt;
  int fd = std::atoi(given);
  ::unsetenv(kListeningSocket);
  if (fd < 3 || ::fcntl(fd, F_GETFD) < 0) return std::nullopt;
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

}  // namespace ferry::server
