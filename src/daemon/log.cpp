#include "daemon/log.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

namespace ferry::daemon {
namespace {

std::atomic<LogFormat> current_format{LogFormat::text};

std::string_view level_name(Level level) {
  switch (level) {
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
    default:
      return "info";
  }
}

// How many bytes of `text` from `at` make one valid UTF-8 character of two
// or more bytes (RFC 3629: no overlong forms, no surrogates, nothing past
// U+10FFFF); 0 when they do not.
std::size_t multibyte_length(std::string_view text, std::size_t at) {
  auto byte = [&](std::size_t i) {
    return at + i < text.size() ? static_cast<unsigned char>(text[at + i]) : 0u;
  };
  auto continuation = [&](std::size_t i, unsigned low = 0x80, unsigned high = 0xBF) {
    return byte(i) >= low && byte(i) <= high;
  };
  unsigned lead = byte(0);
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    unsigned low = lead == 0xE0 ? 0xA0 : 0x80, high = lead == 0xED ? 0x9F : 0xBF;
    return continuation(1, low, high) && continuation(2) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    unsigned low = lead == 0xF0 ? 0x90 : 0x80, high = lead == 0xF4 ? 0x8F : 0xBF;
    return continuation(1, low, high) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

// `text` as the inside of a JSON string: valid UTF-8, control characters
// escaped.
void append_json_string(std::string& out, std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      std::size_t length = multibyte_length(text, i);
      if (length == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
        ++i;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
}

std::string utc_time(std::chrono::system_clock::time_point time) {
  auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  std::time_t seconds = static_cast<std::time_t>(since_epoch.count() / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     since_epoch.count() % 1000);
}

}  // namespace

void set_log_format(LogFormat format) { current_format = format; }

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::text;
  if (name == "json") return LogFormat::json;
  return std::nullopt;
}

std::string render_log_line(LogFormat format, std::chrono::system_clock::time_point time,
                            std::string_view source, Level level, std::string_view message) {
  std::string line;
  if (format == LogFormat::json) {
    line =
        fmt::format(R"({{"time":"{}","level":"{}","source":")", utc_time(time), level_name(level));
    append_json_string(line, source);
    line += R"(","message":")";
    append_json_string(line, message);
    line += "\"}\n";
    return line;
  }
  // A person reads the text as it is; only line breaks would split the event.
  line = fmt::format("ferry {}: ", source);
  for (char c : message) {
    if (c == '\n')
      line += "\\n";
    else if (c == '\r')
      line += "\\r";
    else
      line += c;
  }
  line += '\n';
  return line;
}

void log(std::string_view source, std::string_view message, Level level) {
  std::string line = render_log_line(current_format.load(), std::chrono::system_clock::now(),
                                     source, level, message);
  // One write, so a line is never mixed with another thread's; a short
  // write (a pipe nearly full) goes on where it stopped.
  for (std::size_t written = 0; written < line.size();) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to log to: the event is lost, the process goes on
    written += static_cast<std::size_t>(n);
  }
}

}  // namespace ferry::daemon
