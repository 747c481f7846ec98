// What the readers of flow files share (flowfile.cpp, azkaban.cpp): bounds
// on what is read, refusals that name the file and the place, the checks of
// text, YAML and JSON read into JSON values, and ${name} parameters.
#pragma once

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "flowfile/flowfile.hpp"

namespace ferry::flowfile::reading {

namespace json = boost::json;

// Bounds on what is read. A flow file is written by hand: these are far above
// any real one and far below what could exhaust the stack or memory.
constexpr std::size_t kMaxFileBytes = 1024 * 1024;
constexpr int kMaxDepth = 64;                             // nesting of YAML/JSON values
constexpr std::size_t kMaxValues = 100'000;               // aliases count each time used
constexpr std::size_t kMaxStringBytes = 64 * 1024;        // one value after substitution
constexpr std::size_t kMaxTotalBytes = 16 * 1024 * 1024;  // all text, after aliases
constexpr std::size_t kMaxJobs = 10'000;                  // the API's limit per batch
constexpr std::size_t kMaxRefBytes = 128;                 // the API's limit on a ref
constexpr std::size_t kMaxFiles = 10'000;                 // in a directory or a zip
constexpr std::int64_t kMaxBackoffMs = 365LL * 24 * 3600 * 1000;

// A refusal is one line: control characters it quotes are written as escapes.
std::string one_line(std::string_view text);
// Throws the FlowError "SOURCE: WHERE: WHAT" ("" for WHERE: the file).
[[noreturn]] void fail(std::string_view source, std::string_view where, std::string_view what);
// Text is checked before any parser sees it: bounded, no NUL, valid UTF-8.
void check_text(std::string_view text, std::string_view source);
// YAML as JSON values, bounded; `typed`: plain scalars become numbers,
// booleans and null where they read as such.
json::value yaml_to_json(std::string_view text, std::string_view source, bool typed);
json::value parse_json(std::string_view text, std::string_view source);
// A parameter's value as text: a string as it is, null as "", else its JSON.
std::string text_of(const json::value& value);

// `${name}` parameters. A flow's values may use parameters of their own and of
// every enclosing flow (the nearest definition wins); overrides win over all.
// A value is resolved where it is used (late binding, as Azkaban does), each
// parameter once per scope.
class Scope {
 public:
  Scope(const Scope* parent, const Params* overrides) : parent_(parent), overrides_(overrides) {}

  void define(const std::string& name, std::string value) { raw_[name] = std::move(value); }

  // Replaces every ${name} in `text`. Throws std::invalid_argument with the
  // reason, which the caller places.
  std::string substitute(std::string_view text) const {
    std::vector<std::string> chain;
    return substitute(text, chain);
  }

 private:
  std::string substitute(std::string_view text, std::vector<std::string>& chain) const {
    std::string out;
    std::size_t at = 0;
    while (true) {
      std::size_t open = text.find("${", at);
      if (open == std::string_view::npos) break;
      std::size_t close = text.find('}', open + 2);
      if (close == std::string_view::npos)
        throw std::invalid_argument(fmt::format("'${{' at offset {} has no closing '}}'", open));
      out.append(text.substr(at, open - at));
      out += resolve(std::string(text.substr(open + 2, close - open - 2)), chain);
      if (out.size() > kMaxStringBytes)
        throw std::invalid_argument(fmt::format(
            "is longer than {} bytes once parameters are substituted", kMaxStringBytes));
      at = close + 1;
    }
    out.append(text.substr(at));
    if (out.size() > kMaxStringBytes)
      throw std::invalid_argument(
          fmt::format("is longer than {} bytes once parameters are substituted", kMaxStringBytes));
    return out;
  }

  std::string resolve(const std::string& name, std::vector<std::string>& chain) const {
    if (overrides_) {
      auto given = overrides_->find(name);
      if (given != overrides_->end()) return given->second;
    }
    auto known = resolved_.find(name);
    if (known != resolved_.end()) return known->second;
    // The nearest definition, resolved in this (the using) scope.
    const std::string* raw = nullptr;
    for (const Scope* scope = this; scope && !raw; scope = scope->parent_) {
      auto found = scope->raw_.find(name);
      if (found != scope->raw_.end()) raw = &found->second;
    }
    std::string used_by = chain.empty() ? "" : fmt::format(" (used by parameter {})", chain.back());
    if (!raw)
      throw std::invalid_argument(fmt::format("unknown parameter ${{{}}}{}", name, used_by));
    if (std::find(chain.begin(), chain.end(), name) != chain.end())
      throw std::invalid_argument(fmt::format("parameter {} refers to itself{}", name, used_by));
    chain.push_back(name);
    std::string value = substitute(*raw, chain);
    chain.pop_back();
    resolved_[name] = value;
    return value;
  }

  const Scope* parent_;
  const Params* overrides_;
  std::map<std::string, std::string> raw_;
  mutable std::map<std::string, std::string> resolved_;
};

// The jobs of an Azkaban Flow 2.0 file (azkaban.cpp), as the API's batch has
// them; a FlowError names the node and the key it refuses.
json::array azkaban_jobs(const json::value& root, std::string_view source, const Params& overrides);

}  // namespace ferry::flowfile::reading
