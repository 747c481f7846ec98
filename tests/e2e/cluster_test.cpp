// A server and workers end to end: real processes on loopback, crashes on
// purpose, and nothing accepted may be lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <map>

#include "ferry_process.hpp"
#include "server_process.hpp"

namespace ferry::e2e {
namespace {

TEST(FerryCluster, CommandsSubmittedFromTheCliRunOnAWorker) {
  TempDir dir;
  Server server(dir);
  WorkerProcess worker(dir, server, "w1", 2);
  Strings connect = {"--server", server.url(), "--token", "sekrit"};
  auto submit = [&](Strings command) {
    Strings args = {"submit"};
    args.insert(args.end(), connect.begin(), connect.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    auto result = run_ferry(args, dir);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out.substr(0, result.out.find('\n'));
  };
  std::string good = submit({"echo", "hello from a worker"});
  std::string bad = submit({"sh", "-c", "echo oops >&2; exit 3"});

  Strings wait = {"wait", good, "--timeout", "60"};
  wait.insert(wait.end(), connect.begin(), connect.end());
  auto waited = run_ferry(wait, dir);
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_NE(waited.out.find("succeeded"), std::string::npos) << waited.out;

  Strings status = {"status", good, "--json"};
  status.insert(status.end(), connect.begin(), connect.end());
  EXPECT_NE(run_ferry(status, dir).out.find(R"("stdout":"hello from a worker\n")"),
            std::string::npos);

  Strings logs = {"logs", good};
  logs.insert(logs.end(), connect.begin(), connect.end());
  EXPECT_EQ(run_ferry(logs, dir).out, "hello from a worker\n");
  Strings listing = {"status", "--state", "succeeded", "--text", "hello from"};
  listing.insert(listing.end(), connect.begin(), connect.end());
  auto listed = run_ferry(listing, dir);
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find(good + " "), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("exit 3"), std::string::npos) << listed.out;
  Strings queues = {"queues"};
  queues.insert(queues.end(), connect.begin(), connect.end());
  auto queue_table = run_ferry(queues, dir);
  EXPECT_NE(queue_table.out.find("default"), std::string::npos) << queue_table.out;
  Strings workers = {"workers"};
  workers.insert(workers.end(), connect.begin(), connect.end());
  EXPECT_NE(run_ferry(workers, dir).out.find("w1"), std::string::npos);

  Strings wait_bad = {"wait", bad, "--timeout", "60"};
  wait_bad.insert(wait_bad.end(), connect.begin(), connect.end());
  auto failed = run_ferry(wait_bad, dir);
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.out.find("(exit 3)"), std::string::npos) << failed.out;
  Strings retry = {"retry", bad};
  retry.insert(retry.end(), connect.begin(), connect.end());
  auto retried = run_ferry(retry, dir);
  EXPECT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(retried.out, bad + " retried\n");
  auto failed_again = run_ferry(wait_bad, dir);
  EXPECT_EQ(failed_again.exit_code, 1);
  EXPECT_NE(failed_again.out.find("attempts 2"), std::string::npos) << failed_again.out;
  Strings retry_good = {"retry", good};
  retry_good.insert(retry_good.end(), connect.begin(), connect.end());
  auto refused = run_ferry(retry_good, dir);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.out.find("only failed or cancelled jobs are retried"), std::string::npos);
  Strings bad_logs = {"logs", bad};
  bad_logs.insert(bad_logs.end(), connect.begin(), connect.end());
  EXPECT_EQ(run_ferry(bad_logs, dir).err, "oops\n");
}

TEST(FerryCluster, WaitFollowsJobsAsTheyEnd) {
  TempDir dir;
  Server server(dir);
  Strings connect = {"--server", server.url(), "--token", "sekrit"};
  auto ferry = [&](Strings args) {  // the options before a command's words
    args.insert(args.begin() + 1, connect.begin(), connect.end());
    return run_ferry(args, dir);
  };
  ASSERT_EQ(ferry({"map", "--shell", "echo out {}; exit {}", ":::", "0", "0", "5"}).out,
            "1\n2\n3\n");
  auto unknown = ferry({"wait", "1", "7"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "ferry: the server answered 404: no job 7\n");
  auto too_soon = ferry({"wait", "1", "--timeout", "0.3"});  // no worker yet
  EXPECT_EQ(too_soon.exit_code, 124);
  EXPECT_NE(too_soon.err.find("not all jobs ended within 0.3s"), std::string::npos) << too_soon.err;

  WorkerProcess worker(dir, server, "w1", 2);
  auto waited = ferry({"wait", "1", "2", "3", "--json", "--progress"});
  EXPECT_EQ(waited.exit_code, 1) << waited.err;
  std::map<std::int64_t, boost::json::object> finals;
  for (const std::string& line : lines_of(waited.out)) {
    boost::json::object event = boost::json::parse(line).as_object();
    finals[event.at("id").as_int64()] = event;
  }
  ASSERT_EQ(finals.size(), 3u) << waited.out;
  EXPECT_EQ(finals[1].at("state").as_string(), "succeeded");
  EXPECT_EQ(finals[2].at("stdout").as_string(), "out 0\n");
  EXPECT_EQ(finals[3].at("state").as_string(), "failed");
  EXPECT_EQ(finals[3].at("exit_code").as_int64(), 5);
  EXPECT_NE(waited.err.find("3/3"), std::string::npos) << waited.err;  // the progress line

  auto logs = ferry({"logs", "3", "--json"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  boost::json::object attempt = boost::json::parse(logs.out).as_object();
  EXPECT_EQ(attempt.at("stdout").as_string(), "out 5\n");
  EXPECT_EQ(attempt.at("number").as_int64(), 1);
}

// Waiting on jobs that already ended with long outputs: 300 × 60 KiB is more
// than an event stream may hold unsent, so it must go out a slice at a time.
TEST(FerryCluster, WaitsOnManyEndedJobsWithLongOutputs) {
  TempDir dir;
  Server server(dir);
  WorkerProcess worker(dir, server, "w1", 4);
  Strings map = {"map",
                 "--server",
                 server.url(),
                 "--token",
                 "sekrit",
                 "--shell",
                 ": {}; head -c 61440 /dev/zero | tr '\\0' x",
                 ":::"};
  Strings wait = {"wait", "--server", server.url(), "--token", "sekrit"};
  for (int i = 1; i <= 300; ++i) {
    map.push_back(std::to_string(i));
    wait.push_back(std::to_string(i));
  }
  ASSERT_EQ(run_ferry(map, dir).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return count_of(server, "succeeded") == 300; }, 120))
      << server.request("GET", "/v1/stats").body;
  auto waited = run_ferry(wait, dir);
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  std::vector<std::string> lines = lines_of(waited.out);
  EXPECT_EQ(lines.size(), 300u);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& line) {
                            return line.find(" succeeded ") != std::string::npos;
                          }),
            300);
}

TEST(FerryCluster, ServesHttpsWithItsCertificate) {
  TempDir dir;
  exec::Command make_certificate = exec::shell_command(
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 "
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null");
  make_certificate.cwd = dir.path().string();
  ASSERT_EQ(run_to_end(make_certificate).exit_code, 0);
  Server server(dir, "sekrit", {"--tls-cert", dir / "cert.pem", "--tls-key", dir / "key.pem"});
  ASSERT_EQ(server.url().rfind("https://127.0.0.1:", 0), 0u) << server.url();
  EXPECT_EQ(server.request("GET", "/v1/stats").status, 200);

  Strings trusted = {"FERRY_TLS_CA=" + dir / "cert.pem"};
  WorkerProcess worker(dir, server, "w1", 1, trusted);
  auto ferry = [&](Strings args, Strings env, std::string url) {
    args.insert(args.begin() + 1, {"--server", url, "--token", "sekrit"});
    exec::Command command = ferry_command(args, dir);
    command.env = env;
    return run_to_end(command);
  };
  auto submitted = ferry({"submit", "--", "echo", "over tls"}, trusted, server.url());
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  auto waited = ferry({"wait", "1", "--json"}, trusted, server.url());
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_NE(waited.out.find(R"("stdout":"over tls\n")"), std::string::npos) << waited.out;

  // Without the authority the certificate is refused; plain HTTP gets no answer.
  auto untrusted = ferry({"status"}, {}, server.url());
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_NE(untrusted.err.find("certificate verify failed"), std::string::npos) << untrusted.err;
  std::string plain = "http://" + server.url().substr(8);
  auto unencrypted = ferry({"status"}, trusted, plain);
  EXPECT_EQ(unencrypted.exit_code, 1);
  EXPECT_NE(unencrypted.err.find("no answer from the server"), std::string::npos)
      << unencrypted.err;
}

TEST(FerryCluster, MapSubmitsOneJobPerInputAndWaits) {
  TempDir dir;
  Server server(dir);
  WorkerProcess worker(dir, server, "w1", 4);
  Strings connect = {"--server", server.url(), "--token", "sekrit"};
  Strings map = {"map"};
  map.insert(map.end(), connect.begin(), connect.end());
  Strings ids = map;
  ids.insert(ids.end(), {"echo", "{}", ":::", "a", "b", "c"});
  auto submitted = run_ferry(ids, dir);
  EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
  EXPECT_EQ(submitted.out, "1\n2\n3\n");

  Strings waited = map;
  waited.insert(waited.end(), {"--wait", "--shell", "exit {}", ":::", "0", "3", "0", "4"});
  auto result = run_ferry(waited, dir);
  EXPECT_EQ(result.exit_code, 2);  // two did not succeed
  EXPECT_NE(result.err.find("2 of 4 jobs did not succeed"), std::string::npos) << result.err;

  Strings bad = map;
  bad.insert(bad.end(), {"echo", "{3}", ":::", "a"});
  EXPECT_EQ(run_ferry(bad, dir).exit_code, 2);

  // map takes the same job options as submit.
  Strings named = map;
  named.insert(named.end(),
               {"--name", "batch7", "--retries", "2", "--delay", "0.5", "echo", ":::", "z"});
  auto submitted_named = run_ferry(named, dir);
  ASSERT_EQ(submitted_named.exit_code, 0) << submitted_named.err;
  Strings status = {"status", "--json",
                    submitted_named.out.substr(0, submitted_named.out.find('\n'))};
  status.insert(status.end(), connect.begin(), connect.end());
  boost::json::value job = boost::json::parse(run_ferry(status, dir).out);
  const boost::json::value& spec = job.at("spec");
  EXPECT_EQ(spec.at("name").as_string(), "batch7");
  EXPECT_EQ(spec.at("retries").to_number<int>(), 2);
  EXPECT_EQ(spec.at("delay").to_number<double>(), 0.5);
  Strings out_of_range = {"submit", "--priority", "5000"};
  out_of_range.insert(out_of_range.end(), connect.begin(), connect.end());
  out_of_range.insert(out_of_range.end(), {"--", "true"});
  auto refused = run_ferry(out_of_range, dir);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--priority"), std::string::npos) << refused.err;
}

TEST(FerryCluster, AWorkerKilledMidRunLosesNoJob) {
  TempDir dir;
  Server server(dir, "sekrit", {"--lease-timeout", "1"});
  for (int batch = 0; batch < 4; ++batch)
    ASSERT_EQ(server
                  .request("POST", "/v1/jobs",
                           jobs_body(500, R"({"command":{"argv":["sleep","0.002"]}})"))
                  .status,
              201);
  WorkerProcess doomed(dir, server, "doomed", 4);
  WorkerProcess survivor(dir, server, "survivor", 4);
  ASSERT_TRUE(eventually([&] { return count_of(server, "succeeded") >= 200; }, 60));
  doomed.stop(SIGKILL);
  ASSERT_TRUE(eventually([&] { return count_of(server, "succeeded") == 2000; }, 120))
      << server.request("GET", "/v1/stats").body;
  EXPECT_EQ(count_of(server, "failed"), 0);
  EXPECT_EQ(count_of(server, "running"), 0);
}

TEST(FerryCluster, AServerKilledMidRunLosesNoAcceptedJob) {
  TempDir dir;
  std::vector<std::uint64_t> accepted;
  auto server = std::make_unique<Server>(dir);
  for (int batch = 0; batch < 3; ++batch) {
    auto ids = ids_in(server
                          ->request("POST", "/v1/jobs",
                                    jobs_body(100, R"({"command":{"argv":["sleep","0.01"]}})"))
                          .body);
    accepted.insert(accepted.end(), ids.begin(), ids.end());
  }
  ASSERT_EQ(accepted.size(), 300u);
  WorkerProcess first(dir, *server, "w1", 3);
  WorkerProcess second(dir, *server, "w2", 3);
  ASSERT_TRUE(eventually([&] { return count_of(*server, "succeeded") >= 30; }, 60));

  std::string port = server->port();
  server->stop(SIGKILL);
  server.reset();
  server = std::make_unique<Server>(dir, "sekrit", std::vector<std::string>{},
                                    "127.0.0.1:" + port);  // where the workers expect it
  ASSERT_TRUE(eventually([&] { return count_of(*server, "succeeded") == 300; }, 120))
      << server->request("GET", "/v1/stats").body;
  // Every job the submitter was told about succeeded, recorded exactly once.
  for (std::uint64_t id : accepted) {
    std::string job = server->request("GET", "/v1/jobs/" + std::to_string(id)).body;
    std::size_t successes = 0;
    for (auto at = job.find(R"("end":"succeeded")"); at != std::string::npos;
         at = job.find(R"("end":"succeeded")", at + 1))
      ++successes;
    ASSERT_EQ(successes, 1u) << job;
  }
}

TEST(FerryCluster, AWorkerStoppedWithSigtermFinishesItsJobsFirst) {
  TempDir dir;
  Server server(dir);
  auto ids = ids_in(
      server.request("POST", "/v1/jobs", R"({"command":{"shell":"sleep 1; echo done"}})").body);
  WorkerProcess worker(dir, server, "w1", 1);
  ASSERT_TRUE(eventually([&] { return count_of(server, "running") == 1; }, 30));
  exec::Result stopped = worker.stop(SIGTERM);
  EXPECT_EQ(stopped.end, exec::End::exited);
  EXPECT_EQ(stopped.exit_code, 0) << read_file(dir / "worker-w1.log");
  std::string job = server.request("GET", "/v1/jobs/" + std::to_string(ids.at(0))).body;
  EXPECT_NE(job.find(R"("state":"succeeded")"), std::string::npos) << job;
  EXPECT_NE(job.find(R"("stdout":"done\n")"), std::string::npos) << job;
}

}  // namespace
}  // namespace ferry::e2e
