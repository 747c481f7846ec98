// The output rule (output_text.hpp), on any bytes:
//
// - output_text gives valid UTF-8 without NUL; it is the identity on such
//   text, and otherwise replaces each byte that begins no valid character,
//   and NUL, by U+FFFD (checked against a decoder written apart);
// - text_tail and text_head of that text keep at most `limit` bytes, never
//   split a character, and drop no more than the character the limit cuts;
// - the text survives a trip through JSON unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_checks.hpp"
#include "server/output_text.hpp"

namespace {

using namespace ferry::server;
using ferry::fuzz::require;

const std::string kReplacement = "\xEF\xBF\xBD";

std::string expected_text(std::string_view bytes) {
  std::string text;
  while (!bytes.empty()) {
    std::size_t length = bytes[0] == '\0' ? 0 : ferry::fuzz::utf8_character(bytes);
    text += length ? bytes.substr(0, length) : kReplacement;
    bytes.remove_prefix(length ? length : 1);
  }
  return text;
}

void check_cuts(const std::string& text, std::size_t limit) {
  std::string_view tail = text_tail(text, limit);
  require(tail.size() <= limit, "a tail within the limit");
  require(text.ends_with(tail) && ferry::fuzz::is_utf8(tail), "a tail ends the text, whole");
  // A longer tail on a boundary would pass the limit: at most 3 bytes of a
  // character are given up.
  require(tail.size() == text.size() || tail.size() + 3 >= limit, "a tail loses < 1 character");
  std::string_view head = text_head(text, limit);
  require(head.size() <= limit, "a head within the limit");
  require(text.starts_with(head) && ferry::fuzz::is_utf8(head), "a head starts the text, whole");
  require(head.size() == text.size() || head.size() + 3 >= limit, "a head loses < 1 character");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  std::size_t limit = input.ConsumeIntegralInRange<std::size_t>(0, 64);
  std::string bytes = input.ConsumeRemainingBytesAsString();

  std::string text = output_text(bytes);
  require(ferry::fuzz::is_api_text(text), "output_text gives UTF-8 without NUL");
  require(text == expected_text(bytes), "output_text replaces each bad byte", text);
  if (ferry::fuzz::is_api_text(bytes)) require(text == bytes, "output_text keeps valid text");
  require(output_text(text) == text, "output_text is idempotent");

  check_cuts(text, limit);
  check_cuts(text, text.size());
  if (!text.empty()) check_cuts(text, text.size() - 1);

  std::string json = boost::json::serialize(boost::json::value(text));
  require(ferry::fuzz::reparsed(json, "text as JSON").as_string() == text,
          "text survives JSON unchanged");
  return 0;
}
