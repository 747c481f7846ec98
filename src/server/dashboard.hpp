// Dashboard — the web pages `ferry server` serves at `/`.
//
// The files of web/ are compiled into the binary (cmake/embed_files.cmake
// writes their bytes into a generated C++ source at build time), so a server
// needs no files beside it and no network. They hold no secret and are open
// without the token: the page asks for the token once and sends it as a
// Bearer header with each API call. Every answer carries headers that let
// the page run only its own scripts and styles and keep it out of frames.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace ferry::server {

struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

struct StaticFile {
  std::string_view body;
  std::string_view etag;  // quoted, as the header carries it
  // Content-Type, ETag, and those of dashboard_headers().
  std::vector<HttpHeader> headers;
};

// "/" and everything under "/ui/": the dashboard's paths.
bool is_dashboard_path(std::string_view path);

// The file served at `path` ("/" is the page, "/ui/NAME" a file of web/),
// or none.
const StaticFile* dashboard_file(std::string_view path);

// The headers of every dashboard answer: Content-Security-Policy (no inline
// script or style, nothing from elsewhere, no framing), X-Frame-Options,
// X-Content-Type-Options, Referrer-Policy, Cache-Control (revalidate: the
// ETag changes with the build).
std::span<const HttpHeader> dashboard_headers();

// What the generated source defines: web/'s files, by path below web/.
struct EmbeddedFile {
  const char* path;  // "index.html", "app.js", "pages/jobs.js"
  const unsigned char* bytes;
  std::size_t size;
  const char* etag;
};
extern const EmbeddedFile kEmbeddedFiles[];
extern const std::size_t kEmbeddedFileCount;

}  // namespace ferry::server
