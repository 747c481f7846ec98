#include "client/server_list.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <stdexcept>

namespace ferry::client {

std::string normalized(std::string url) {
  auto first = url.find_first_not_of(" \t");
  auto last = url.find_last_not_of(" \t");
  url = first == std::string::npos ? "" : url.substr(first, last - first + 1);
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

ServerList::ServerList(const std::string& urls) {
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = urls.find(',', start);
    std::string url = normalized(
        urls.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (url.empty())
      throw std::invalid_argument("'" + urls +
                                  "' is not a server URL or a comma-separated list of them");
    if (std::find(urls_.begin(), urls_.end(), url) == urls_.end()) urls_.push_back(url);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

void ServerList::next() { current_ = (current_ + 1) % urls_.size(); }

void ServerList::follow(const std::string& leader) {
  std::string url = normalized(leader);
  auto known = std::find(urls_.begin(), urls_.end(), url);
  if (known == urls_.end()) {
    urls_.push_back(url);
    known = urls_.end() - 1;
  }
  current_ = static_cast<std::size_t>(known - urls_.begin());
}

std::string ServerList::describe() const {
  std::string text;
  for (const std::string& url : urls_) text += (text.empty() ? "" : ", ") + url;
  return text;
}

std::optional<std::string> not_leader(int status, const std::string& body) {
  if (status != 503 || body.find("not_leader") == std::string::npos) return std::nullopt;
  boost::system::error_code bad;
  boost::json::value reply = boost::json::parse(body, bad);
  if (bad || !reply.is_object()) return std::nullopt;
  const boost::json::object& refusal = reply.as_object();
  const boost::json::value* error = refusal.if_contains("error");
  if (!error || *error != "not_leader") return std::nullopt;
  const boost::json::value* leader = refusal.if_contains("leader");
  if (leader && leader->is_string()) return std::string(leader->as_string());
  return std::string();
}

}  // namespace ferry::client
