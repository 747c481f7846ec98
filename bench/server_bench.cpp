// ferry's durable server under load, for bench/distributed.sh.
//   server_bench worker THREADS        serve a no-op `noop` call until stopped
//   server_bench submit N BATCH        submit N `noop` calls in batches, wait for all;
//                                      prints "jobs N seconds S" (submit to last result)
//   server_bench latency N             N single calls one after another;
//                                      prints "p50_ms X p99_ms Y" (submit to result)
// The server and token come from FERRY_SERVER and FERRY_TOKEN.
#include <ferry/client.hpp>
#include <ferry/worker.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
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

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "worker" && argc == 3) return serve(std::atoi(argv[2]));
  if (mode == "submit" && argc == 4) return submit(std::atoi(argv[2]), std::atoi(argv[3]));
  if (mode == "latency" && argc == 3) return latency(std::atoi(argv[2]));
  std::fprintf(stderr, "usage: server_bench worker THREADS | submit N BATCH | latency N\n");
  return 2;
}
