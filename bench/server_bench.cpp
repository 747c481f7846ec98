// ferry's durable server under load, for bench/distributed.sh.
//   server_bench worker THREADS        serve a no-op `noop` call until stopped
//   server_bench submit N BATCH        submit N `noop` calls in batches, wait for all;
//                                      prints "jobs N seconds S" (submit to last result)
//   server_bench latency N             N single calls one after another;
//                                      prints "p50_ms X p99_ms Y" (submit to result)
//   server_bench flows N SECONDS DEPS  N flows of 5 commands (`sleep SECONDS`): a diamond
//                                      and a tail (a -> b, c -> d -> e) when DEPS is 1,
//                                      the same 5 jobs without dependencies when 0;
//                                      prints "flows N jobs J seconds S" (first submit
//                                      to the last job's end)
//   server_bench soak N BATCH PID DB   N `noop` calls in batches, a few batches in
//                                      flight; per million: jobs/s, the server's
//                                      (PID) peak RSS, the size of DB, p99 submit
// The server and token come from FERRY_SERVER and FERRY_TOKEN.
#include <ferry/client.hpp>
#include <ferry/worker.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

int serve(int threads) {
  ferry::Worker worker({}, {}, {.threads = threads});
  worker.add("noop", [](const boost::json::value& args) -> boost::json::value { return args; });
  worker.run();
  return 0;
}

int submit(int count, int batch) {
  ferry::Client client;
  auto start = Clock::now();
  std::vector<std::uint64_t> ids;
  for (int done = 0; done < count; done += batch) {
    std::vector<boost::json::value> args(static_cast<std::size_t>(std::min(batch, count - done)),
                                         boost::json::value(1));
    auto given = client.call_many("noop", args);
    ids.insert(ids.end(), given.begin(), given.end());
  }
  // The last id ends last or nearly: wait for it, then check every one.
  std::size_t succeeded = 0;
  client.wait_all(
      {ids.back()}, [&](const ferry::JobResult&) {}, std::chrono::minutes(10));
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  client.wait_all(
      ids, [&](const ferry::JobResult& result) { succeeded += result.succeeded(); },
      std::chrono::minutes(10));
  std::printf("jobs %zu seconds %.3f\n", succeeded, seconds);
  return succeeded == ids.size() ? 0 : 1;
}

int latency(int count) {
  ferry::Client client;
  std::vector<double> millis;
  for (int i = 0; i < count; ++i) {
    auto start = Clock::now();
    client.wait(client.call("noop", i), std::chrono::seconds(30));
    millis.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(millis.begin(), millis.end());
  std::printf("p50_ms %.3f p99_ms %.3f\n", millis[millis.size() / 2],
              millis[millis.size() * 99 / 100]);
  return 0;
}

int flows(int count, const std::string& seconds, bool dependencies) {
  ferry::Client client;
  boost::json::array jobs;
  for (auto [ref, after] : {std::pair{"a", ""}, {"b", "a"}, {"c", "a"}, {"d", "b c"}, {"e", "d"}}) {
    boost::json::object job{{"command", {{"argv", {"sleep", seconds}}}}};
    if (dependencies) {
      job["ref"] = ref;
      boost::json::array refs;
      for (const char* at = after; *at; ++at)
        if (*at != ' ') refs.emplace_back(std::string(1, *at));
      if (!refs.empty()) job["after"] = std::move(refs);
    }
    jobs.push_back(std::move(job));
  }
  boost::json::object batch{{"jobs", std::move(jobs)}};
  auto start = Clock::now();
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < count; ++i) {
    ferry::Flow flow = client.submit_flow(batch);
    ids.insert(ids.end(), flow.ids.begin(), flow.ids.end());
  }
  std::size_t succeeded = 0;
  client.wait_all(
      ids, [&](const ferry::JobResult& result) { succeeded += result.succeeded(); },
      std::chrono::minutes(30));
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("flows %d jobs %zu seconds %.3f\n", count, succeeded, elapsed);
  return succeeded == ids.size() ? 0 : 1;
}

long rss_kb(const std::string& pid) {
  std::ifstream status("/proc/" + pid + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

double megabytes(std::uintmax_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

std::uintmax_t database_bytes(const std::string& db) {
  std::uintmax_t bytes = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code missing;
    auto size = std::filesystem::file_size(db + suffix, missing);
    if (!missing) bytes += size;
  }
  return bytes;
}

// A steady load: batches submitted while earlier ones run, at most
// kInFlight batches unfinished, as a producer that keeps up with its
// consumers would.
int soak(long total, int batch, const std::string& server_pid, const std::string& db) {
  constexpr std::size_t kInFlight = 8;
  constexpr long kMillion = 1'000'000;
  ferry::Client client;
  std::deque<std::vector<std::uint64_t>> pending;
  auto wait_oldest = [&] {
    std::size_t failed = 0;
    client.wait_all(
        pending.front(), [&](const ferry::JobResult& result) { failed += !result.succeeded(); },
        std::chrono::minutes(10));
    pending.pop_front();
    if (failed) throw std::runtime_error(std::to_string(failed) + " jobs failed");
  };
  std::vector<double> submit_ms;
  long peak_rss = 0;
  auto period_start = Clock::now();
  std::printf("%8s %10s %12s %12s %12s\n", "million", "jobs/s", "peak RSS MB", "database MB",
              "p99 submit ms");
  for (long done = 0; done < total;) {
    std::vector<boost::json::value> args(
        static_cast<std::size_t>(std::min<long>(batch, total - done)), boost::json::value(1));
    auto start = Clock::now();
    pending.push_back(client.call_many("noop", args));
    submit_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    done += static_cast<long>(args.size());
    if (pending.size() > kInFlight) wait_oldest();
    peak_rss = std::max(peak_rss, rss_kb(server_pid));
    if (done % kMillion == 0 || done == total) {
      while (!pending.empty()) wait_oldest();  // the million ran, not only went in
      double seconds = std::chrono::duration<double>(Clock::now() - period_start).count();
      std::sort(submit_ms.begin(), submit_ms.end());
      long jobs = done % kMillion == 0 ? kMillion : done % kMillion;
      std::printf("%8ld %10.0f %12.1f %12.1f %12.2f\n", (done + kMillion - 1) / kMillion,
                  static_cast<double>(jobs) / seconds, static_cast<double>(peak_rss) / 1024,
                  megabytes(database_bytes(db)), submit_ms[submit_ms.size() * 99 / 100]);
      std::fflush(stdout);
      submit_ms.clear();
      peak_rss = 0;
      period_start = Clock::now();
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "worker" && argc == 3) return serve(std::atoi(argv[2]));
  if (mode == "submit" && argc == 4) return submit(std::atoi(argv[2]), std::atoi(argv[3]));
  if (mode == "latency" && argc == 3) return latency(std::atoi(argv[2]));
  if (mode == "flows" && argc == 5)
    return flows(std::atoi(argv[2]), argv[3], std::string(argv[4]) == "1");
  if (mode == "soak" && argc == 6)
    return soak(std::atol(argv[2]), std::atoi(argv[3]), argv[4], argv[5]);
  std::fprintf(stderr,
               "usage: server_bench worker THREADS | submit N BATCH | latency N | "
               "flows N SECONDS DEPS | soak N BATCH SERVER_PID DATABASE\n");
  return 2;
}
