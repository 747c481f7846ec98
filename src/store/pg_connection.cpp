#include "store/pg_connection.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ferry::store::pg {

// --- Result ----------------------------------------------------------------

void Result::Free::operator()(pg_result* result) const { PQclear(result); }

Result::Result(pg_result* result) : result_(result) {}

int Result::rows() const { return result_ ? PQntuples(result_.get()) : 0; }

bool Result::null(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string_view Result::text(int row, int column) const {
  return {PQgetvalue(result_.get(), row, column),
          static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
}

std::int64_t Result::integer(int row, int column) const {
  if (null(row, column)) return 0;
  return std::strtoll(PQgetvalue(result_.get(), row, column), nullptr, 10);
}

std::optional<std::int64_t> Result::optional_integer(int row, int column) const {
  if (null(row, column)) return std::nullopt;
  return integer(row, column);
}

bool Result::boolean(int row, int column) const { return text(row, column) == "t"; }

std::int64_t Result::affected() const {
  const char* count = result_ ? PQcmdTuples(result_.get()) : "";
  return *count ? std::strtoll(count, nullptr, 10) : 0;
}

// --- Params and Array -------------------------------------------------------

std::vector<const char*> Params::values() const {
  std::vector<const char*> pointers;
  for (std::size_t i = 0; i < values_.size(); ++i)
    pointers.push_back(null_[i] ? nullptr : values_[i].c_str());
  return pointers;
}

Params& Params::add(std::int64_t value) { return add(std::to_string(value)); }

Params& Params::add(std::string value) {
  values_.push_back(std::move(value));
  null_.push_back(false);
  return *this;
}

Params& Params::add(const std::optional<std::int64_t>& value) {
  return value ? add(*value) : add_null();
}

Params& Params::add_null() {
  values_.emplace_back();
  null_.push_back(true);
  return *this;
}

void Array::separate() {
  if (count_++ > 0) text_ += ',';
}

Array& Array::add(std::int64_t value) {
  separate();
  text_ += std::to_string(value);
  return *this;
}

Array& Array::add(std::string_view text) {
  separate();
  // Quoted, with backslash and double quote escaped: any text, "NULL" too.
  text_.reserve(text_.size() + text.size() + 2);
  text_ += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
  return *this;
}

Array& Array::add(const std::optional<std::int64_t>& value) {
  return value ? add(*value) : add_null();
}

Array& Array::add_null() {
  separate();
  text_ += "NULL";
  return *this;
}

// --- Connection -------------------------------------------------------------

namespace {

std::string message_of(PGconn* connection, pg_result* result) {
  std::string message = result ? PQresultErrorMessage(result) : PQerrorMessage(connection);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  // libpq writes "ERROR:  what" and a DETAIL line; one line is enough here.
  if (auto detail = message.find("\nDETAIL:"); detail != std::string::npos) {
    std::string rest = message.substr(detail + 8);
    message = message.substr(0, detail) + " (" + rest.substr(rest.find_first_not_of(' ')) + ")";
  }
  for (const char* prefix : {"ERROR:  ", "FATAL:  "})
    if (message.rfind(prefix, 0) == 0) message.erase(0, std::strlen(prefix));
  return message.empty() ? "the connection to the database failed" : message;
}

}  // namespace

Connection::Connection(const std::string& url, std::chrono::milliseconds connect_timeout,
                       const std::string& setup) {
  // Before the URL: defaults it may override. A dead peer must break the
  // connection within seconds, not after TCP's two hours.
  const char* keywords[] = {
      "keepalives",       "keepalives_idle", "keepalives_interval", "keepalives_count",
      "tcp_user_timeout", "dbname",          "client_encoding",     nullptr};
  const char* values[] = {"1", "5", "2", "3", "10000", url.c_str(), "UTF8", nullptr};
  connection_ = PQconnectStartParams(keywords, values, /*expand_dbname=*/1);
  if (!connection_) throw Error("out of memory", "", true);
  // A constructor that throws runs no destructor: the connection (and its
  // socket) is closed here then, or a standby retrying would leak one a try.
  try {
    auto deadline = Clock::now() + connect_timeout;
    if (PQstatus(connection_) == CONNECTION_BAD)
      fail(fmt::format("cannot connect to {}", redacted(url)));
    for (PostgresPollingStatusType status = PGRES_POLLING_WRITING;;) {
      if (status == PGRES_POLLING_OK) break;
      if (status == PGRES_POLLING_FAILED) {
        std::string why = message_of(connection_, nullptr);
        broken_ = true;
        throw Error(fmt::format("cannot connect to {}: {}", redacted(url), why), "", true);
      }
      try {
        wait(status == PGRES_POLLING_WRITING, deadline);
      } catch (const Error&) {
        throw Error(fmt::format("cannot connect to {}: no answer within {} ms", redacted(url),
                                connect_timeout.count()),
                    "", true);
      }
      status = PQconnectPoll(connection_);
    }
    // Notices ("relation already exists, skipping") are not errors: not printed.
    PQsetNoticeProcessor(
        connection_, [](void*, const char*) {}, nullptr);
    if (PQsetnonblocking(connection_, 1) != 0) fail("cannot make the connection non-blocking");
    if (!setup.empty()) run(setup, {}, deadline + std::chrono::seconds(10));
  } catch (...) {
    PQfinish(connection_);
    throw;
  }
}

Connection::~Connection() { PQfinish(connection_); }

void Connection::keep_failure(pg_result* result, std::optional<Error>& failed) {
  try {
    fail("", result);
  } catch (const Error& error) {
    if (error.connection_lost) throw;
    if (!failed) failed = error;
  }
}

void Connection::fail(const std::string& what, pg_result* result) {
  std::string message = message_of(connection_, result);
  std::string state;
  if (result)
    if (const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE)) state = code;
  if (result) PQclear(result);
  if (PQstatus(connection_) == CONNECTION_BAD) broken_ = true;
  throw Error(what.empty() ? message : what + ": " + message, state, broken_);
}

void Connection::wait(bool for_writing, std::optional<Clock::time_point> deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) {
        broken_ = true;  // an answer may still come: the connection cannot be trusted
        throw Error("the database did not answer in time", "", true);
      }
      timeout = static_cast<int>(std::min<long long>(left.count(), 60'000));
    }
    pollfd descriptor{PQsocket(connection_), static_cast<short>(for_writing ? POLLOUT : POLLIN), 0};
    if (descriptor.fd < 0) {
      broken_ = true;
      throw Error("the connection to the database is closed", "", true);
    }
    int ready = ::poll(&descriptor, 1, timeout);
    if (ready > 0) return;
    if (ready < 0 && errno != EINTR) {
      broken_ = true;
      throw Error(fmt::format("cannot wait for the database: {}", std::strerror(errno)), "", true);
    }
  }
}

void Connection::flush(std::optional<Clock::time_point> deadline) {
  for (;;) {
    int left = PQflush(connection_);
    if (left == 0) return;
    if (left < 0) fail("cannot send to the database");
    // The server may be sending answers while we send: read them meanwhile,
    // or both sides wait for the other (libpq's pipeline rule).
    wait(true, deadline);
    if (!PQconsumeInput(connection_)) fail("cannot read from the database");
  }
}

pg_result* Connection::next_result(std::optional<Clock::time_point> deadline) {
  while (PQisBusy(connection_)) {
    wait(false, deadline);
    if (!PQconsumeInput(connection_)) fail("cannot read from the database");
  }
  return PQgetResult(connection_);
}

void Connection::send(const Statement& statement) {
  if (!PQsendQueryParams(connection_, statement.sql.c_str(),
                         static_cast<int>(statement.params.size()), nullptr,
                         statement.params.values().data(), nullptr, nullptr, 0))
    fail("cannot send to the database");
}

Result Connection::run(const std::string& sql, const Params& params,
                       std::optional<Clock::time_point> deadline) {
  if (broken_) throw Error("the connection to the database is broken", "", true);
  // Without parameters, the simple protocol: several statements may follow
  // one another (SET a; SET b).
  int sent = params.size() == 0
                 ? PQsendQuery(connection_, sql.c_str())
                 : PQsendQueryParams(connection_, sql.c_str(), static_cast<int>(params.size()),
                                     nullptr, params.values().data(), nullptr, nullptr, 0);
  if (!sent) fail("cannot send to the database");
  flush(deadline);
  Result last;
  std::optional<Error> failed;
  while (pg_result* result = next_result(deadline)) {
    ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
      last = Result(result);
      continue;
    }
    try {
      fail("", result);
    } catch (const Error& error) {
      if (!failed) failed = error;
      if (error.connection_lost) throw;
    }
  }
  if (failed) throw *failed;
  return last;
}

std::vector<Result> Connection::pipeline(const std::vector<Statement>& statements,
                                         std::optional<Clock::time_point> deadline) {
  if (broken_) throw Error("the connection to the database is broken", "", true);
  if (!PQenterPipelineMode(connection_)) fail("cannot start a pipeline");
  std::vector<Result> results;
  std::optional<Error> failed;
  try {
    for (const Statement& statement : statements) send(statement);
    if (!PQpipelineSync(connection_)) fail("cannot send to the database");
    flush(deadline);
    // Each statement's answer ends with a null result; the sync's comes last.
    for (std::size_t i = 0; i <= statements.size(); ++i) {
      pg_result* result = next_result(deadline);
      if (!result) fail("the database's answer ended early");
      ExecStatusType status = PQresultStatus(result);
      if (status == PGRES_PIPELINE_SYNC) {
        PQclear(result);
        break;
      }
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        results.emplace_back(result);
      } else if (status == PGRES_PIPELINE_ABORTED) {
        PQclear(result);  // skipped after an earlier failure
      } else {
        keep_failure(result, failed);
      }
      if (pg_result* end = next_result(deadline)) {  // the null that ends this statement's answer
        PQclear(end);
        fail("the database sent more than one answer to a statement");
      }
    }
  } catch (const Error&) {
    broken_ = true;  // mid-pipeline: what the server still sends cannot be matched up
    throw;
  }
  if (!PQexitPipelineMode(connection_)) fail("cannot end a pipeline");
  if (failed) throw *failed;
  return results;
}

void Connection::each_row(const std::string& sql, const Params& params,
                          const std::function<void(const Result& row)>& row) {
  if (broken_) throw Error("the connection to the database is broken", "", true);
  if (!PQsendQueryParams(connection_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                         params.values().data(), nullptr, nullptr, 0))
    fail("cannot send to the database");
  if (!PQsetSingleRowMode(connection_)) fail("cannot read rows one at a time");
  flush(std::nullopt);
  std::optional<Error> failed;
  while (pg_result* result = next_result(std::nullopt)) {
    ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_SINGLE_TUPLE) {
      Result one(result);
      if (!failed) {
        try {
          row(one);
        } catch (const std::exception& error) {
          failed = Error(error.what(), "", false);  // read the rest, then throw
        }
      }
    } else if (status == PGRES_TUPLES_OK) {
      PQclear(result);
    } else {
      keep_failure(result, failed);
    }
  }
  if (failed) throw *failed;
}

std::string redacted(const std::string& url) {
  // postgresql://user:secret@host/db?password=secret -> ...user:***@host/db?password=***
  std::string shown = url;
  if (auto scheme = shown.find("://"); scheme != std::string::npos) {
    auto at = shown.find('@', scheme + 3);
    auto colon = shown.find(':', scheme + 3);
    if (at != std::string::npos && colon < at)
      shown = shown.substr(0, colon + 1) + "***" + shown.substr(at);
  }
  for (auto at = shown.find("password="); at != std::string::npos;
       at = shown.find("password=", at + 1)) {
    auto end = shown.find_first_of("& ", at);
    shown.replace(at + 9, (end == std::string::npos ? shown.size() : end) - at - 9, "***");
  }
  return shown;
}

}  // namespace ferry::store::pg
