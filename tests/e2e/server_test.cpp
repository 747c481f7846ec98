// `ferry server` end to end: the real binary on a loopback port, a real
// SQLite file, and curl as the client.
#include <gtest/gtest.h>

#include <signal.h>

#include <map>

#include <fstream>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

// The answer has this status, and its body says `detail`.
void expect(const Response& response, int status, const std::string& detail) {
  EXPECT_EQ(response.status, status) << response.body;
  EXPECT_NE(response.body.find(detail), std::string::npos) << response.body;
}

TEST(FerryServer, OnlyHealthzIsOpenWithoutTheToken) {
  TempDir dir;
  Server server(dir);
  EXPECT_EQ(server.request("GET", "/healthz", std::nullopt, "").status, 200);
  for (auto [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/stats"},
                                                        {"GET", "/v1/workers"},
                                                        {"GET", "/v1/jobs/1"},
                                                        {"POST", "/v1/jobs"},
                                                        {"POST", "/v1/lease"},
                                                        {"POST", "/v1/cancel"},
                                                        {"POST", "/v1/retry"},
                                                        {"POST", "/v1/jobs/1/cancel"},
                                                        {"GET", "/v1/events"},
                                                        {"GET", "/v1/nothing"}}) {
    for (std::string token : {"", "wrong", "sekri", "sekritt"}) {
      Response response = server.request(method, path, "{}", token);
      EXPECT_EQ(response.status, 401) << method << " " << path << " with '" << token << "'";
      EXPECT_NE(response.body.find(R"("error":"unauthorized")"), std::string::npos);
    }
  }
  EXPECT_EQ(server.request("GET", "/v1/stats").status, 200);
}

TEST(FerryServer, BadInputGetsAClearErrorAndChangesNothing) {
  TempDir dir;
  Server server(dir);
  expect(server.request("POST", "/v1/jobs", "{\"command\":"), 400,
         R"("detail":"the body is not valid JSON: incomplete JSON")");
  expect(server.request("POST", "/v1/jobs", R"({"command":{"argv":["ls"]},"retires":3})"), 400,
         R"("detail":"retires: is not a known field")");
  expect(server.request("POST", "/v1/jobs", jobs_body(10'001, R"({"command":{"argv":["true"]}})")),
         400, "jobs: must hold at most 10000 jobs per request");
  expect(server.request("POST", "/v1/jobs", std::string(33 << 20, ' ')), 413,
         "the body is larger than 33554432 bytes");
  expect(server.request("POST", "/v1/lease", R"({"free_slots":1})"), 400, "worker: is required");
  expect(server.request("POST", "/v1/cancel", R"({"ids":[0]})"), 400,
         "ids[0]: must be a positive whole number");
  expect(server.request("GET", "/v1/jobs/12"), 404, "no job 12");
  expect(server.request("GET", "/v1/jobs/x"), 404, "no such path");
  expect(server.request("DELETE", "/v1/jobs/1"), 405, "/v1/jobs/1 takes GET, HEAD, not DELETE");
  expect(server.request("GET", "/v1/stats"), 200, R"("total":0)");
}

TEST(FerryServer, RunsAJobThroughTheLeaseProtocol) {
  TempDir dir;
  Server server(dir);
  Response submitted =
      server.request("POST", "/v1/jobs", R"({"command":{"argv":["echo","hi"]},"name":"greet"})");
  EXPECT_EQ(submitted.status, 201);
  EXPECT_EQ(ids_in(submitted.body), std::vector<std::uint64_t>{1});

  Response leased = server.request("POST", "/v1/lease", R"({"worker":"w1","free_slots":4})");
  EXPECT_EQ(leased.status, 200);
  std::string token = token_in(leased.body);
  EXPECT_NE(leased.body.find(R"("id":1,"token":)" + token + R"(,"attempt":1)"), std::string::npos)
      << leased.body;
  EXPECT_NE(leased.body.find(R"("argv":["echo","hi"])"), std::string::npos);

  Response reported = server.request(
      "POST", "/v1/lease",
      R"({"worker":"w1","completions":[{"job":1,"token":)" + token +
          R"(,"succeeded":true,"reason":"exit 0","exit_code":0,"stdout":"hi\n","cpu_us":120,)"
          R"("max_rss_kb":900}]})");
  EXPECT_EQ(reported.status, 200);
  EXPECT_NE(reported.body.find(R"("acknowledged":[)" + token + "]"), std::string::npos)
      << reported.body;

  Response listed = server.request("GET", "/v1/jobs?state=succeeded&text=gree&limit=10");
  EXPECT_EQ(listed.status, 200);
  EXPECT_NE(listed.body.find(R"("id":1,"name":"greet")"), std::string::npos) << listed.body;
  EXPECT_NE(listed.body.find(R"("next_before":null)"), std::string::npos) << listed.body;
  EXPECT_NE(server.request("GET", "/v1/jobs?text=hello%20world").body.find(R"("jobs":[])"),
            std::string::npos);
  Response bad_query = server.request("GET", "/v1/jobs?sate=running");
  EXPECT_EQ(bad_query.status, 400);
  EXPECT_NE(bad_query.body.find("sate: is not a known query parameter"), std::string::npos);
  EXPECT_EQ(server.request("GET", "/v1/jobs?state=sleeping").status, 400);
  EXPECT_EQ(server.request("GET", "/v1/jobs?limit=0").status, 400);

  Response job = server.request("GET", "/v1/jobs/1");
  EXPECT_EQ(job.status, 200);
  EXPECT_NE(job.body.find(R"("state":"succeeded")"), std::string::npos) << job.body;
  EXPECT_NE(job.body.find(R"("stdout":"hi\n")"), std::string::npos) << job.body;
  EXPECT_NE(server.request("GET", "/v1/workers").body.find(R"("id":"w1")"), std::string::npos);
}

// The "data:" lines of an event stream.
std::vector<std::string> event_data(const std::string& stream) {
  std::vector<std::string> data;
  for (const std::string& line : lines_of(stream))
    if (line.rfind("data: ", 0) == 0) data.push_back(line.substr(6));
  return data;
}

TEST(FerryServer, EventsStreamEachChangeOnceDurableAfterTheCurrentState) {
  TempDir dir;
  Server server(dir);
  expect(server.request("GET", "/v1/events?ids=9"), 404, "no job 9");
  expect(server.request("GET", "/v1/events?ids=3-1"), 400,
         "ids: '3-1' is neither a job id nor a range FIRST-LAST");
  expect(server.request("GET", "/v1/events?ids=1-2000000"), 404, "no job 1");
  expect(server.request("GET", "/v1/events?results=yes"), 400, "results: must be true or false");
  expect(server.request("GET", "/v1/events?colour=red"), 400,
         "colour: is not a known query parameter");
  expect(server.request("POST", "/v1/events", "{}"), 405, "/v1/events takes GET, not POST");

  ASSERT_EQ(server.request("POST", "/v1/jobs", R"({"command":{"argv":["echo","hi"]}})").status,
            201);
  exec::ProcessSet readers;  // two streams, started before the job runs
  auto stream = [&](const std::string& query) {
    exec::Command curl;
    curl.argv = {"curl",
                 "-sN",
                 "-m",
                 "3",
                 "-H",
                 "Authorization: Bearer sekrit",
                 server.url() + "/v1/events" + query};
    return readers.start(curl);
  };
  auto mine = stream("?ids=1&results=true");
  auto other_queue = stream("?queue=other");
  ASSERT_TRUE(eventually([&] {  // both subscribed
    return server.request("GET", "/v1/stats").body.find(R"("event_streams":2)") !=
           std::string::npos;
  }));
  std::string token =
      token_in(server.request("POST", "/v1/lease", R"({"worker":"w1","free_slots":1})").body);
  ASSERT_EQ(server
                .request("POST", "/v1/lease",
                         R"({"worker":"w1","completions":[{"job":1,"token":)" + token +
                             R"(,"succeeded":true,"exit_code":0,"stdout":"hi\n"}]})")
                .status,
            200);
  std::map<exec::ProcessSet::Id, std::string> outputs;
  while (outputs.size() < 2)
    for (auto& finished : readers.wait(std::nullopt)) outputs[finished.id] = finished.result.out;

  EXPECT_EQ(event_data(outputs[mine]),
            (std::vector<std::string>{
                R"({"id":1,"state":"queued","queue":"default","attempts":0,"reason":""})",
                R"({"id":1,"state":"running","queue":"default","attempts":1,"reason":""})",
                R"({"id":1,"state":"succeeded","queue":"default","attempts":1,"reason":"",)"
                R"("exit_code":0,"result":null,"stdout":"hi\n","stderr":""})"}))
      << outputs[mine];
  EXPECT_EQ(event_data(outputs[other_queue]), std::vector<std::string>{}) << outputs[other_queue];
  // Afterwards the stream starts with the current state.
  std::vector<std::string> later =
      event_data(server.request("GET", "/v1/events?ids=1", {}, {}, 1).body);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_NE(later[0].find(R"("state":"succeeded")"), std::string::npos) << later[0];
}

TEST(FerryServer, AKilledServerLosesNoAcceptedJob) {
  TempDir dir;
  std::vector<std::uint64_t> accepted;
  Response leased;
  {
    Server server(dir);
    for (int batch = 0; batch < 4; ++batch) {
      auto ids = ids_in(
          server.request("POST", "/v1/jobs", jobs_body(50, R"({"command":{"argv":["true"]}})"))
              .body);
      accepted.insert(accepted.end(), ids.begin(), ids.end());
    }
    leased = server.request("POST", "/v1/lease", R"({"worker":"w1","free_slots":10})");
    EXPECT_EQ(leased.status, 200);
    exec::Result killed = server.stop(SIGKILL);
    EXPECT_EQ(killed.end, exec::End::signaled);
  }
  ASSERT_EQ(accepted.size(), 200u);
  Server restarted(dir);
  Response stats = restarted.request("GET", "/v1/stats");
  EXPECT_NE(stats.body.find(R"("queued":200,"running":0)"), std::string::npos) << stats.body;
  // The lease was not stored: job 1 waits to run, with no attempt yet...
  Response first = restarted.request("GET", "/v1/jobs/1");
  EXPECT_NE(first.body.find(R"("state":"queued")"), std::string::npos) << first.body;
  EXPECT_NE(first.body.find(R"("attempts":[])"), std::string::npos) << first.body;
  // ...and the completion of the lease from before the crash is stale.
  Response late = restarted.request("POST", "/v1/lease",
                                    R"({"worker":"w1","completions":[{"job":1,"token":)" +
                                        token_in(leased.body) + R"(,"succeeded":true}]})");
  EXPECT_EQ(late.status, 200) << late.body;
  EXPECT_NE(late.body.find(R"("acknowledged":[)" + token_in(leased.body) + "]"), std::string::npos);
  stats = restarted.request("GET", "/v1/stats");
  EXPECT_NE(stats.body.find(R"("queued":200,"running":0)"), std::string::npos) << stats.body;
  EXPECT_NE(stats.body.find(R"("stale_completions":1)"), std::string::npos) << stats.body;
  EXPECT_EQ(ids_in(restarted.request("POST", "/v1/jobs", R"({"call":{"function":"f"}})").body),
            std::vector<std::uint64_t>{201});
}

TEST(FerryServer, StopsCleanlyOnSigterm) {
  TempDir dir;
  Server server(dir);
  EXPECT_EQ(server.request("POST", "/v1/jobs", R"({"call":{"function":"f"}})").status, 201);
  exec::Result result = server.stop(SIGTERM);
  EXPECT_EQ(result.end, exec::End::exited);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(read_file(dir / "server.log").find("ferry server: stopping"), std::string::npos);
}

TEST(FerryServer, RefusesUnsafeOrBadSettings) {
  TempDir dir;
  auto open = run_ferry({"server", "--listen", "0.0.0.0:0", "--db", dir / "a.db"}, dir);
  EXPECT_EQ(open.exit_code, 2);
  EXPECT_NE(open.err.find("refusing to listen on 0.0.0.0 without a token"), std::string::npos)
      << open.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "a.db"));
  auto port = run_ferry({"server", "--listen", "127.0.0.1:http"}, dir);
  EXPECT_EQ(port.exit_code, 2);
  EXPECT_NE(port.err.find("'http' is not a port number"), std::string::npos) << port.err;
  std::ofstream(dir / "text.db") << "not a database\n";
  auto db = run_ferry({"server", "--listen", "127.0.0.1:0", "--db", dir / "text.db"}, dir);
  EXPECT_EQ(db.exit_code, 2);
  EXPECT_NE(db.err.find("text.db"), std::string::npos) << db.err;
}

}  // namespace
}  // namespace ferry::e2e
