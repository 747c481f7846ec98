// Leadership — whether this server leads the servers sharing its database.
//
// Several `ferry server` processes on one PostgreSQL database: one leads
// (serves the API and writes), the others stand by (answer every API call
// with 503 not_leader, naming the leader). A thread of its own runs the
// election (store::Election), so that a slow database never stalls the
// server's event loop:
//
// - a standby looks every lease/6 and takes over as soon as nobody leads:
//   the leader's lease expired (by the database's clock), or its session is
//   gone (a killed server's is, at once);
// - the leader renews its lease every lease/3. It holds itself leader only
//   until a lease less a sixth after the last renewal it sent that the
//   database accepted: by then it has stepped aside, before any standby may
//   take over. Clocks only decide how soon: every write is fenced by the
//   epoch in the database (Store::lead), so a server that lost the
//   leadership never commits, however long it was paused.
//
// A server that lost the leadership does not try to go on: its memory was
// the leader's. It starts again from nothing as a standby (restart()), on
// the same listening socket, so that clients are refused nothing meanwhile.
//
// Takeover time with the default lease of 3 s: a killed leader is replaced
// within lease/6 plus the time to rebuild from the database; a paused or cut
// off one within a lease and a sixth plus that time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "store/election.hpp"

namespace ferry::server {

class Leadership {
 public:
  using Clock = std::chrono::steady_clock;
  // Runs a function on the server's event loop.
  using Post = std::function<void(std::function<void()>)>;
  struct Events {
    std::function<void(std::uint64_t epoch)> won;  // on the loop: begin leading
    std::function<void(std::string why)> lost;     // on the loop: stop leading at once
  };

  // `name` and `url` are what the leadership row shows of this server: a
  // name for people, and the URL clients should use to reach it.
  Leadership(std::unique_ptr<store::Election> election, std::string name, std::string url,
             Post post, Events events);
  ~Leadership();  // stops the thread
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Starts the election thread.
  void start();

  // Whether this server may act as leader now, by its own clock: it won,
  // and its last renewal is recent enough. Any thread.
  bool leading() const;
  std::uint64_t epoch() const { return epoch_; }
  // The leader's URL as last seen ("" when nobody leads, or not known).
  std::string leader_url() const;

  // Stops the thread and gives up the leadership at once, if held, so that a
  // standby takes over without waiting for the lease (a clean shutdown).
  void resign();

 private:
  void run();
  void stand_by();
  bool keep_leading();  // false once the leadership is lost
  void pause(std::chrono::milliseconds duration);
  void log_problem(const std::string& problem);

  std::unique_ptr<store::Election> election_;
  std::string name_;
  std::string url_;
  Post post_;
  Events events_;
  std::chrono::milliseconds lease_;

  std::atomic<std::uint64_t> epoch_{0};     // won; 0 while standing by
  std::atomic<Clock::rep> valid_until_{0};  // leading() until then (Clock ticks)
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::string leader_url_;
  std::string last_problem_;  // logged once, until it changes
  bool stopping_ = false;
  std::thread thread_;
};

// Starts this program again as a standby, in place (the same process id),
// keeping `listening` (a socket descriptor) open for it: the new program
// serves on it at once (listening_socket() finds it). Never returns.
[[noreturn]] void restart(int listening);
// The listening socket a restart() left, if this program is one.
std::optional<int> listening_socket();

}  // namespace ferry::server
