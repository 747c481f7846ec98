// One bad job, request or client never harms the others: poison jobs on
// real workers, reports the server cannot accept, hostile requests.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <ferry/client.hpp>
#include <ferry/worker.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;

// A plain TCP connection to a server, for what curl will not send.
class RawConnection {
 public:
  explicit RawConnection(const Server& server) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(server.port())));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  // Sends what it can; false once the server no longer takes any.
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
  }
  // What arrives until the server closes the connection; nullopt if it has
  // not closed it within `seconds` (a guard against a hang, not a measure).
  std::optional<std::string> read_until_closed(double seconds = 30) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd ready{fd_, POLLIN, 0};
      if (::poll(&ready, 1, 100) <= 0) continue;
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return got;
      got.append(buffer, static_cast<std::size_t>(n));
    }
    return std::nullopt;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

long rss_kb(pid_t pid) {
  std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("VmRSS:");
  return at == std::string::npos ? -1 : std::atol(status.c_str() + at + 6);
}

json::object job_of(const Server& server, std::uint64_t id) {
  Response got = server.request("GET", "/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(got.status, 200) << got.body;
  return json::parse(got.body).as_object();
}

const json::object& last_attempt(const json::object& job) {
  return job.at("attempts").as_array().back().as_object();
}

// Jobs that cannot start, or print what JSON text cannot hold, end with a
// clear record; the workers go on serving and still stop on SIGTERM.
TEST(Robustness, PoisonJobsNeverJamTheWorkers) {
  TempDir dir;
  Server server(dir);
  WorkerProcess first(dir, server, "w1", 2);
  WorkerProcess second(dir, server, "w2", 2);
  std::string huge_argument(60'000, 'a');
  std::string too_large_for_exec = R"({"command":{"argv":["true")";
  for (int i = 0; i < 40; ++i) too_large_for_exec += ",\"" + huge_argument + "\"";
  too_large_for_exec += "]}}";
  std::vector<std::string> poison = {
      R"({"command":{"argv":["/nonexistent/program"]}})",
      R"({"command":{"argv":["true"],"cwd":"/nonexistent/directory"}})",
      R"({"command":{"shell":"printf 'x\\000y'"}})",
      R"({"command":{"shell":"printf 'a\\377b\\300'; printf 'e\\000' >&2"}})",
      too_large_for_exec,
  };
  std::vector<std::uint64_t> poisoned;
  for (const std::string& job : poison) {
    Response submitted = server.request("POST", "/v1/jobs", job);
    ASSERT_EQ(submitted.status, 201) << submitted.body.substr(0, 200);
    poisoned.push_back(ids_in(submitted.body).at(0));
  }
  ASSERT_EQ(
      server.request("POST", "/v1/jobs", jobs_body(20, R"({"command":{"argv":["echo","ok"]}})"))
          .status,
      201);
  ASSERT_TRUE(eventually(
      [&] { return count_of(server, "succeeded") + count_of(server, "failed") == 25; }, 60))
      << server.request("GET", "/v1/stats").body << read_file(dir / "worker-w1.log");
  EXPECT_EQ(count_of(server, "succeeded"), 22);

  json::object missing = job_of(server, poisoned[0]);
  EXPECT_EQ(missing.at("state").as_string(), "failed");
  EXPECT_EQ(last_attempt(missing).at("exit_code").as_int64(), 127);
  EXPECT_NE(std::string(last_attempt(missing).at("reason").as_string())
                .find("cannot run '/nonexistent/program': No such file or directory"),
            std::string::npos)
      << missing;
  json::object no_directory = job_of(server, poisoned[1]);
  EXPECT_EQ(no_directory.at("state").as_string(), "failed");
  EXPECT_NE(std::string(last_attempt(no_directory).at("reason").as_string())
                .find("/nonexistent/directory"),
            std::string::npos)
      << no_directory;
  // Output is UTF-8 text: NUL and bytes that are not UTF-8 become U+FFFD.
  json::object nul = job_of(server, poisoned[2]);
  EXPECT_EQ(nul.at("state").as_string(), "succeeded");
  EXPECT_EQ(last_attempt(nul).at("stdout").as_string(), "x\xEF\xBF\xBDy");
  json::object binary = job_of(server, poisoned[3]);
  EXPECT_EQ(last_attempt(binary).at("stdout").as_string(),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(last_attempt(binary).at("stderr").as_string(), "e\xEF\xBF\xBD");
  json::object too_large = job_of(server, poisoned[4]);
  EXPECT_EQ(too_large.at("state").as_string(), "failed");
  EXPECT_NE(std::string(last_attempt(too_large).at("reason").as_string()).find("too long"),
            std::string::npos)
      << last_attempt(too_large).at("reason");

  EXPECT_EQ(count_of(server, "stale_completions"), 0);
  for (WorkerProcess* worker : {&first, &second}) {
    exec::Result stopped = worker->stop(SIGTERM);
    EXPECT_EQ(stopped.end, exec::End::exited);
    EXPECT_EQ(stopped.exit_code, 0);
  }
}

// A report the server cannot accept is refused alone: the request's other
// reports are recorded, and the refused attempt ends as failed, saying why.
TEST(Robustness, AReportTheServerCannotAcceptIsRefusedAlone) {
  TempDir dir;
  Server server(dir);
  auto ids = ids_in(
      server.request("POST", "/v1/jobs", jobs_body(2, R"({"command":{"argv":["true"]}})")).body);
  ASSERT_EQ(ids.size(), 2u);
  Response leased = server.request("POST", "/v1/lease", R"({"worker":"hand","free_slots":2})");
  ASSERT_EQ(leased.status, 200) << leased.body;
  json::array jobs = json::parse(leased.body).at("jobs").as_array();
  ASSERT_EQ(jobs.size(), 2u);
  auto token = [&](int i) { return json::serialize(jobs[i].at("token")); };
  auto job = [&](int i) { return json::serialize(jobs[i].at("id")); };
  std::string report = R"({"worker":"hand","completions":[)"
                       R"({"job":)" +
                       job(0) + R"(,"token":)" + token(0) +
                       R"(,"succeeded":true,"cpu_us":-1},)"
                       R"("not a report",)"
                       R"({"job":)" +
                       job(1) + R"(,"token":)" + token(1) +
                       R"(,"succeeded":true,"cpu_us":0,"max_rss_kb":0,"stdout":"a\u0000b"}]})";
  Response answered = server.request("POST", "/v1/lease", report);
  ASSERT_EQ(answered.status, 200) << answered.body;
  json::object reply = json::parse(answered.body).as_object();
  json::array rejected = reply.at("rejected").as_array();
  ASSERT_EQ(rejected.size(), 2u) << answered.body;
  EXPECT_EQ(rejected[0].at("index").as_int64(), 0);
  EXPECT_EQ(json::serialize(rejected[0].at("token")), token(0));
  EXPECT_EQ(rejected[0].at("error").as_string(),
            "completions[0].cpu_us: must be a whole number from 0 up");
  EXPECT_EQ(rejected[1].at("index").as_int64(), 1);
  EXPECT_EQ(reply.at("acknowledged").as_array().size(), 2u) << answered.body;

  json::object refused = job_of(server, jobs[0].at("id").to_number<std::uint64_t>());
  EXPECT_EQ(refused.at("state").as_string(), "failed");
  EXPECT_EQ(last_attempt(refused).at("reason").as_string(),
            "the worker's report was refused: completions[0].cpu_us: must be a whole number "
            "from 0 up");
  json::object recorded = job_of(server, jobs[1].at("id").to_number<std::uint64_t>());
  EXPECT_EQ(recorded.at("state").as_string(), "succeeded");
  EXPECT_EQ(last_attempt(recorded).at("stdout").as_string(),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(count_of(server, "stale_completions"), 0);
}

std::string nested(int depth) {
  return std::string(depth - 1, '[') + "1" + std::string(depth - 1, ']');
}

// One depth limit, checked at submit; whatever was accepted, every reader
// reads: the server's views, the CLI, a library worker and its result.
TEST(Robustness, DeepJsonIsRefusedAtSubmitAndWhatWasAcceptedIsReadEverywhere) {
  TempDir dir;
  Server server(dir);
  auto call = [](const std::string& args) {
    return R"({"call":{"function":"echo","args":)" + args + "}}";
  };
  Response too_deep = server.request("POST", "/v1/jobs", call(nested(33)));
  EXPECT_EQ(too_deep.status, 400) << too_deep.body;
  EXPECT_NE(too_deep.body.find("call.args: must not nest deeper than 32 levels"), std::string::npos)
      << too_deep.body;
  Response far_too_deep = server.request("POST", "/v1/jobs", call(nested(100)));
  EXPECT_EQ(far_too_deep.status, 400) << far_too_deep.body;
  EXPECT_NE(far_too_deep.body.find("nests deeper than 64 levels"), std::string::npos)
      << far_too_deep.body;
  EXPECT_EQ(server.request("GET", "/healthz").status, 200);

  Response accepted = server.request("POST", "/v1/jobs", call(nested(32)));
  ASSERT_EQ(accepted.status, 201) << accepted.body;
  std::uint64_t id = ids_in(accepted.body).at(0);
  EXPECT_EQ(server.request("GET", "/v1/jobs/" + std::to_string(id)).status, 200);
  EXPECT_EQ(server.request("GET", "/v1/jobs").status, 200);
  auto status = run_ferry(
      {"status", "--server", server.url(), "--token", "sekrit", "--json", std::to_string(id)}, dir);
  EXPECT_EQ(status.exit_code, 0) << status.err;

  ferry::Worker worker(server.url(), "sekrit", {.threads = 1, .id = "echo"});
  worker.add("echo", [](const json::value& args) { return args; });
  worker.add("deeper", [](const json::value& args) { return json::array{args}; });
  std::thread serving([&] { worker.run(false); });
  ferry::Client client(server.url(), "sekrit");
  ferry::JobResult echoed = client.wait(id, std::chrono::seconds(30));
  EXPECT_EQ(echoed.state, "succeeded") << echoed.reason;
  EXPECT_EQ(json::serialize(echoed.value), nested(32));
  // A result deeper than the limit fails its job, and only its job.
  ferry::JobResult deeper =
      client.wait(client.call("deeper", json::parse(nested(32))), std::chrono::seconds(30));
  EXPECT_EQ(deeper.state, "failed");
  EXPECT_EQ(deeper.reason, "the result nests deeper than 32 levels");
  worker.stop();
  serving.join();
}

// Event stream ids at the top of the range: a clear refusal, at once.
TEST(Robustness, EventIdsAtTheEndOfTheRangeAreRefusedAtOnce) {
  TempDir dir;
  Server server(dir);
  ASSERT_EQ(server.request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").status, 201);
  Response single = server.request("GET", "/v1/events?ids=18446744073709551615");
  EXPECT_EQ(single.status, 404) << single.body;
  EXPECT_NE(single.body.find("no job 18446744073709551615"), std::string::npos) << single.body;
  Response range =
      server.request("GET", "/v1/events?ids=18446744073709551610-18446744073709551615");
  EXPECT_EQ(range.status, 404) << range.body;
  Response overflow = server.request("GET", "/v1/events?ids=1-18446744073709551616");
  EXPECT_EQ(overflow.status, 400) << overflow.body;
  Response everything = server.request("GET", "/v1/events?ids=1-18446744073709551615");
  EXPECT_EQ(everything.status, 404) << everything.body;
  EXPECT_EQ(server.request("GET", "/healthz").status, 200);
}

// A server refuses, with one clear line, a database it cannot trust: one
// damaged, or one another server is using.
TEST(Robustness, AServerRefusesADamagedDatabaseOrOneInUse) {
  TempDir dir;
  {
    Server server(dir);
    ASSERT_EQ(server
                  .request("POST", "/v1/jobs",
                           jobs_body(5000, R"({"command":{"argv":["echo","a fairly long argument )"
                                           R"(so that the jobs table spans many pages"]}})"))
                  .status,
              201);
    exec::Command second =
        ferry_command({"server", "--listen", "127.0.0.1:0", "--db", dir / "ferry.db"}, dir);
    exec::Result refused = run_to_end(second);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_EQ(refused.err,
              "ferry: database '" + dir / "ferry.db" + "' is in use by another ferry server\n");
    server.stop(SIGTERM);
  }
  auto checked = run_ferry({"check", "--db", dir / "ferry.db"}, dir);
  EXPECT_EQ(checked.exit_code, 0) << checked.out;
  EXPECT_EQ(checked.out, dir / "ferry.db" + ": ok\n");
  {
    auto size = std::filesystem::file_size(dir / "ferry.db");
    std::fstream damage(dir / "ferry.db", std::ios::in | std::ios::out | std::ios::binary);
    damage.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    std::string garbage(4096, '\x55');
    damage.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  exec::Result refused =
      run_ferry({"server", "--listen", "127.0.0.1:0", "--db", dir / "ferry.db"}, dir);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(lines_of(refused.err).size(), 1u) << refused.err;
  EXPECT_NE(refused.err.find("is damaged"), std::string::npos) << refused.err;
  auto damaged = run_ferry({"check", "--db", dir / "ferry.db"}, dir);
  EXPECT_EQ(damaged.exit_code, 1);
  EXPECT_NE(damaged.out.find(dir / "ferry.db: "), std::string::npos) << damaged.out;
}

// The token is checked from the headers, before a byte of the body is
// read: a client without it can make the server hold nothing.
TEST(Robustness, TheTokenIsCheckedBeforeTheBodyIsRead) {
  TempDir dir;
  Server server(dir);
  std::vector<std::unique_ptr<RawConnection>> clients;
  std::string body(1 << 20, ' ');
  for (int i = 0; i < 20; ++i) {
    auto& client = clients.emplace_back(std::make_unique<RawConnection>(server));
    ASSERT_TRUE(client->connected());
    client->send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n");
    client->send(body);
  }
  for (auto& client : clients) {
    std::optional<std::string> answer = client->read_until_closed();
    ASSERT_TRUE(answer) << "the server kept waiting for the body";
    EXPECT_EQ(answer->rfind("HTTP/1.1 401", 0), 0u) << *answer;
  }
  if (!under_address_sanitizer()) {
    EXPECT_LT(rss_kb(server.pid()), 100'000);
  }
  // A body over the limit is refused from its Content-Length alone.
  RawConnection big(server);
  big.send(
      "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: bearer sekrit\r\n"
      "Content-Length: 40000000\r\n\r\n");
  std::optional<std::string> refused = big.read_until_closed();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->rfind("HTTP/1.1 413", 0), 0u) << *refused;
}

// Every phase of a request has a deadline, and connections have a cap: slow
// or silent clients cannot lock the others out.
TEST(Robustness, SlowAndSilentClientsCannotLockOthersOut) {
  TempDir dir;
  Server server(dir, "sekrit",
                {"--max-connections", "8", "--header-timeout", "0.5", "--idle-timeout", "1"});
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(std::make_unique<RawConnection>(server));
    held.back()->send("GET /v1/stats HTTP/1.1\r\nHo");  // half a header, then nothing
  }
  ASSERT_TRUE(eventually([&] {
    RawConnection extra(server);
    extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    std::optional<std::string> answer = extra.read_until_closed();
    return answer && answer->rfind("HTTP/1.1 503", 0) == 0 &&
           answer->find("too many connections") != std::string::npos;
  }));
  for (auto& connection : held) EXPECT_TRUE(connection->read_until_closed());  // timed out
  held.clear();
  // A kept-alive connection that stays silent is closed too.
  RawConnection idle(server);
  idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::optional<std::string> answered = idle.read_until_closed();
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->rfind("HTTP/1.1 200", 0), 0u);
  ASSERT_TRUE(eventually([&] { return server.request("GET", "/v1/stats").status == 200; }));
}

// The descriptor limit caps connections too: past it clients are refused,
// not left waiting while the server spins on accept.
TEST(Robustness, ConnectionsStayUnderTheDescriptorLimit) {
  TempDir dir;
  Server server(dir, "sekrit", {}, "127.0.0.1:0", "ulimit -n 160;");
  EXPECT_NE(read_file(dir / "server.log").find("at most 96 connections at once"), std::string::npos)
      << read_file(dir / "server.log");
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < 130; ++i) {
    clients.push_back(std::make_unique<RawConnection>(server));
    clients.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // not finished: held
  }
  // 96 are served (and wait for the rest of their headers); the others are
  // answered at once.
  auto answered = [&] {
    return std::count_if(clients.begin(), clients.end(), [](auto& client) {
      pollfd ready{client->fd(), POLLIN, 0};
      return ::poll(&ready, 1, 0) > 0;
    });
  };
  ASSERT_TRUE(eventually([&] { return answered() >= 34; })) << answered();
  int refused = 0;
  for (auto& client : clients) {
    pollfd ready{client->fd(), POLLIN, 0};
    if (::poll(&ready, 1, 0) <= 0) continue;
    std::optional<std::string> answer = client->read_until_closed(5);
    if (answer && answer->find("too many connections") != std::string::npos) ++refused;
  }
  EXPECT_GE(refused, 34);
  clients.clear();
  EXPECT_TRUE(eventually([&] { return server.request("GET", "/v1/stats").status == 200; }));
}

// A subscriber that never reads is dropped once it is far behind, instead
// of holding the events it does not read in the server's memory.
TEST(Robustness, AnEventStreamNobodyReadsIsDropped) {
  TempDir dir;
  Server server(dir);
  RawConnection silent(server);
  silent.send(
      "GET /v1/events?results=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n\r\n");
  ASSERT_TRUE(eventually([&] {
    return server.request("GET", "/v1/stats").body.find(R"("event_streams":1)") !=
           std::string::npos;
  }));
  ASSERT_EQ(
      server
          .request(
              "POST", "/v1/jobs",
              jobs_body(400, R"({"command":{"shell":"head -c 61440 /dev/zero | tr '\\0' x"}})"))
          .status,
      201);
  WorkerProcess worker(dir, server, "w1", 4);
  ASSERT_TRUE(eventually([&] { return count_of(server, "succeeded") == 400; }, 120));
  // 400 events with 60 KiB each are far more than a stream may hold unsent.
  EXPECT_TRUE(eventually([&] {
    return server.request("GET", "/v1/stats").body.find(R"("event_streams":0)") !=
           std::string::npos;
  }));
  if (!under_address_sanitizer()) {
    EXPECT_LT(rss_kb(server.pid()), 150'000);
  }
}

// A long poll whose worker went away gets no job: the job goes to a worker
// that is still there, at its first attempt.
TEST(Robustness, AJobNeverGoesToALongPollWhoseWorkerHasGone) {
  TempDir dir;
  Server server(dir);
  {
    RawConnection gone(server);
    std::string poll = R"({"worker":"gone","free_slots":4,"wait":30})";
    gone.send(
        "POST /v1/lease HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(poll.size()) + "\r\n\r\n" + poll);
    ASSERT_TRUE(eventually([&] {
      return server.request("GET", "/v1/workers").body.find(R"("id":"gone")") != std::string::npos;
    }));
  }  // closed while its poll waits
  WorkerProcess worker(dir, server, "here", 1);
  ASSERT_TRUE(eventually([&] {
    return server.request("GET", "/v1/workers").body.find(R"("id":"here")") != std::string::npos;
  }));
  auto ids = ids_in(server.request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").body);
  ASSERT_TRUE(eventually([&] { return count_of(server, "succeeded") == 1; }, 60));
  json::object job = job_of(server, ids.at(0));
  ASSERT_EQ(job.at("attempts").as_array().size(), 1u) << job;
  EXPECT_EQ(last_attempt(job).at("worker").as_string(), "here");
}

// What the contract leaves no room to guess: one spelling per id, no body
// where none is taken, HEAD, Allow, the Bearer scheme in any case.
TEST(Robustness, TheContractsLooseEndsAreTied) {
  TempDir dir;
  Server server(dir);
  ASSERT_EQ(server.request("POST", "/v1/jobs", R"({"command":{"argv":["sleep","30"]}})").status,
            201);
  EXPECT_EQ(server.request("GET", "/v1/jobs/01").status, 404);
  Response unknown = server.request("POST", "/v1/jobs/999999999/cancel");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_NE(unknown.body.find("no job 999999999"), std::string::npos);
  Response with_body = server.request("POST", "/v1/jobs/1/cancel", "{}");
  EXPECT_EQ(with_body.status, 400) << with_body.body;
  EXPECT_NE(with_body.body.find("takes no body"), std::string::npos) << with_body.body;
  EXPECT_EQ(server.request("GET", "/v1/jobs?before=0").status, 400);
  EXPECT_EQ(server.request("GET", "/v1/jobs?state=queued&state=failed").status, 400);
  Response duplicate = server.request(
      "POST", "/v1/jobs", R"({"command":{"argv":["true"]},"command":{"shell":"exit 7"}})");
  EXPECT_EQ(duplicate.status, 400) << duplicate.body;

  RawConnection raw(server);
  raw.send(
      "HEAD /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: bearer sekrit\r\n"
      "Connection: close\r\n\r\n");
  std::optional<std::string> head = raw.read_until_closed();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->rfind("HTTP/1.1 200", 0), 0u) << *head;
  EXPECT_NE(head->find("Content-Length: "), std::string::npos) << *head;
  EXPECT_EQ(head->substr(head->find("\r\n\r\n") + 4), "") << *head;
  RawConnection wrong(server);
  wrong.send(
      "DELETE /v1/lease HTTP/1.1\r\nHost: x\r\nAuthorization: BEARER sekrit\r\n"
      "Connection: close\r\n\r\n");
  std::optional<std::string> refused = wrong.read_until_closed();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->rfind("HTTP/1.1 405", 0), 0u) << *refused;
  EXPECT_NE(refused->find("Allow: POST\r\n"), std::string::npos) << *refused;
}

// A worker behind something that answers 200 with a page that is not the
// API's goes on trying, and still stops on SIGTERM.
TEST(Robustness, AWorkerSurvivesAnswersThatAreNotTheApis) {
  TempDir dir;
  exec::Command proxy = exec::shell_command(
      "exec python3 -c '\n"
      "import http.server\n"
      "class Page(http.server.BaseHTTPRequestHandler):\n"
      "    def do_POST(self):\n"
      "        self.rfile.read(int(self.headers[\"Content-Length\"]))\n"
      "        body = b\"<html>Welcome to the proxy</html>\"\n"
      "        self.send_response(200)\n"
      "        self.send_header(\"Content-Length\", str(len(body)))\n"
      "        self.end_headers()\n"
      "        self.wfile.write(body)\n"
      "    def log_message(self, *args): pass\n"
      "server = http.server.HTTPServer((\"127.0.0.1\", 0), Page)\n"
      "open(\"port.tmp\", \"w\").write(str(server.server_port))\n"
      "__import__(\"os\").rename(\"port.tmp\", \"port\")\n"
      "server.serve_forever()'");
  proxy.cwd = dir.path().string();
  exec::ProcessSet processes;
  processes.start(proxy);
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(dir / "port"); }));
  exec::Command worker = ferry_command(
      {"worker", "--server", "http://127.0.0.1:" + read_file(dir / "port"), "--id", "w1"}, dir);
  worker.argv.insert(worker.argv.begin(), {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>> worker.log"});
  auto id = processes.start(worker);
  ASSERT_TRUE(eventually([&] {
    return read_file(dir / "worker.log").find("is not a lease answer") != std::string::npos;
  }));
  EXPECT_GT(processes.pid(id), 0);  // still running
  ::kill(processes.pid(id), SIGTERM);
  std::optional<exec::Result> stopped;
  while (!stopped)
    for (auto& finished : processes.wait(std::nullopt))
      if (finished.id == id) stopped = finished.result;
  EXPECT_EQ(stopped->end, exec::End::exited);
  EXPECT_EQ(stopped->exit_code, 0) << read_file(dir / "worker.log");
}

// With the disk full (every write of the server refused), a report is
// answered 503 and changes nothing, not even in memory; sent again once
// the disk has room, it is recorded, and survives a restart.
TEST(Robustness, AFailedCommitChangesNothingAndTheResendSucceedsLater) {
  TempDir dir;
  auto server = std::make_unique<Server>(dir);
  ASSERT_EQ(server->request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").status, 201);
  Response leased = server->request("POST", "/v1/lease", R"({"worker":"hand","free_slots":1})");
  std::string token = token_in(leased.body);
  ASSERT_FALSE(token.empty()) << leased.body;
  auto limit_writes = [&](const std::string& size) {
    exec::Command prlimit;
    prlimit.argv = {"prlimit", "--pid", std::to_string(server->pid()), "--fsize=" + size};
    ASSERT_EQ(run_to_end(prlimit).exit_code, 0);
  };
  std::string report = R"({"worker":"hand","completions":[{"job":1,"token":)" + token +
                       R"(,"succeeded":true,"stdout":"done"}]})";

  limit_writes("0:unlimited");  // as if the disk were full
  Response full = server->request("POST", "/v1/lease", report);
  EXPECT_EQ(full.status, 503) << full.body;
  EXPECT_EQ(job_of(*server, 1).at("state").as_string(), "running");
  EXPECT_EQ(server->request("POST", "/v1/jobs", R"({"command":{"argv":["true"]}})").status, 503);
  EXPECT_EQ(server->request("GET", "/v1/jobs/2").status, 404);

  limit_writes("unlimited:unlimited");
  Response recorded;
  ASSERT_TRUE(eventually([&] {
    recorded = server->request("POST", "/v1/lease", report);
    return recorded.status == 200;
  }));
  EXPECT_NE(recorded.body.find(R"("acknowledged":[)" + token + "]"), std::string::npos)
      << recorded.body;
  EXPECT_EQ(job_of(*server, 1).at("state").as_string(), "succeeded");
  EXPECT_EQ(count_of(*server, "stale_completions"), 0);

  server->stop(SIGKILL);
  server = std::make_unique<Server>(dir);
  json::object after = job_of(*server, 1);
  EXPECT_EQ(after.at("state").as_string(), "succeeded");
  EXPECT_EQ(after.at("attempts").as_array().size(), 1u);
  EXPECT_EQ(last_attempt(after).at("stdout").as_string(), "done");
}

}  // namespace
}  // namespace ferry::e2e
