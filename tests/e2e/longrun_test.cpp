// A server that runs for months: ended jobs leave memory and, after their
// retention, the database; submits with keys make each job once; backups
// are consistent while jobs run.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <ferry/client.hpp>
#include <ferry/worker.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

long rss_kb(pid_t pid) {
  std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("VmRSS:");
  return at == std::string::npos ? -1 : std::atol(status.c_str() + at + 6);
}

json::object stats_of(const Server& server) {
  return json::parse(server.request("GET", "/v1/stats").body).as_object();
}

// A ferry::Worker serving `noop` on its own thread for the test's length.
class NoopWorker {
 public:
  explicit NoopWorker(const Server& server)
      : worker_(server.url(), "sekrit", {.threads = 2, .id = "noop"}) {
    worker_.add("noop", [](const json::value& args) { return args; });
    thread_ = std::thread([this] { worker_.run(false); });
  }
  ~NoopWorker() {
    worker_.stop();
    thread_.join();
  }

 private:
  ferry::Worker worker_;
  std::thread thread_;
};

// Runs `count` no-op calls, 5,000 at a time: the work in flight stays the
// same however many run.
void run_calls(const Server& server, int count) {
  ferry::Client client(server.url(), "sekrit");
  for (int done = 0; done < count; done += 5000) {
    std::vector<json::value> args(static_cast<std::size_t>(std::min(5000, count - done)), 1);
    std::vector<std::uint64_t> ids = client.call_many("noop", args);
    std::size_t succeeded = 0;
    client.wait_all(
        ids, [&](const ferry::JobResult& result) { succeeded += result.succeeded(); }, 300s);
    ASSERT_EQ(succeeded, ids.size());
  }
}

TEST(LongRun, EndedJobsLeaveTheServersMemory) {
  if (under_address_sanitizer()) GTEST_SKIP() << "RSS under AddressSanitizer is its shadow memory";
  TempDir dir;
  Server server(dir);
  NoopWorker worker(server);
  run_calls(server, 20'000);  // warmed up: buffers, queues, the store's caches
  long before = rss_kb(server.pid());
  run_calls(server, 100'000);
  long after = rss_kb(server.pid());
  json::object stats = stats_of(server);
  EXPECT_EQ(stats.at("jobs_in_memory").as_int64(), 0);
  EXPECT_EQ(stats.at("jobs").at("succeeded").as_int64(), 120'000);
  // Held in memory, 100,000 ended jobs took some 70 MB; read from the store, none.
  EXPECT_LT(after - before, 15'000) << before << " kB before, " << after << " kB after";
}

TEST(LongRun, AnEndedJobIsReadFromTheStoreEverywhere) {
  TempDir dir;
  auto server = std::make_unique<Server>(dir);
  Strings connect = {"--server", server->url(), "--token", "sekrit"};
  auto ferry = [&](Strings args) {
    args.insert(args.begin() + 1, connect.begin(), connect.end());
    return run_ferry(args, dir);
  };
  ASSERT_EQ(ferry({"map", "--shell", "echo out {}; exit {}", ":::", "0", "3"}).out, "1\n2\n");
  {
    WorkerProcess worker(dir, *server, "w1", 2);
    ASSERT_EQ(ferry({"wait", "1", "2"}).exit_code, 1);
  }
  for (int restart = 0; restart < 2; ++restart) {
    EXPECT_EQ(stats_of(*server).at("jobs_in_memory").as_int64(), 0);
    EXPECT_EQ(ferry({"logs", "1"}).out, "out 0\n");
    auto status = ferry({"status", "2", "--json"});
    EXPECT_NE(status.out.find(R"("exit_code":3)"), std::string::npos) << status.out;
    auto waited = ferry({"wait", "1", "2", "--json"});
    EXPECT_EQ(waited.exit_code, 1);
    EXPECT_NE(waited.out.find(R"("stdout":"out 3\n")"), std::string::npos) << waited.out;
    auto listed = ferry({"status", "--state", "failed"});
    EXPECT_NE(listed.out.find("2 "), std::string::npos) << listed.out;
    auto queues = ferry({"queues", "--json"});
    EXPECT_NE(queues.out.find(R"("succeeded":1)"), std::string::npos) << queues.out;
    // Retried, an ended job comes back into memory and runs again.
    if (restart == 0) {
      std::string port = server->port();
      server->stop(SIGKILL);
      server = std::make_unique<Server>(dir, "sekrit", Strings{}, "127.0.0.1:" + port);
    }
  }
  ASSERT_EQ(ferry({"retry", "2"}).exit_code, 0);
  WorkerProcess worker(dir, *server, "w2", 1);
  auto again = ferry({"wait", "2", "--json"});
  EXPECT_NE(again.out.find(R"("attempts":2)"), std::string::npos) << again.out;
}

TEST(LongRun, RetentionRemovesEndedJobsAndTheDatabaseStopsGrowing) {
  TempDir dir;
  Server server(dir, "sekrit", {"--keep-finished", "1s"});
  NoopWorker worker(server);
  ferry::Client client(server.url(), "sekrit");
  // One job kept for an hour: its own keep beats the server's.
  std::uint64_t kept = client.call("noop", 0, {.keep = 3600});
  std::vector<std::uint64_t> sizes;
  for (int round = 0; round < 4; ++round) {
    run_calls(server, 5'000);
    ASSERT_TRUE(eventually([&] { return stats_of(server).at("total").as_int64() == 1; }, 60))
        << server.request("GET", "/v1/stats").body;
    json::object store = stats_of(server).at("store").as_object();
    EXPECT_EQ(store.at("oldest_job").to_number<std::uint64_t>(), kept);
    sizes.push_back(store.at("bytes").to_number<std::uint64_t>());
  }
  EXPECT_EQ(server.request("GET", "/v1/jobs/2").status, 404);
  EXPECT_EQ(server.request("GET", "/v1/jobs/" + std::to_string(kept)).status, 200);
  // The space of removed jobs is used again: the file holds what is kept,
  // not what ever ran.
  EXPECT_LE(sizes.back(), sizes[1] * 12 / 10) << sizes[0] << " " << sizes[1] << " " << sizes[3];
}

TEST(LongRun, ASubmitWithAKeyMakesItsJobOnce) {
  TempDir dir;
  auto server = std::make_unique<Server>(dir);
  auto ferry = [&](Strings args) {
    args.insert(args.begin() + 1, {"--server", server->url(), "--token", "sekrit"});
    return run_ferry(args, dir);
  };
  auto first = ferry({"submit", "--key", "flow-17", "--", "echo", "a"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(ferry({"submit", "--key", "flow-17", "--", "echo", "a"}).out, first.out);
  Response again =
      server->request("POST", "/v1/jobs", R"({"command":{"argv":["echo","a"]},"key":"flow-17"})");
  EXPECT_EQ(again.status, 200) << again.body;  // nothing new was made
  EXPECT_EQ(again.body, R"({"ids":[1],"existing":[1]})");
  auto mapped = ferry({"map", "--key-prefix", "batch7-", "echo", ":::", "x", "y"});
  EXPECT_EQ(mapped.out, "2\n3\n");
  EXPECT_EQ(ferry({"map", "--key-prefix", "batch7-", "echo", ":::", "x", "y", "z"}).out,
            "2\n3\n4\n");
  std::string port = server->port();
  server->stop(SIGKILL);
  server = std::make_unique<Server>(dir, "sekrit", Strings{}, "127.0.0.1:" + port);
  EXPECT_EQ(ferry({"submit", "--key", "flow-17", "--", "echo", "a"}).out, first.out);
  EXPECT_EQ(stats_of(*server).at("total").as_int64(), 4);
}

// A proxy that loses the answer to the first submit it forwards: the
// server made the job, the client never heard.
TEST(LongRun, AClientSendsAKeyedSubmitAgainAndNothingIsMadeTwice) {
  TempDir dir;
  Server server(dir);
  exec::Command proxy = exec::shell_command(
      "exec python3 -c '\n"
      "import http.server, urllib.request, os, sys\n"
      "target = sys.argv[1]\n"
      "lost = []\n"
      "class Proxy(http.server.BaseHTTPRequestHandler):\n"
      "    protocol_version = \"HTTP/1.1\"\n"
      "    def handle_one(self, method):\n"
      "        body = self.rfile.read(int(self.headers.get(\"Content-Length\", 0)))\n"
      "        request = urllib.request.Request(target + self.path, data=body or None,\n"
      "            method=method, headers={k: v for k, v in self.headers.items()\n"
      "                                    if k.lower() in (\"authorization\", "
      "\"content-type\")})\n"
      "        try:\n"
      "            answer = urllib.request.urlopen(request)\n"
      "            status, data = answer.status, answer.read()\n"
      "        except urllib.error.HTTPError as refusal:\n"
      "            status, data = refusal.code, refusal.read()\n"
      "        if method == \"POST\" and self.path == \"/v1/jobs\" and not lost:\n"
      "            lost.append(1)\n"
      "            self.close_connection = True\n"
      "            return\n"
      "        self.send_response(status)\n"
      "        self.send_header(\"Content-Length\", str(len(data)))\n"
      "        self.end_headers()\n"
      "        self.wfile.write(data)\n"
      "    def do_POST(self): self.handle_one(\"POST\")\n"
      "    def do_GET(self): self.handle_one(\"GET\")\n"
      "    def log_message(self, *args): pass\n"
      "server = http.server.ThreadingHTTPServer((\"127.0.0.1\", 0), Proxy)\n"
      "open(\"port.tmp\", \"w\").write(str(server.server_port))\n"
      "os.rename(\"port.tmp\", \"port\")\n"
      "server.serve_forever()' " +
      server.url());
  proxy.cwd = dir.path().string();
  exec::ProcessSet processes;
  processes.start(proxy);
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(dir / "port"); }));
  ferry::Client client("http://127.0.0.1:" + read_file(dir / "port"), "sekrit");
  std::uint64_t id = client.call("noop", 7, {.key = "exactly-once"});
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(stats_of(server).at("total").as_int64(), 1);  // made once, answered twice
  // Without a key there is no safe second try: the loss is the caller's to see.
  EXPECT_EQ(client.call("noop", 8), 2u);
}

TEST(LongRun, ABackupTakenUnderLoadHasEveryAcknowledgedJob) {
  TempDir dir;
  Server server(dir);
  std::mutex mutex;
  std::set<std::uint64_t> acknowledged;
  std::atomic<bool> submitting{true};
  std::thread submitter([&] {
    ferry::Client client(server.url(), "sekrit");
    std::vector<json::value> args(200, 1);
    for (int batch = 0; submitting && batch < 2000; ++batch) {
      auto ids = client.call_many("nobody-serves-it", args);
      std::lock_guard lock(mutex);
      acknowledged.insert(ids.begin(), ids.end());
    }
  });
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return acknowledged.size() >= 5000;
  }));
  std::set<std::uint64_t> before_backup;
  {
    std::lock_guard lock(mutex);
    before_backup = acknowledged;
  }
  auto backup =
      run_ferry({"backup", "--server", server.url(), "--token", "sekrit", dir / "copy.db"}, dir);
  submitting = false;
  submitter.join();
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_NE(backup.out.find("checked"), std::string::npos) << backup.out;
  auto refused =
      run_ferry({"backup", "--server", server.url(), "--token", "sekrit", dir / "copy.db"}, dir);
  EXPECT_EQ(refused.exit_code, 2);  // never overwrites

  TempDir restored_dir;
  std::filesystem::copy_file(dir / "copy.db", restored_dir / "ferry.db");
  Server restored(restored_dir);
  std::vector<std::uint64_t> wanted(before_backup.begin(), before_backup.end());
  std::string ids;  // as ranges: "1-200,401-600"
  for (std::size_t i = 0; i < wanted.size();) {
    std::size_t end = i + 1;
    while (end < wanted.size() && wanted[end] == wanted[end - 1] + 1) ++end;
    ids += (ids.empty() ? "" : ",") + std::to_string(wanted[i]) + "-" +
           std::to_string(wanted[end - 1]);
    i = end;
  }
  // The event stream checks each named job exists (404 for the first missing).
  Response present = restored.request("GET", "/v1/events?ids=" + ids, {}, {}, 1);
  EXPECT_EQ(present.status, 200) << present.body.substr(0, 200);
  EXPECT_GE(stats_of(restored).at("total").to_number<std::size_t>(), wanted.size());
}

}  // namespace
}  // namespace ferry::e2e
