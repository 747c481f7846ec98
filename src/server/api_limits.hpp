// Limits of the HTTP API that servers, workers and clients must agree on
// (docs/api.md), so that whatever one side accepts, every other can read.
#pragma once

#include <algorithm>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <cstddef>

namespace ferry::server {

// JSON values users give (a call's `args`) and workers return (a `result`)
// nest at most this deep, counting the value itself as 1.
constexpr std::size_t kMaxValueDepth = 32;

// Limits of a worker's report (a completion).
constexpr std::size_t kMaxResultBytes = 1024 * 1024;  // a result, as JSON text
constexpr std::size_t kMaxOutputBytes = 64 * 1024;    // each of stdout and stderr
constexpr std::size_t kMaxReasonBytes = 4096;

// Every reader of the API's JSON accepts this depth: a value as deep as
// allowed plus the API's own objects around it (a job view, an event, a
// lease answer), with room to spare.
constexpr std::size_t kMaxDocumentDepth = 64;

inline boost::json::parse_options api_parse_options() {
  boost::json::parse_options options;
  options.max_depth = kMaxDocumentDepth;
  return options;
}

// How deep a value nests: a scalar is 1, `[1]` is 2.
inline std::size_t value_depth(const boost::json::value& value) {
  std::size_t deepest = 0;
  if (const auto* object = value.if_object())
    for (const auto& field : *object) deepest = std::max(deepest, value_depth(field.value()));
  else if (const auto* array = value.if_array())
    for (const auto& item : *array) deepest = std::max(deepest, value_depth(item));
  else
    return 1;
  return deepest + 1;
}

}  // namespace ferry::server
