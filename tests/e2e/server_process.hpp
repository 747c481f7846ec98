// Test helpers: a real `ferry server` process on an ephemeral loopback
// port, and requests to it through curl.
#pragma once

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "ferry_process.hpp"

namespace ferry::e2e {

struct Response {
  int status = 0;
  std::string body;
};

// A server process over a database in `dir` (unless `extra` gives a --db),
// on an ephemeral port unless `listen` names one (to restart a server where
// its workers expect it).
class Server {
 public:
  // `shell` runs before the server in the same shell (e.g. "ulimit -n 96;");
  // `prefix` runs it (e.g. {"ip", "netns", "exec", "NAME"}).
  explicit Server(const TempDir& dir, std::string token = "sekrit",
                  std::vector<std::string> extra = {}, std::string listen = "127.0.0.1:0",
                  std::string shell = "", std::vector<std::string> prefix = {})
      : dir_(dir), token_(token) {
    std::filesystem::remove(dir / "address");
    std::vector<std::string> args = {"server", "--listen", listen, "--address-file",
                                     dir / "address"};
    if (std::find(extra.begin(), extra.end(), "--db") == extra.end())
      args.insert(args.end(), {"--db", dir / "ferry.db"});
    if (!token.empty()) args.insert(args.end(), {"--token", token});
    args.insert(args.end(), extra.begin(), extra.end());
    for (std::size_t i = 0; i + 1 < extra.size(); ++i)
      if (extra[i] == "--tls-cert") ca_file_ = extra[i + 1];  // self-signed: its own authority
    exec::Command command = ferry_command(args, dir);
    command.argv.insert(command.argv.begin(), prefix.begin(), prefix.end());
    command.argv.insert(command.argv.begin(),
                        {"/bin/sh", "-c", shell + "exec \"$0\" \"$@\" 2>> server.log"});
    id_ = processes_.start(command);
    EXPECT_TRUE(eventually([&] { return std::filesystem::exists(dir / "address"); }))
        << read_file(dir / "server.log");
    std::ifstream(dir / "address") >> url_;
  }
  ~Server() {
    if (processes_.pid(id_) > 0) stop(SIGKILL);
  }

  // Ends the server with `signal`; returns how it ended.
  exec::Result stop(int signal) {
    ::kill(processes_.pid(id_), signal);
    for (;;)
      for (auto& finished : processes_.wait(std::nullopt)) return finished.result;
  }

  // With `seconds`, the answer is read for that long (an event stream).
  Response request(const std::string& method, const std::string& path,
                   std::optional<std::string> body = std::nullopt,
                   std::optional<std::string> token = std::nullopt, int seconds = 0) const {
    exec::Command curl;
    curl.argv = {"curl", "-s", "-S", "-X", method, "-w", "\n%{http_code}", url_ + path};
    if (seconds > 0) curl.argv.insert(curl.argv.end(), {"-N", "-m", std::to_string(seconds)});
    if (!ca_file_.empty()) curl.argv.insert(curl.argv.end(), {"--cacert", ca_file_});
    std::string use = token.value_or(token_);
    if (!use.empty()) curl.argv.insert(curl.argv.end(), {"-H", "Authorization: Bearer " + use});
    if (body) {
      curl.argv.insert(curl.argv.end(),
                       {"-H", "Content-Type: application/json", "--data-binary", "@-"});
      curl.stdin_data = *body;
    }
    curl.output_limit = 64 << 20;
    exec::ProcessSet set;
    set.start(curl);
    for (;;)
      for (auto& finished : set.wait(std::nullopt)) {
        std::string& out = finished.result.out;
        auto newline = out.rfind('\n');
        if (newline == std::string::npos) return {0, out + finished.result.err};
        return {std::atoi(out.c_str() + newline + 1), out.substr(0, newline)};
      }
  }

  const std::string& url() const { return url_; }
  std::string port() const { return url_.substr(url_.rfind(':') + 1); }
  pid_t pid() const { return processes_.pid(id_); }

 private:
  const TempDir& dir_;
  std::string token_;
  std::string ca_file_;
  exec::ProcessSet processes_;
  exec::ProcessSet::Id id_ = 0;
  std::string url_;
};

inline std::vector<std::uint64_t> ids_in(const std::string& body) {
  std::vector<std::uint64_t> ids;
  std::smatch match;
  std::string list =
      std::regex_search(body, match, std::regex(R"("ids":\[([0-9,]*)\])")) ? match[1].str() : "";
  std::stringstream in(list);
  for (std::string id; std::getline(in, id, ',');) ids.push_back(std::stoull(id));
  return ids;
}

// The first lease token in a POST /v1/lease answer.
inline std::string token_in(const std::string& body) {
  std::smatch match;
  return std::regex_search(body, match, std::regex(R"("token":([0-9]+))")) ? match[1].str() : "";
}

inline std::string jobs_body(int count, const std::string& job) {
  std::string body = R"({"jobs":[)";
  for (int i = 0; i < count; ++i) body += (i ? "," : "") + job;
  return body + "]}";
}

using Strings = std::vector<std::string>;

// A `ferry worker` process serving `server`, its stderr in worker-ID.log.
class WorkerProcess {
 public:
  WorkerProcess(const TempDir& dir, const Server& server, const std::string& id, int slots,
                std::vector<std::string> env = {})
      : WorkerProcess(dir, server.url(), id, slots, std::move(env)) {}
  // `servers`: a URL, or a comma-separated list of them.
  WorkerProcess(const TempDir& dir, const std::string& servers, const std::string& id, int slots,
                std::vector<std::string> env = {}) {
    exec::Command command = ferry_command({"worker", "--server", servers, "--token", "sekrit",
                                           "--slots", std::to_string(slots), "--id", id},
                                          dir);
    command.env = std::move(env);
    command.timeout = {};  // it runs as long as the test needs it
    command.argv.insert(command.argv.begin(),
                        {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>> worker-" + id + ".log"});
    id_ = processes_.start(command);
  }
  ~WorkerProcess() {
    if (processes_.pid(id_) > 0) stop(SIGKILL);
  }
  exec::Result stop(int signal) {
    ::kill(processes_.pid(id_), signal);
    for (;;)
      for (auto& finished : processes_.wait(std::nullopt)) return finished.result;
  }

 private:
  exec::ProcessSet processes_;
  exec::ProcessSet::Id id_ = 0;
};

inline int count_of(const Server& server, const std::string& state) {
  std::string stats = server.request("GET", "/v1/stats").body;
  auto at = stats.find("\"" + state + "\":");
  return at == std::string::npos ? -1 : std::atoi(stats.c_str() + at + state.size() + 3);
}

}  // namespace ferry::e2e
