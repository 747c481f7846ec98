#include "server/json_fields.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_set>

#include "server/api_limits.hpp"
#include "server/output_text.hpp"

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

// A refusal may quote what a request held (a key, a name): as text, with
// NUL shown as U+FFFD (output_text.hpp), since what() ends at a NUL.
void fail(const Path& path, std::string_view problem) {
  std::string where = path.str();
  throw SpecError(output_text(fmt::format("{}: {}", where.empty() ? "the body" : where, problem)));
}

namespace {

// Builds the value as Boost.JSON's own parser does, and refuses an object
// that holds a key twice: "last one wins" would let `{"command": A,
// "command": B}` run B while a reader that keeps the first sees A.
class StrictHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  explicit StrictHandler(json::storage_ptr storage) : values(std::move(storage)) {}

  json::value_stack values;
  // The key found twice ("" too), once parsing stopped for it.
  std::optional<std::string> duplicate;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    objects_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code&) {
    objects_.pop_back();
    values.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    values.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view part, std::size_t, json::error_code&) {
    key_.append(part.data(), part.size());
    values.push_chars(part);
    return true;
  }
  bool on_key(json::string_view part, std::size_t, json::error_code& error) {
    key_.append(part.data(), part.size());
    if (!objects_.back().add(key_)) {
      duplicate = key_;
      error = json::error::syntax;
      return false;
    }
    key_.clear();
    values.push_key(part);
    return true;
  }
  bool on_string_part(json::string_view part, std::size_t, json::error_code&) {
    values.push_chars(part);
    return true;
  }
  bool on_string(json::string_view part, std::size_t, json::error_code&) {
    values.push_string(part);
    return true;
  }
  bool on_number_part(json::string_view part, json::error_code&) {
    number_.append(part.data(), part.size());
    return true;
  }
  bool on_int64(std::int64_t number, json::string_view, json::error_code&) {
    number_.clear();
    values.push_int64(number);
    return true;
  }
  bool on_uint64(std::uint64_t number, json::string_view, json::error_code&) {
    number_.clear();
    values.push_uint64(number);
    return true;
  }
  bool on_double(double approximate, json::string_view part, json::error_code&) {
    number_.append(part.data(), part.size());
    values.push_double(nearest(number_, approximate));
    number_.clear();
    return true;
  }
  bool on_bool(bool value, json::error_code&) {
    values.push_bool(value);
    return true;
  }
  bool on_null(json::error_code&) {
    values.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  // The keys of one open object: a short list, a set once it grows (so an
  // object of a million keys is not a quadratic scan).
  class Keys {
   public:
    bool add(const std::string& key) {
      if (many_) return many_->insert(key).second;
      if (std::find(few_.begin(), few_.end(), key) != few_.end()) return false;
      few_.push_back(key);
      if (few_.size() > 16) many_.emplace(few_.begin(), few_.end());
      return true;
    }

   private:
    boost::container::small_vector<std::string, 4> few_;
    std::optional<std::unordered_set<std::string>> many_;
  };
  // Boost.JSON 1.81 reads a number to a double near it, not always the
  // nearest, and 0e500 as NaN: what was written back (to_json) could read
  // as another number. std::from_chars gives the nearest. Past the largest
  // double it is infinity, for the readers of values to refuse
  // (check_finite); below the smallest, zero.
  static double nearest(const std::string& text, double approximate) {
    double number = 0;
    auto [end, problem] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (problem == std::errc() && end == text.data() + text.size()) return number;
    bool huge = std::isnan(approximate) || std::abs(approximate) >= 1;
    return std::copysign(huge ? std::numeric_limits<double>::infinity() : 0.0,
                         text.starts_with('-') ? -1.0 : 1.0);
  }

  std::vector<Keys> objects_;
  std::string key_;
  std::string number_;  // the text of the number being read
};

}  // namespace

json::value parse_document(std::string_view text, Utf8 utf8) {
  json::parse_options options = api_parse_options();
  options.allow_invalid_utf8 = utf8 == Utf8::replace_invalid;
  // One arena for the whole document: a batch of thousands of jobs is one
  // allocation pattern instead of thousands of small ones.
  json::basic_parser<StrictHandler> parser(options,
                                           json::make_shared_resource<json::monotonic_resource>());
  json::error_code error;
  std::size_t used = parser.write_some(false, text.data(), text.size(), error);
  if (!error && used < text.size()) error = json::error::extra_data;
  if (parser.handler().duplicate)
    throw SpecError(fmt::format("the body is not valid: an object has the key '{}' twice",
                                output_text(*parser.handler().duplicate)));
  if (error == json::error::too_deep)
    throw SpecError(fmt::format("the body is not valid JSON: it nests deeper than {} levels",
                                kMaxDocumentDepth));
  if (error) throw SpecError(fmt::format("the body is not valid JSON: {}", error.message()));
  return parser.handler().values.release();
}

void check_depth(const json::value& value, const Path& path) {
  if (value_depth(value) > kMaxValueDepth)
    fail(path, fmt::format("must not nest deeper than {} levels", kMaxValueDepth));
}

namespace {
bool all_finite(const json::value& value) {
  if (value.is_double()) return std::isfinite(value.get_double());
  if (const auto* object = value.if_object())
    return std::all_of(object->begin(), object->end(),
                       [](const auto& field) { return all_finite(field.value()); });
  if (const auto* array = value.if_array())
    return std::all_of(array->begin(), array->end(), all_finite);
  return true;
}
}  // namespace

void check_finite(const json::value& value, const Path& path) {
  if (!all_finite(value)) fail(path, "must not hold a number beyond the range of a double");
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

std::int64_t count_of(const json::value& value, const Path& path) {
  if (value.is_int64() && value.as_int64() >= 0) return value.as_int64();
  if (value.is_uint64() && value.as_uint64() <= std::numeric_limits<std::int64_t>::max())
    return static_cast<std::int64_t>(value.as_uint64());
  fail(path, "must be a whole number from 0 up");
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
  if (seconds > 0 && seconds < 0.001) fail(path, "must be 0 or at least 0.001 seconds");
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
