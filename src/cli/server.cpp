// `ferry server`: the durable scheduler behind the HTTP API.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "daemon/log.hpp"
#include "run/inputs.hpp"
#include "server/http_server.hpp"

namespace ferry::cli {
namespace {

// "HOST:PORT", "[IPv6]:PORT" or ":PORT" (loopback) of `flag`: sets `host`
// (unless empty) and `port`.
void parse_listen(const std::string& flag, const std::string& text, std::string& host,
                  unsigned short& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    throw run::UsageError(flag + " takes HOST:PORT, e.g. 127.0.0.1:7077");
  std::string name = text.substr(0, colon), digits = text.substr(colon + 1);
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  if (!name.empty()) host = name;
  char* end = nullptr;
  long number = std::strtol(digits.c_str(), &end, 10);
  if (digits.empty() || *end != '\0' || number < 0 || number > 65535)
    throw run::UsageError(flag + ": '" + digits + "' is not a port number (0 to 65535)");
  port = static_cast<unsigned short>(number);
}

// "90", "90s", "30m", "12h", "7d": a duration of whole seconds or more.
std::chrono::milliseconds parse_duration(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  double number = std::strtod(text.c_str(), &end);
  std::string unit = end ? end : "";
  double seconds = unit == "" || unit == "s" ? number
                   : unit == "m"             ? number * 60
                   : unit == "h"             ? number * 3600
                   : unit == "d"             ? number * 86400
                                             : -1;
  if (text.empty() || end == text.c_str() || !std::isfinite(seconds) || seconds < 0 ||
      seconds > 100.0 * 365 * 86400)
    throw run::UsageError(flag + ": '" + text +
                          "' is not a duration (seconds, or a number with s, m, h or d)");
  return std::chrono::milliseconds(std::llround(seconds * 1000));
}

}  // namespace

// The token from --token, --token-file or FERRY_TOKEN, in that order.
// A file's token is its first line without the spaces, tabs and CR around
// it (as editors and `echo` leave them); a token is printable ASCII.
std::string resolve_token(const std::string& token, const std::string& token_file) {
  if (!token.empty()) return token;
  if (!token_file.empty()) {
    std::ifstream file(token_file);
    std::string line;
    if (!file || !std::getline(file, line))
      throw run::UsageError("--token-file: cannot read '" + token_file + "'");
    auto first = line.find_first_not_of(" \t\r");
    line = first == std::string::npos
               ? ""
               : line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    if (line.empty())
      throw run::UsageError("--token-file: '" + token_file + "' holds no token on its first line");
    if (!std::all_of(line.begin(), line.end(), [](char c) { return c > ' ' && c < 127; }))
      throw run::UsageError("--token-file: the token in '" + token_file +
                            "' may hold only printable ASCII without spaces");
    struct stat status {};
    if (::stat(token_file.c_str(), &status) == 0 && (status.st_mode & S_IROTH))
      std::cerr << "ferry: warning: every user of this machine can read the token file '"
                << token_file << "' (chmod 600 it)\n";
    return line;
  }
  const char* from_environment = std::getenv("FERRY_TOKEN");
  return from_environment ? from_environment : "";
}

void add_log_format_option(CLI::App& command, std::string& format) {
  command
      .add_option("--log-format", format,
                  "How events are logged on stderr: text (one line each) or json (one object "
                  "per line, for log shippers) [default: text]")
      ->check(CLI::IsMember({"text", "json"}))
      ->envname("FERRY_LOG_FORMAT");
}

Subcommand add_server(CLI::App& app) {
  struct Flags {
    std::string listen = "127.0.0.1:7077";
    std::string metrics_listen;
    std::string token, token_file;
    double lease_timeout = 30;
    double idle_timeout = 60;
    std::string keep_finished = "7d";
    double header_timeout = 10;
    std::string log_format = "text";
    double leader_lease = 3;
    server::ServerConfig config;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command =
      app.add_subcommand("server", "Run the durable job server (HTTP API, SQLite or PostgreSQL)");
  command->add_option("--listen", flags->listen,
                      "HOST:PORT to listen on [default: 127.0.0.1:7077]");
  command->add_option("--db", flags->config.db,
                      "SQLite database file, or postgresql://USER@HOST/DB: a database several "
                      "servers share, one leading [default: ./ferry.db]");
  command->add_option("--advertise", flags->config.advertise,
                      "With PostgreSQL: the URL clients and workers use to reach this server, "
                      "which standbys name to them [default: http://HOST:PORT it listens on]");
  command->add_option("--name", flags->config.name,
                      "With PostgreSQL: this server's name in the leadership [default: HOST-PID]");
  command
      ->add_option("--leader-lease", flags->leader_lease,
                   "With PostgreSQL: seconds a leader that stops renewing stays leader; a "
                   "standby takes over after it (or at once when the leader's process died) "
                   "[default: 3]")
      ->check(CLI::Range(0.3, 3600.0));
  command->add_option("--token", flags->token,
                      "Secret clients and workers must send (or FERRY_TOKEN)");
  command->add_option("--token-file", flags->token_file,
                      "Read the token from the first line of FILE");
  command->add_option("--address-file", flags->config.address_file,
                      "Write the URL it listens on to FILE (useful with port 0)");
  auto* cert = command->add_option("--tls-cert", flags->config.tls_cert,
                                   "Serve HTTPS with this PEM certificate (chain)");
  auto* key =
      command->add_option("--tls-key", flags->config.tls_key, "The PEM private key of --tls-cert");
  cert->needs(key)->check(CLI::ExistingFile);
  key->needs(cert)->check(CLI::ExistingFile);
  command
      ->add_option("--lease-timeout", flags->lease_timeout,
                   "Seconds a worker may stay silent before its jobs run elsewhere [default: 30]")
      ->check(CLI::Range(1.0, 86400.0));
  command
      ->add_option("--max-connections", flags->config.max_connections,
                   "Connections served at once; more get 503 [default: 4096]")
      ->check(CLI::Range(8, 1'000'000));
  command
      ->add_option("--idle-timeout", flags->idle_timeout,
                   "Seconds a kept-alive connection may wait for its next request [default: 60]")
      ->check(CLI::Range(0.1, 86400.0));
  command
      ->add_option("--header-timeout", flags->header_timeout,
                   "Seconds a request's headers may take to arrive [default: 10]")
      ->check(CLI::Range(0.1, 3600.0));
  command->add_option("--metrics-listen", flags->metrics_listen,
                      "Also serve GET /metrics (Prometheus) on HOST:PORT, without the token "
                      "(on the main port it needs the token)");
  command->add_option("--keep-finished", flags->keep_finished,
                      "How long ended jobs are kept, with their attempts and output: 0 keeps "
                      "them for ever; a number of seconds, or 90s, 30m, 12h, 7d [default: 7d]");
  add_log_format_option(*command, flags->log_format);
  return {
      command, [flags](const std::vector<std::string>&) {
        daemon::set_log_format(*daemon::parse_log_format(flags->log_format));
        server::ServerConfig& config = flags->config;
        std::chrono::milliseconds keep = parse_duration("--keep-finished", flags->keep_finished);
        config.service.keep_finished = keep.count() == 0 ? std::nullopt : std::optional(keep);
        config.idle_timeout = std::chrono::milliseconds(std::llround(flags->idle_timeout * 1000));
        config.header_timeout =
            std::chrono::milliseconds(std::llround(flags->header_timeout * 1000));
        parse_listen("--listen", flags->listen, config.host, config.port);
        if (!flags->metrics_listen.empty()) {
          unsigned short port = 0;
          parse_listen("--metrics-listen", flags->metrics_listen, config.metrics_host, port);
          config.metrics_port = port;
        }
        config.token = resolve_token(flags->token, flags->token_file);
        config.service.lease_duration =
            std::chrono::milliseconds(static_cast<long long>(flags->lease_timeout * 1000));
        config.leader_lease = std::chrono::milliseconds(std::llround(flags->leader_lease * 1000));
        try {
          server::serve(config);
        } catch (const std::runtime_error& problem) {
          // A log shipper reads why the server did not start as it reads the rest.
          if (flags->log_format == "json") {
            daemon::log("server", problem.what(), daemon::Level::error);
            return 2;
          }
          throw run::UsageError(problem.what());
        }
        return 0;
      }};
}

}  // namespace ferry::cli
