// The log of a long-running ferry process (`ferry server`, `ferry worker`):
// one line per event on stderr, for a person or for a log shipper.
//
// As text (the default), an event is "ferry server: MESSAGE", which a
// terminal and the journal show as they are. As JSON (`--log-format json`),
// it is one object per line with fixed fields:
//
//   {"time":"2025-11-25T10:00:00.123Z","level":"info","source":"server","message":"stopping"}
//
// Either way an event is exactly one line: a line break inside a message is
// written as the two characters "\n", JSON strings are valid UTF-8 (a byte
// that begins no UTF-8 character becomes U+FFFD), and each line goes out in
// one write(2), so lines written by several threads never interleave.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::daemon {

enum class LogFormat { text, json };
enum class Level { info, warning, error };

// For the whole process; text until set.
void set_log_format(LogFormat format);
// "text" or "json"; nothing for any other name.
std::optional<LogFormat> parse_log_format(std::string_view name);

// Writes one event of `source` ("server", "worker") to stderr.
void log(std::string_view source, std::string_view message, Level level = Level::info);

// The line log() writes, its final newline included (for tests).
std::string render_log_line(LogFormat format, std::chrono::system_clock::time_point time,
                            std::string_view source, Level level, std::string_view message);

}  // namespace ferry::daemon
