#include "daemon/log.hpp"

#include <gtest/gtest.h>

namespace ferry::daemon {
namespace {

// 2025-11-25T10:00:00.123Z
const auto kTime = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764064800123));

TEST(DaemonLog, TextIsTheMessageAfterTheSource) {
  EXPECT_EQ(render_log_line(LogFormat::text, kTime, "server", Level::info, "listening on x"),
            "ferry server: listening on x\n");
}

TEST(DaemonLog, JsonIsOneObjectWithFixedFields) {
  EXPECT_EQ(render_log_line(LogFormat::json, kTime, "worker", Level::warning, "cannot reach it"),
            R"({"time":"2025-11-25T10:00:00.123Z","level":"warning","source":"worker",)"
            R"("message":"cannot reach it"})"
            "\n");
}

TEST(DaemonLog, AnEventIsOneLineWhateverItsMessage) {
  std::string message = "answered 400: {\"error\":\"x\"}\nsecond\rline\ttab\x01 end";
  std::string text = render_log_line(LogFormat::text, kTime, "worker", Level::info, message);
  std::string json = render_log_line(LogFormat::json, kTime, "worker", Level::error, message);
  for (const std::string& line : {text, json}) {
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
  }
  EXPECT_NE(json.find(R"(answered 400: {\"error\":\"x\"}\nsecond\rline\ttab\u0001 end)"),
            std::string::npos)
      << json;
  EXPECT_NE(text.find(R"(second\rline)"), std::string::npos) << text;
}

TEST(DaemonLog, JsonStringsAreValidUtf8) {
  // Valid characters pass; a stray continuation byte, an overlong form, a
  // surrogate and a cut-off sequence each become U+FFFD.
  std::string message = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x9A\x80|\x80|\xC0\xAF|\xED\xA0\x80|\xE2\x82";
  std::string json = render_log_line(LogFormat::json, kTime, "server", Level::info, message);
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_NE(json.find("\"message\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x9A\x80|" + fffd + "|" + fffd +
                      fffd + "|" + fffd + fffd + fffd + "|" + fffd + fffd + "\""),
            std::string::npos)
      << json;
}

TEST(DaemonLog, FormatsByName) {
  EXPECT_EQ(parse_log_format("json"), LogFormat::json);
  EXPECT_EQ(parse_log_format("text"), LogFormat::text);
  EXPECT_EQ(parse_log_format("JSON"), std::nullopt);
}

}  // namespace
}  // namespace ferry::daemon
