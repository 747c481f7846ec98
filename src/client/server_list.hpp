// ServerList — the servers a client may talk to, and which one to try now.
//
// `--server` and FERRY_SERVER take one URL or several separated by commas
// (`http://a:7077,http://b:7077`): the servers sharing one database, one of
// them leading, the others standing by. A client sends to the server it
// last found leading. A standby refuses with `503 not_leader` before reading
// the request, naming the leader when it knows it: the client goes there
// (learning its URL if it was not in the list). A server that cannot be
// reached, or a standby that knows no leader, sends the client to the next
// server of the list. No request is lost this way: a refused or unreachable
// server took nothing.
//
// Plain data: HttpClient does the sending (and waits between rounds).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ferry::client {

class ServerList {
 public:
  // Throws std::invalid_argument for an empty list or an empty entry.
  explicit ServerList(const std::string& urls);

  const std::string& current() const { return urls_[current_]; }
  std::size_t size() const { return urls_.size(); }
  const std::vector<std::string>& urls() const { return urls_; }

  // The current server could not be reached, or knows no leader.
  void next();
  // A standby named `leader`: it becomes the current one, added if new.
  void follow(const std::string& leader);

  // "http://a:7077" or "http://a:7077, http://b:7077", for messages.
  std::string describe() const;

 private:
  std::vector<std::string> urls_;
  std::size_t current_ = 0;
};

// The leader named by a standby's refusal: nothing when `status` and `body`
// are not one (503 {"error": "not_leader", ...}), "" when it names none.
std::optional<std::string> not_leader(int status, const std::string& body);

// A URL without its trailing slashes, so that equal servers compare equal.
std::string normalized(std::string url);

}  // namespace ferry::client
