// Output is bytes; the API carries UTF-8 text. The rule, used by every
// worker and by the server for what workers report (docs/api.md):
//
// - each byte that does not begin a valid UTF-8 sequence (including
//   overlong forms, surrogates and anything above U+10FFFF) becomes U+FFFD,
//   and so does NUL, which many readers cannot hold;
// - a tail keeps the last `limit` bytes of that text, cut forward to the
//   next character boundary, so it never starts inside a character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ferry::server {

std::string output_text(std::string_view bytes);

// The last `limit` bytes of valid UTF-8 `text`, on a character boundary.
std::string_view text_tail(std::string_view text, std::size_t limit);
// The first `limit` bytes, likewise.
std::string_view text_head(std::string_view text, std::size_t limit);

}  // namespace ferry::server
