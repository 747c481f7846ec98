// What the fuzz targets check beyond "no crash, no sanitizer finding": a
// property that does not hold aborts, so libFuzzer keeps the input that
// broke it and names the file.
//
// Each target is one LLVMFuzzerTestOneInput. A documented refusal (a
// SpecError, a UsageError) is an answer, not a finding; any other exception
// escapes, and libFuzzer reports it as a crash.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/api_limits.hpp"
#include "server/json_fields.hpp"

namespace ferry::fuzz {

[[noreturn]] inline void broken(std::string_view property, std::string_view detail = {}) {
  std::fprintf(stderr, "\nproperty broken: %.*s\n%.*s\n", static_cast<int>(property.size()),
               property.data(), static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void require(bool holds, std::string_view property, std::string_view detail = {}) {
  if (!holds) broken(property, detail);
}

inline std::string_view text_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The length of the character at the front of `text` when it is valid
// UTF-8, else 0. Decodes to a code point and checks its range, unlike
// output_text's table of byte ranges, so that each checks the other.
inline std::size_t utf8_character(std::string_view text) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  std::size_t length = byte(0) < 0x80             ? 1
                       : (byte(0) & 0xE0) == 0xC0 ? 2
                       : (byte(0) & 0xF0) == 0xE0 ? 3
                       : (byte(0) & 0xF8) == 0xF0 ? 4
                                                  : 0;
  if (length == 0 || text.size() < length) return 0;
  if (length == 1) return 1;
  std::uint32_t code = byte(0) & (0x7F >> length);
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = code << 6 | (byte(i) & 0x3F);
  }
  constexpr std::uint32_t kLowest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kLowest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

inline bool is_utf8(std::string_view text) {
  while (!text.empty()) {
    std::size_t length = utf8_character(text);
    if (length == 0) return false;
    text.remove_prefix(length);
  }
  return true;
}

// Text as the API carries it: valid UTF-8 without NUL.
inline bool is_api_text(std::string_view text) {
  return is_utf8(text) && text.find('\0') == std::string_view::npos;
}

// A refusal says where and what, as text: "jobs[3].command.argv: must not
// be empty". (One cut short, at a NUL, said neither.)
inline void check_refusal(const server::SpecError& refusal) {
  std::string_view message = refusal.what();
  require(message.find(": ") != std::string_view::npos && message.back() != ' ',
          "a refusal says where and what", message);
  require(is_utf8(message), "a refusal is UTF-8 text", message);
}

// `text` read back as every reader of the API reads it (strict UTF-8, no
// key twice, at most kMaxDocumentDepth deep); a broken property if it cannot be.
inline boost::json::value reparsed(std::string_view text, std::string_view what) {
  require(is_utf8(text), what, "is not valid UTF-8");
  try {
    return server::json_fields::parse_document(text);
  } catch (const server::SpecError& error) {
    broken(what, std::string(error.what()) + "\n" + std::string(text.substr(0, 2000)));
  }
}

}  // namespace ferry::fuzz
