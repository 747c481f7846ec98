// Strict reading of JSON request bodies, shared by every parser of the API:
// each helper checks one value and throws SpecError naming the field's path
// ("jobs[2].command.argv[0]: must be a string").
#pragma once

#include <boost/container/small_vector.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "server/job_spec.hpp"

namespace ferry::server::json_fields {

namespace json = boost::json;

// Where a value sits in a request ("jobs[2].command.argv"): kept as parts,
// and written out only for an error message, so reading a valid batch of
// thousands of jobs formats no paths. The parts refer to the request's keys
// and to literals: a Path lives no longer than the parse.
class Path {
 public:
  Path() = default;  // the body itself
  Path(const char* key) : Path(std::string_view(key)) {}
  Path(const std::string& key) : Path(std::string_view(key)) {}
  Path(std::string_view key) {
    if (!key.empty()) parts_.push_back({key, kNoIndex});
  }
  std::string str() const;

 private:
  friend Path join(const Path& path, std::string_view key);
  friend Path at(const Path& path, std::size_t index);
  static constexpr std::size_t kNoIndex = ~std::size_t{0};
  struct Part {
    std::string_view key;  // or, when empty,
    std::size_t index;     // an array index
  };
  boost::container::small_vector<Part, 6> parts_;
};

[[noreturn]] void fail(const Path& path, std::string_view problem);
Path join(const Path& path, std::string_view key);
Path at(const Path& path, std::size_t index);

// The body as JSON, or a SpecError saying why not: not JSON, nested deeper
// than kMaxDocumentDepth, or an object with the same key twice. Invalid
// UTF-8 in strings is an error, or with `replace_invalid` is kept for the
// caller to replace (workers' reports of what programs printed).
enum class Utf8 { strict, replace_invalid };
json::value parse_document(std::string_view text, Utf8 utf8 = Utf8::strict);

// A SpecError when `value` nests deeper than kMaxValueDepth.
void check_depth(const json::value& value, const Path& path);

// The fields of one JSON object: taken one by one, and any left unknown is
// an error, so a typo ("retires") is never silently ignored.
class Fields {
 public:
  Fields(const json::value& value, Path path);
  // `key` must outlive the Fields (the callers pass literals).
  const json::value* take(std::string_view key);
  Path path(std::string_view key) const { return join(path_, key); }
  void reject_unknown() const;

 private:
  const json::object* object_;
  Path path_;
  boost::container::small_vector<std::string_view, 16> taken_;  // no allocation per object
};

std::string string_of(const json::value& value, const Path& path, std::size_t max_bytes,
                      bool allow_empty = true);
// Queue names, labels, function and worker names: short, plain, safe in URLs and logs.
std::string name_of(const json::value& value, const Path& path);
int integer_of(const json::value& value, const Path& path, int low, int high);
std::uint64_t id_of(const json::value& value, const Path& path);
// A whole number from 0 up (a count, a duration in microseconds, ...).
std::int64_t count_of(const json::value& value, const Path& path);
bool bool_of(const json::value& value, const Path& path);
// A number of seconds from 0 to a year.
std::chrono::milliseconds seconds_of(const json::value& value, const Path& path);

double seconds(std::chrono::milliseconds duration);
// Seconds as JSON: a whole number when whole (60, not 6E1).
json::value seconds_value(std::chrono::milliseconds duration);

}  // namespace ferry::server::json_fields

namespace ferry::server {
// A document parsed already, as one job (parse_job_spec) or as a batch
// (parse_job_batch).
JobSpec spec_of(const boost::json::value& document, const SpecLimits& limits);
Submission submission_of(const boost::json::value& document, const SpecLimits& limits);
}  // namespace ferry::server
