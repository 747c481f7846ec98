// What `ferry server` serves beside the API, end to end: the dashboard's
// files (open, with strict headers), the refusal of other sites' pages by a
// server without a token, and Prometheus metrics checked by promtool and
// against the jobs run.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <regex>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

// An answer with its headers (names in lower case).
struct Answer {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

// curl `url` with `arguments` (headers, a method); -i gives the head first.
Answer fetch(const std::string& url, std::vector<std::string> arguments = {}) {
  exec::Command curl;
  curl.argv = {"curl", "-s", "-S", "-i", "--max-time", "30"};
  curl.argv.insert(curl.argv.end(), arguments.begin(), arguments.end());
  curl.argv.push_back(url);
  curl.output_limit = 16 << 20;
  exec::Result result = run_to_end(curl);
  Answer answer;
  std::string& out = result.out;
  auto end = out.find("\r\n\r\n");
  std::string head = out.substr(0, end);
  answer.body = end == std::string::npos ? "" : out.substr(end + 4);
  std::smatch status;
  if (std::regex_search(head, status, std::regex(R"(^HTTP/1\.1 (\d+))")))
    answer.status = std::stoi(status[1]);
  for (const std::string& line : lines_of(head)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (!value.empty() && value.back() == '\r') value.pop_back();
    answer.headers[name] = value;
  }
  return answer;
}

TEST(FerryWeb, TheDashboardIsServedWithoutTheTokenWithStrictHeaders) {
  TempDir dir;
  Server server(dir);
  Answer page = fetch(server.url() + "/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(page.body.find(R"(<script type="module" src="/ui/app.js">)"), std::string::npos);
  EXPECT_EQ(page.body.find("<script>"), std::string::npos);  // no inline script
  std::string policy = page.headers["content-security-policy"];
  for (std::string directive : {"default-src 'none'", "script-src 'self'", "style-src 'self'",
                                "connect-src 'self'", "frame-ancestors 'none'"})
    EXPECT_NE(policy.find(directive), std::string::npos) << policy;
  EXPECT_EQ(page.headers["x-frame-options"], "DENY");
  EXPECT_EQ(page.headers["x-content-type-options"], "nosniff");
  EXPECT_EQ(page.headers["referrer-policy"], "no-referrer");
  ASSERT_FALSE(page.headers["etag"].empty());

  Answer script = fetch(server.url() + "/ui/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_EQ(script.headers["content-type"], "text/javascript; charset=utf-8");
  EXPECT_NE(script.body.find("import"), std::string::npos);
  EXPECT_EQ(fetch(server.url() + "/ui/style.css").headers["content-type"],
            "text/css; charset=utf-8");

  // The browser's copy is current: nothing is sent again.
  Answer cached = fetch(server.url() + "/", {"-H", "If-None-Match: " + page.headers["etag"]});
  EXPECT_EQ(cached.status, 304);
  EXPECT_TRUE(cached.body.empty());
  EXPECT_EQ(cached.headers["etag"], page.headers["etag"]);

  Answer head = fetch(server.url() + "/ui/app.js", {"-I"});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-length"], std::to_string(script.body.size()));
  EXPECT_TRUE(head.body.empty());

  Answer missing = fetch(server.url() + "/ui/nothing.js");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("no such path: /ui/nothing.js"), std::string::npos);
  Answer posted = fetch(server.url() + "/", {"-X", "POST", "--data", "x"});
  EXPECT_EQ(posted.status, 405);
  EXPECT_EQ(posted.headers["allow"], "GET, HEAD");
  // The files are open; the API and the metrics are not.
  EXPECT_EQ(fetch(server.url() + "/v1/stats").status, 401);
  EXPECT_EQ(fetch(server.url() + "/metrics").status, 401);
}

TEST(FerryWeb, AServerWithoutATokenAnswersOnlyItsOwnPages) {
  TempDir dir;
  Server server(dir, "");
  std::string host = "127.0.0.1:" + server.port();
  // Programs (no Origin, no Sec-Fetch-Site) are served as before.
  EXPECT_EQ(fetch(server.url() + "/v1/stats").status, 200);
  // The dashboard's own calls: same origin, a loopback host.
  EXPECT_EQ(fetch(server.url() + "/v1/stats", {"-H", "Sec-Fetch-Site: same-origin"}).status, 200);
  EXPECT_EQ(fetch(server.url() + "/v1/jobs",
                  {"-H", "Origin: http://" + host, "-H", "Content-Type: application/json", "--data",
                   R"({"command":{"argv":["true"]}})"})
                .status,
            201);
  EXPECT_EQ(fetch("http://localhost:" + server.port() + "/v1/stats",
                  {"-H", "Sec-Fetch-Site: same-origin"})
                .status,
            200);

  // A page of another site posting a job: refused, and nothing was made.
  Answer foreign = fetch(server.url() + "/v1/jobs", {"-H", "Origin: https://attacker.example", "-H",
                                                     "Sec-Fetch-Site: cross-site", "--data",
                                                     R"({"command":{"argv":["touch","pwned"]}})"});
  EXPECT_EQ(foreign.status, 403);
  EXPECT_NE(foreign.body.find(R"("error":"forbidden")"), std::string::npos) << foreign.body;
  EXPECT_NE(foreign.body.find("attacker.example"), std::string::npos) << foreign.body;
  // A name of another site that resolves here (DNS rebinding): refused too.
  Answer rebound =
      fetch(server.url() + "/v1/stats",
            {"-H", "Host: attacker.example:" + server.port(), "-H", "Sec-Fetch-Site: same-origin"});
  EXPECT_EQ(rebound.status, 403);
  EXPECT_NE(rebound.body.find("loopback"), std::string::npos) << rebound.body;
  EXPECT_EQ(
      fetch(server.url() + "/", {"-H", "Host: attacker.example", "-H", "Sec-Fetch-Site: none"})
          .status,
      403);
  EXPECT_NE(server.request("GET", "/v1/stats").body.find(R"("total":1)"), std::string::npos);
}

// The value of the sample `series` (as written, labels included), or -1.
double sample(const std::string& text, const std::string& series) {
  for (const std::string& line : lines_of(text))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

// Runs promtool's check of the text format on `text`; its output, or "" when clean.
std::string promtool_check(const TempDir& dir, const std::string& text) {
  exec::Command promtool;
  promtool.argv = {"promtool", "check", "metrics"};
  promtool.stdin_data = text;
  promtool.cwd = dir.path().string();
  exec::Result result = run_to_end(promtool);
  if (result.exit_code == 0 && result.out.empty() && result.err.empty()) return "";
  return "exit " + std::to_string(result.exit_code) + ": " + result.out + result.err;
}

TEST(FerryWeb, MetricsPassPromtoolAndCountTheJobsRun) {
  TempDir dir;
  Server server(dir, "sekrit", {"--lease-timeout", "4", "--metrics-listen", "127.0.0.1:0"});
  std::smatch found;
  std::string log;
  ASSERT_TRUE(eventually([&] {
    log = read_file(dir / "server.log");
    return std::regex_search(log, found, std::regex(R"(metrics at (http://\S+/metrics))"));
  })) << log;
  std::string metrics_url = found[1];

  // alpha: a real worker runs 6 jobs that succeed and 2 that fail twice.
  server.request("POST", "/v1/jobs",
                 jobs_body(6, R"({"command":{"argv":["true"]},"queue":"alpha"})"));
  server.request("POST", "/v1/jobs",
                 jobs_body(2, R"({"command":{"argv":["false"]},"queue":"alpha","retries":1,)"
                              R"("retry_delay":0.001})"));
  WorkerProcess worker(dir, server, "w1", 2);
  ASSERT_TRUE(eventually([&] {
    return count_of(server, "succeeded") == 6 && count_of(server, "failed") == 2;
  })) << server.request("GET", "/v1/stats").body;
  worker.stop(SIGTERM);  // it would take the jobs below, which are run by hand

  // beta: a job leased by hand, cancelled while it runs; its late report is stale.
  server.request("POST", "/v1/jobs", R"({"command":{"argv":["x"]},"queue":"beta"})");
  Response leased =
      server.request("POST", "/v1/lease", R"({"worker":"hand","free_slots":1,"queues":["beta"]})");
  std::string beta_token = token_in(leased.body);
  ASSERT_FALSE(beta_token.empty()) << leased.body;
  EXPECT_NE(server.request("POST", "/v1/jobs/9/cancel").body.find(R"("cancelled":true)"),
            std::string::npos);
  server.request("POST", "/v1/lease",
                 R"({"worker":"hand","completions":[{"job":9,"token":)" + beta_token +
                     R"(,"succeeded":true}]})");

  // gamma: a job whose worker goes silent: its lease expires; then cancelled.
  server.request("POST", "/v1/jobs", R"({"command":{"argv":["x"]},"queue":"gamma"})");
  ASSERT_FALSE(token_in(server
                            .request("POST", "/v1/lease",
                                     R"({"worker":"hand","free_slots":1,"queues":["gamma"]})")
                            .body)
                   .empty());
  ASSERT_TRUE(eventually(
      [&] {
        return server.request("GET", "/v1/jobs/10").body.find(R"("end":"lease_expired")") !=
               std::string::npos;
      },
      60));
  server.request("POST", "/v1/jobs/10/cancel");
  server.request("POST", "/v1/lease", R"({"worker":"hand"})");  // heard from just now

  Response scraped = server.request("GET", "/metrics");
  ASSERT_EQ(scraped.status, 200) << scraped.body;
  const std::string& text = scraped.body;
  EXPECT_EQ(promtool_check(dir, text), "") << text;

  std::map<std::string, double> expected = {
      {R"(ferry_jobs_submitted_total{queue="alpha"})", 8},
      {R"(ferry_jobs_started_total{queue="alpha"})", 10},
      {R"(ferry_jobs_succeeded_total{queue="alpha"})", 6},
      {R"(ferry_jobs_failed_total{queue="alpha"})", 2},
      {R"(ferry_jobs_retried_total{queue="alpha"})", 2},
      {R"(ferry_jobs_cancelled_total{queue="alpha"})", 0},
      {R"(ferry_lease_expiries_total{queue="alpha"})", 0},
      {R"(ferry_job_duration_seconds_count{queue="alpha"})", 10},
      {R"(ferry_job_queue_wait_seconds_count{queue="alpha"})", 10},
      {R"(ferry_jobs{queue="alpha",state="succeeded"})", 6},
      {R"(ferry_jobs{queue="alpha",state="failed"})", 2},
      {R"(ferry_jobs_submitted_total{queue="beta"})", 1},
      {R"(ferry_jobs_started_total{queue="beta"})", 1},
      {R"(ferry_jobs_cancelled_total{queue="beta"})", 1},
      {R"(ferry_job_duration_seconds_count{queue="beta"})", 0},
      {R"(ferry_jobs{queue="beta",state="cancelled"})", 1},
      {R"(ferry_jobs_started_total{queue="gamma"})", 1},
      {R"(ferry_lease_expiries_total{queue="gamma"})", 1},
      {R"(ferry_jobs_cancelled_total{queue="gamma"})", 1},
      {R"(ferry_jobs_retried_total{queue="gamma"})", 0},
      {"ferry_jobs_in_memory", 0},
  };
  for (const auto& [series, value] : expected) EXPECT_EQ(sample(text, series), value) << series;
  // The late report of beta's job at least; a worker's report sent again
  // because its answer was slow (a loaded machine, a sanitizer) counts too.
  EXPECT_GE(sample(text, "ferry_stale_completions_total"), 1);
  EXPECT_GE(sample(text, "ferry_workers_connected"), 1);
  EXPECT_GE(sample(text, "ferry_store_commit_seconds_count"), 5);
  EXPECT_GT(sample(text, "ferry_store_size_bytes"), 0);
  EXPECT_GT(sample(text, "process_resident_memory_bytes"), 0);
  EXPECT_GT(sample(text, "process_open_fds"), 0);

  // The metrics port: no token, /metrics only, also clean.
  Answer open = fetch(metrics_url);
  EXPECT_EQ(open.status, 200);
  EXPECT_EQ(open.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(promtool_check(dir, open.body), "");
  EXPECT_EQ(sample(open.body, R"(ferry_jobs_succeeded_total{queue="alpha"})"), 6);
  std::string base = metrics_url.substr(0, metrics_url.rfind("/metrics"));
  EXPECT_EQ(fetch(base + "/v1/stats").status, 404);
  EXPECT_EQ(fetch(metrics_url, {"-X", "POST"}).status, 405);
  EXPECT_EQ(server.request("GET", "/metrics", std::nullopt, "").status, 401);
}

// An event stream read as it comes, over a plain socket.
class Stream {
 public:
  Stream(const Server& server, const std::string& path) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(server.port())));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return;
    std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n\r\n";
    (void)!::send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
  }
  ~Stream() { ::close(fd_); }
  // Reads until `done` holds for all read so far, for at most `seconds` (a
  // guard against a hang, not a measure).
  bool read_until(const std::function<bool(const std::string&)>& done, double seconds = 30) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done(text_)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd ready{fd_, POLLIN, 0};
      if (::poll(&ready, 1, 100) <= 0) continue;
      char buffer[4096];
      ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got <= 0) return done(text_);
      text_.append(buffer, static_cast<std::size_t>(got));
    }
    return true;
  }
  const std::string& text() const { return text_; }

 private:
  int fd_ = -1;
  std::string text_;
};

// The sum of the "changes" of a coalesced stream's events so far, and the
// last highest_id.
std::pair<long, long> summed_changes(const std::string& text) {
  long changes = 0, highest = -1;
  std::regex event(R"(event: changes\ndata: \{"changes":(\d+),"highest_id":(\d+)\})");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), event);
       it != std::sregex_iterator(); ++it) {
    changes += std::stol((*it)[1]);
    highest = std::stol((*it)[2]);
  }
  return {changes, highest};
}

TEST(FerryWeb, ACoalescedEventStreamSendsCountsOfChangesNotEachChange) {
  TempDir dir;
  Server server(dir);
  server.request("POST", "/v1/jobs", jobs_body(2, R"({"command":{"argv":["x"]},"queue":"q"})"));
  Stream all(server, "/v1/events?coalesce=0.1");
  Stream other_queue(server, "/v1/events?coalesce=0.1&queue=elsewhere");
  // The first summary comes at once, with the highest id.
  ASSERT_TRUE(all.read_until([](const std::string& text) {
    return summed_changes(text) == std::pair<long, long>(0, 2);
  })) << all.text();
  ASSERT_TRUE(other_queue.read_until(
      [](const std::string& text) { return summed_changes(text).second == 2; }));

  server.request("POST", "/v1/jobs", jobs_body(3, R"({"command":{"argv":["x"]},"queue":"q"})"));
  server.request("POST", "/v1/cancel", R"({"ids":[1,2]})");
  ASSERT_TRUE(all.read_until([](const std::string& text) {
    return summed_changes(text) == std::pair<long, long>(5, 5);
  })) << all.text();
  EXPECT_EQ(all.text().find("event: job"), std::string::npos) << all.text();
  EXPECT_NE(all.text().find("Content-Type: text/event-stream"), std::string::npos);
  // A filtered summary counts only what its filter wants.
  EXPECT_EQ(summed_changes(other_queue.text()).first, 0) << other_queue.text();

  for (std::string bad :
       {"coalesce=0", "coalesce=61", "coalesce=x", "coalesce=", "coalesce=1&results=true"}) {
    Response refused = server.request("GET", "/v1/events?" + bad);
    EXPECT_EQ(refused.status, 400) << bad << ": " << refused.body;
  }
  EXPECT_NE(server.request("GET", "/v1/events?coalesce=1&results=true")
                .body.find("a coalesced stream carries no results"),
            std::string::npos);
}

// The dashboard links a job to its flow, and shows what it waits on.
TEST(FerryWeb, AJobOfAFlowNamesItsFlow) {
  TempDir dir;
  Server server(dir);
  server.request("POST", "/v1/jobs", jobs_body(1, R"({"command":{"argv":["x"]}})"));
  Response flow =
      server.request("POST", "/v1/jobs",
                     R"({"flow":{"name":"build"},"jobs":[{"ref":"a","command":{"argv":["x"]}},)"
                     R"({"ref":"b","after":["a"],"command":{"argv":["x"]}}]})");
  ASSERT_EQ(flow.status, 201) << flow.body;
  EXPECT_NE(flow.body.find(R"("flow":1)"), std::string::npos) << flow.body;
  std::string second = server.request("GET", "/v1/jobs/3").body;
  EXPECT_NE(second.find(R"("after":[2])"), std::string::npos) << second;  // the ref, resolved
  EXPECT_NE(second.find(R"("flow":1)"), std::string::npos) << second;
  std::string alone = server.request("GET", "/v1/jobs/1").body;
  EXPECT_NE(alone.find(R"("flow":null)"), std::string::npos) << alone;
  std::string listed = server.request("GET", "/v1/flows/1").body;
  EXPECT_NE(listed.find(R"("ref":"b")"), std::string::npos) << listed;
}

TEST(FerryWeb, StatsTellTheLastHourAndWorkersTheirRunningJobs) {
  TempDir dir;
  Server server(dir);
  server.request("POST", "/v1/jobs", jobs_body(3, R"({"command":{"argv":["x"]}})"));
  Response leased = server.request("POST", "/v1/lease", R"({"worker":"w1","free_slots":2})");
  std::string token = token_in(leased.body);
  server.request(
      "POST", "/v1/lease",
      R"({"worker":"w1","completions":[{"job":1,"token":)" + token + R"(,"succeeded":false}]})");
  std::string workers = server.request("GET", "/v1/workers").body;
  EXPECT_NE(workers.find(R"("id":"w1")"), std::string::npos) << workers;
  EXPECT_NE(workers.find(R"("running":[2])"), std::string::npos) << workers;
  std::string stats = server.request("GET", "/v1/stats").body;
  std::smatch hour;
  ASSERT_TRUE(std::regex_search(
      stats, hour,
      std::regex(
          R"("last_hour":\{"first_minute_ms":\d+,"submitted":\[([0-9,]+)\],"succeeded":\[[0-9,]+\],"failed":\[([0-9,]+)\]\})")))
      << stats;
  std::string submitted = hour[1], failed = hour[2];
  EXPECT_EQ(std::count(submitted.begin(), submitted.end(), ','), 59);
  EXPECT_TRUE(submitted.ends_with(",3") || submitted.ends_with(",0"));  // a minute may have turned
  EXPECT_EQ(std::count(failed.begin(), failed.end(), '1'), 1) << failed;
}

}  // namespace
}  // namespace ferry::e2e
