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

[[noreturn]] void fail(const std::string& path, std::string_view problem);
std::string join(const std::string& path, std::string_view key);
std::string at(const std::string& path, std::size_t index);

// The body as JSON, or a SpecError saying why not.
json::value parse_document(std::string_view text);

// The fields of one JSON object: taken one by one, and any left unknown is
// an error, so a typo ("retires") is never silently ignored.
class Fields {
 public:
  Fields(const json::value& value, std::string path);
  // `key` must outlive the Fields (the callers pass literals).
  const json::value* take(std::string_view key);
  std::string path(std::string_view key) const { return join(path_, key); }
  void reject_unknown() const;

 private:
  const json::object* object_;
  std::string path_;
  boost::container::small_vector<std::string_view, 16> taken_;  // no allocation per object
};

std::string string_of(const json::value& value, const std::string& path, std::size_t max_bytes,
                      bool allow_empty = true);
// Queue names, labels, function and worker names: short, plain, safe in URLs and logs.
std::string name_of(const json::value& value, const std::string& path);
int integer_of(const json::value& value, const std::string& path, int low, int high);
std::uint64_t id_of(const json::value& value, const std::string& path);
bool bool_of(const json::value& value, const std::string& path);
// A number of seconds from 0 to a year.
std::chrono::milliseconds seconds_of(const json::value& value, const std::string& path);

double seconds(std::chrono::milliseconds duration);
// Seconds as JSON: a whole number when whole (60, not 6E1).
json::value seconds_value(std::chrono::milliseconds duration);

}  // namespace ferry::server::json_fields
