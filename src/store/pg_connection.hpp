// ferry::store::pg — the little of libpq the PostgreSQL store needs.
//
// A Connection runs statements with text parameters and answers with
// Results read by column. Several statements can go in one round trip
// (pipeline()): PostgreSQL runs them in order and stops at the first that
// fails. Every wait for the server has a deadline, so a dead network costs a
// bounded time rather than a hung thread: past it the connection is given up
// (a broken connection is never used again; make a new one).
//
// Failures throw pg::Error with PostgreSQL's message and SQLSTATE. Errors are
// the caller's to turn into a sentence for users; this layer never logs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace ferry::store::pg {

using Clock = std::chrono::steady_clock;

struct Error : std::runtime_error {
  Error(const std::string& message, std::string state, bool lost)
      : std::runtime_error(message), sqlstate(std::move(state)), connection_lost(lost) {}
  std::string sqlstate;          // "" when the server gave none
  bool connection_lost = false;  // the connection is broken: nothing more can run on it
};

// One statement's answer.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* result);
  int rows() const;
  bool null(int row, int column) const;
  std::string_view text(int row, int column) const;
  std::int64_t integer(int row, int column) const;  // 0 for NULL
  std::optional<std::int64_t> optional_integer(int row, int column) const;
  bool boolean(int row, int column) const;  // 't'
  std::int64_t affected() const;            // rows an INSERT, UPDATE or DELETE changed

 private:
  struct Free {
    void operator()(pg_result* result) const;
  };
  std::unique_ptr<pg_result, Free> result_;
};

// A statement's parameters, in PostgreSQL's text form; NULL where absent.
class Params {
 public:
  Params& add(std::int64_t value);
  Params& add(std::string value);
  Params& add(std::string_view value) { return add(std::string(value)); }
  Params& add(const char* value) { return add(std::string(value)); }
  Params& add(const std::optional<std::int64_t>& value);
  Params& add_null();
  std::size_t size() const { return values_.size(); }
  // For libpq: pointers into this object, valid while it is not changed.
  std::vector<const char*> values() const;

 private:
  std::vector<std::string> values_;
  std::vector<bool> null_;
};

// An array literal ("{1,2}", "{\"a\",NULL}") for parameters such as
// `unnest($1::bigint[])`: many rows in one statement.
class Array {
 public:
  Array& add(std::int64_t value);
  Array& add(std::string_view text);
  Array& add(const std::optional<std::int64_t>& value);
  Array& add_null();
  std::size_t size() const { return count_; }
  std::string literal() const { return text_ + "}"; }

 private:
  void separate();
  std::string text_ = "{";
  std::size_t count_ = 0;
};

struct Statement {
  std::string sql;
  Params params;
};

class Connection {
 public:
  // Connects to `url` (postgresql://...) within `connect_timeout`; the
  // session runs `setup` (SET statements) before anything else. Throws
  // pg::Error.
  Connection(const std::string& url, std::chrono::milliseconds connect_timeout,
             const std::string& setup = "");
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement (or, without params, several separated by ';').
  Result run(const std::string& sql, const Params& params = {},
             std::optional<Clock::time_point> deadline = std::nullopt);

  // Sends every statement at once and reads their answers: one round trip.
  // At the first that fails, throws (the ones after it did not run).
  std::vector<Result> pipeline(const std::vector<Statement>& statements,
                               std::optional<Clock::time_point> deadline = std::nullopt);

  // Runs a query whose rows are handed to `row` one at a time, without
  // holding the whole answer in memory (a snapshot of a million jobs).
  void each_row(const std::string& sql, const Params& params,
                const std::function<void(const Result& row)>& row);

  bool broken() const { return broken_; }

 private:
  void send(const Statement& statement);
  void flush(std::optional<Clock::time_point> deadline);
  pg_result* next_result(std::optional<Clock::time_point> deadline);
  void wait(bool for_writing, std::optional<Clock::time_point> deadline);
  [[noreturn]] void fail(const std::string& what, pg_result* result = nullptr);
  // A statement's error while more of the answer is still to read: the
  // first is kept in `failed`, to throw once the answer was read; a lost
  // connection throws at once.
  void keep_failure(pg_result* result, std::optional<Error>& failed);

  pg_conn* connection_ = nullptr;
  bool broken_ = false;
};

// `url` with any password replaced by "***", for messages and logs.
std::string redacted(const std::string& url);

}  // namespace ferry::store::pg
