#include "throwaway_postgres.hpp"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace ferry::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The newest PostgreSQL of Debian's layout, /usr/lib/postgresql/VERSION/bin.
std::optional<fs::path> binaries() {
  std::optional<fs::path> best;
  int best_version = 0;
  std::error_code missing;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", missing)) {
    int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && fs::exists(entry.path() / "bin" / "postgres") &&
        fs::exists(entry.path() / "bin" / "initdb")) {
      best = entry.path() / "bin";
      best_version = version;
    }
  }
  return best;
}

// Who runs the server: this user, or `nobody` when this is root.
struct Runner {
  uid_t uid = ::getuid();
  gid_t gid = ::getgid();
};
Runner runner() {
  Runner who;
  if (::geteuid() != 0) return who;
  if (const passwd* nobody = ::getpwnam("nobody")) {
    who.uid = nobody->pw_uid;
    who.gid = nobody->pw_gid;
  }
  return who;
}

// Runs argv as the runner; stdout and stderr to `log`. Returns the pid;
// with `wait`, waits and returns the exit status instead.
int spawn(const std::vector<std::string>& argv, const std::string& log, bool wait) {
  Runner who = runner();
  // Everything the child needs is made before fork(): in a threaded parent
  // the child may only make system calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> environment = {"LC_ALL=C"};
  for (char** variable = environ; *variable; ++variable)
    if (std::string_view(*variable).rfind("LC_ALL=", 0) != 0) environment.emplace_back(*variable);
  std::vector<char*> envp;
  for (std::string& variable : environment) envp.push_back(variable.data());
  envp.push_back(nullptr);
  pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(who.gid) != 0 || ::setuid(who.uid) != 0))
      ::_exit(126);
    // After the change of user, which clears it: the server dies with the test.
    ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  if (!wait) return child;
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void give_to_runner(const fs::path& path) {
  Runner who = runner();
  if (::geteuid() == 0) [[maybe_unused]]
    int ignored = ::chown(path.c_str(), who.uid, who.gid);
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A cluster made by initdb, kept as a template for every later server of
// this user and this PostgreSQL: made in a directory of its own, then
// renamed into place, so that tests starting at once never see half of one.
fs::path cluster_template(const fs::path& bin) {
  fs::path path = fs::temp_directory_path() /
                  ("ferry-test-postgres-" + bin.parent_path().filename().string() + "-" +
                   std::to_string(runner().uid) + "-" + std::to_string(::getuid()));
  if (fs::exists(path / "data" / "PG_VERSION")) return path;
  std::string pattern = (fs::temp_directory_path() / "ferry-test-initdb-XXXXXX").string();
  fs::path making = ::mkdtemp(pattern.data());
  give_to_runner(making);
  ::chmod(making.c_str(), 0755);
  int status = spawn({(bin / "initdb").string(), "-D", (making / "data").string(), "-U", "ferry",
                      "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                     (making / "initdb.log").string(), true);
  if (status != 0) {
    std::string log = read_all(making / "initdb.log");
    fs::remove_all(making);
    throw std::runtime_error("initdb failed: " + log);
  }
  std::error_code taken;
  fs::rename(making, path, taken);
  if (taken) fs::remove_all(making);  // another test made it first
  return path;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), size);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

std::optional<std::string> ThrowawayPostgres::unavailable() {
  if (!binaries())
    return "PostgreSQL is not installed (/usr/lib/postgresql/*/bin): scripts/setup.sh installs it";
  return std::nullopt;
}

ThrowawayPostgres::ThrowawayPostgres(Options options) {
  if (auto why = unavailable()) throw std::runtime_error(*why);
  std::string pattern = (fs::temp_directory_path() / "ferry-postgres-XXXXXX").string();
  directory_ = ::mkdtemp(pattern.data());
  try {
    start(options);
  } catch (...) {
    stop();
    throw;
  }
}

ThrowawayPostgres::~ThrowawayPostgres() { stop(); }

void ThrowawayPostgres::start(const Options& options) {
  fs::path bin = *binaries();
  fs::path dir = directory_;
  ::chmod(dir.c_str(), 0755);
  give_to_runner(dir);
  int status =
      spawn({"/bin/cp", "-a", (cluster_template(bin) / "data").string(), (dir / "data").string()},
            (dir / "copy.log").string(), true);
  if (status != 0)
    throw std::runtime_error("cannot copy the cluster: " + read_all(dir / "copy.log"));
  // initdb trusts loopback only; a test may connect from a namespace of its own.
  std::ofstream(dir / "data" / "pg_hba.conf", std::ios::app) << "host all all all trust\n";
  std::string listen;
  for (const std::string& address : options.listen) listen += (listen.empty() ? "" : ",") + address;
  // A port found free may be taken before the server binds it: a few tries.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_port();
    pid_ = spawn({(bin / "postgres").string(),
                  "-D",
                  (dir / "data").string(),
                  "-p",
                  std::to_string(port_),
                  "-k",
                  dir.string(),
                  "-c",
                  "listen_addresses=" + listen,
                  "-c",
                  std::string("fsync=") + (options.fsync ? "on" : "off"),
                  "-c",
                  "full_page_writes=" + std::string(options.fsync ? "on" : "off"),
                  "-c",
                  "max_connections=60",
                  "-c",
                  "shared_buffers=64MB",
                  "-c",
                  "max_wal_size=1GB",
                  "-c",
                  "unix_socket_permissions=0777"},
                 (dir / "postgres.log").string(), false);
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      int exited = 0;
      if (::waitpid(pid_, &exited, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      if (PQping(url("postgres").c_str()) == PQPING_OK) return;
      std::this_thread::sleep_for(20ms);
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGQUIT);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  throw std::runtime_error("PostgreSQL did not start: " + log());
}

void ThrowawayPostgres::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGINT);  // fast shutdown: clients are cut off, nothing waits
    auto deadline = std::chrono::steady_clock::now() + 20s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
  }
  if (!directory_.empty()) {
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }
}

std::string ThrowawayPostgres::url(const std::string& name, const std::string& host) const {
  return "postgresql://ferry@" + host + ":" + std::to_string(port_) + "/" + name;
}

std::string ThrowawayPostgres::create_database(const std::string& name) {
  query(url("postgres"), "CREATE DATABASE " + name);
  return url(name);
}

std::string ThrowawayPostgres::log() const {
  return read_all(fs::path(directory_) / "postgres.log");
}

ThrowawayPostgres& shared_postgres() {
  static ThrowawayPostgres server;
  return server;
}

std::vector<std::string> query(const std::string& url, const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> connection(PQconnectdb(url.c_str()), PQfinish);
  if (PQstatus(connection.get()) != CONNECTION_OK)
    throw std::runtime_error(PQerrorMessage(connection.get()));
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(connection.get(), sql.c_str()),
                                                        PQclear);
  ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw std::runtime_error(PQresultErrorMessage(result.get()));
  std::vector<std::string> rows;
  for (int row = 0; row < PQntuples(result.get()); ++row)
    rows.push_back(PQgetisnull(result.get(), row, 0) ? "" : PQgetvalue(result.get(), row, 0));
  return rows;
}

}  // namespace ferry::testing
