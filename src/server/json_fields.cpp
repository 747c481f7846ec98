#include "server/json_fields.hpp"

#include <boost/json/monotonic_resource.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>

namespace ferry::server::json_fields {

namespace {
constexpr double kMaxSeconds = 365.0 * 24 * 3600;
}

std::string Path::str() const {
  std::string text;
  for (const Part& part : parts_) {
    if (part.index != kNoIndex)
      text += fmt::format("[{}]", part.index);
    else
      text += (text.empty() ? "" : ".") + std::string(part.key);
  }
  return text;
}

Path join(const Path& path, std::string_view key) {
  Path child = path;
  child.parts_.push_back({key, Path::kNoIndex});
  return child;
}

Path at(const Path& path, std::size_t index) {
  Path child = path;
  child.parts_.push_back({{}, index});
  return child;
}

void fail(const Path& path, std::string_view problem) {
  std::string where = path.str();
  throw SpecError(fmt::format("{}: {}", where.empty() ? "the body" : where, problem));
}

json::value parse_document(std::string_view text) {
  boost::system::error_code error;
  json::parse_options options;
  options.max_depth = 64;
  // One arena for the whole document: a batch of thousands of jobs is one
  // allocation pattern instead of thousands of small ones.
  json::value value =
      json::parse(text, error, json::make_shared_resource<json::monotonic_resource>(), options);
  if (error) throw SpecError(fmt::format("the body is not valid JSON: {}", error.message()));
  return value;
}

Fields::Fields(const json::value& value, Path path) : path_(std::move(path)) {
  if (!value.is_object()) fail(path_, "must be a JSON object");
  object_ = &value.as_object();
}

const json::value* Fields::take(std::string_view key) {
  taken_.push_back(key);
  return object_->if_contains(key);
}

void Fields::reject_unknown() const {
  for (const auto& field : *object_)
    if (std::find(taken_.begin(), taken_.end(), field.key()) == taken_.end())
      fail(join(path_, field.key()), "is not a known field");
}

std::string string_of(const json::value& value, const Path& path, std::size_t max_bytes,
                      bool allow_empty) {
  if (!value.is_string()) fail(path, "must be a string");
  std::string_view text = value.as_string();
  if (text.size() > max_bytes) fail(path, fmt::format("must be at most {} bytes", max_bytes));
  if (!allow_empty && text.empty()) fail(path, "must not be empty");
  if (text.find('\0') != std::string_view::npos) fail(path, "must not contain a NUL character");
  return std::string(text);
}

std::string name_of(const json::value& value, const Path& path) {
  std::string name = string_of(value, path, 128, false);
  bool plain = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == ':';
  });
  if (!plain) fail(path, "may hold only letters, digits and _ - . :");
  return name;
}

int integer_of(const json::value& value, const Path& path, int low, int high) {
  std::int64_t number = 0;
  if (value.is_int64())
    number = value.as_int64();
  else if (value.is_uint64() && value.as_uint64() <= static_cast<std::uint64_t>(high))
    number = static_cast<std::int64_t>(value.as_uint64());
  else if (value.is_uint64())
    number = high + 1LL;
  else
    fail(path, "must be a whole number");
  if (number < low || number > high) fail(path, fmt::format("must be from {} to {}", low, high));
  return static_cast<int>(number);
}

std::uint64_t id_of(const json::value& value, const Path& path) {
  if (value.is_uint64() && value.as_uint64() > 0) return value.as_uint64();
  if (value.is_int64() && value.as_int64() > 0) return static_cast<std::uint64_t>(value.as_int64());
  fail(path, "must be a positive whole number");
}

bool bool_of(const json::value& value, const Path& path) {
  if (!value.is_bool()) fail(path, "must be true or false");
  return value.as_bool();
}

std::chrono::milliseconds seconds_of(const json::value& value, const Path& path) {
  double seconds = 0;
  if (value.is_int64())
    seconds = static_cast<double>(value.as_int64());
  else if (value.is_uint64())
    seconds = static_cast<double>(value.as_uint64());
  else if (value.is_double())
    seconds = value.as_double();
  else
    fail(path, "must be a number of seconds");
  if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxSeconds)
    fail(path, "must be from 0 seconds to a year");
  return std::chrono::milliseconds(std::llround(seconds * 1000));
}

double seconds(std::chrono::milliseconds duration) {
  return static_cast<double>(duration.count()) / 1000.0;
}

json::value seconds_value(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return duration.count() / 1000;
  return seconds(duration);
}

}  // namespace ferry::server::json_fields
