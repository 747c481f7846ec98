// ferry::Worker — serve named functions to a ferry server.
//
// The "task worker" side of the classic pair: register functions that take
// and return JSON, then run(). The worker leases call jobs of those functions
// (and only those: the server sends a call of F only to workers serving F),
// runs them on `threads` threads, and reports results — durably acknowledged
// by the server, retried until they are. A function that throws fails that
// attempt with the exception's message.
//
//   ferry::Worker worker("http://queue-host:7077", token);
//   worker.add("square", [](const boost::json::value& n) { return n.to_number<long>() *
//   n.to_number<long>(); }); worker.run();  // until stop(), SIGTERM or SIGINT
//
// The server and token default to FERRY_SERVER and FERRY_TOKEN.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ferry {

struct WorkerOptions {
  int threads = 0;                  // 0: the number of cores
  std::string id;                   // empty: HOSTNAME-PID
  std::vector<std::string> queues;  // empty: every queue
  std::vector<std::string> labels;
};

class Worker {
 public:
  using Function = std::function<boost::json::value(const boost::json::value& args)>;

  explicit Worker(std::string server = {}, std::string token = {}, WorkerOptions options = {});
  ~Worker();

  // Registers `function` under `name` (letters, digits, _ - . :). Before run().
  void add(const std::string& name, Function function);

  // Serves until stop() is called (from any thread), or SIGTERM/SIGINT
  // arrives when `handle_signals`. Running calls finish and their results are
  // delivered before it returns. Throws ferry::Error when the server refuses
  // the token.
  void run(bool handle_signals = true);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry
