#include "server/output_text.hpp"

#include <gtest/gtest.h>

namespace ferry::server {
namespace {

using namespace std::string_literals;
const std::string kReplacement = "\xEF\xBF\xBD";

TEST(OutputText, KeepsValidUtf8AsItIs) {
  std::string text = "plain, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x9A\xA2 and \x7F";
  EXPECT_EQ(output_text(text), text);
}

TEST(OutputText, ReplacesNulAndEachByteThatIsNotUtf8) {
  EXPECT_EQ(output_text("x\0y"s), "x" + kReplacement + "y");
  EXPECT_EQ(output_text("a\xFF"
                        "b"),
            "a" + kReplacement + "b");
  // A truncated sequence: each of its bytes is replaced on its own.
  EXPECT_EQ(output_text("\xE2\x82"), kReplacement + kReplacement);
  // Overlong forms, surrogates, beyond U+10FFFF, lone continuation bytes.
  for (std::string bad : {"\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80"})
    EXPECT_EQ(output_text(bad).find(bad), std::string::npos);
  EXPECT_EQ(output_text("\x80"), kReplacement);
  EXPECT_EQ(output_text(""), "");
}

TEST(OutputText, TailsEndOnACharacterBoundary) {
  std::string text = "ab\xE2\x82\xAC";  // "ab€"
  EXPECT_EQ(text_tail(text, 10), text);
  EXPECT_EQ(text_tail(text, 3), "\xE2\x82\xAC");
  EXPECT_EQ(text_tail(text, 2), "");  // would start inside the €
  EXPECT_EQ(text_tail(text, 4), "b\xE2\x82\xAC");
  EXPECT_EQ(text_head(text, 4), "ab");
  EXPECT_EQ(text_head(text, 5), text);
}

}  // namespace
}  // namespace ferry::server
