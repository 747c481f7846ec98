#include "server/dashboard.hpp"

#include <map>
#include <string>

namespace ferry::server {
namespace {

std::string_view content_type_of(std::string_view path) {
  auto dot = path.rfind('.');
  std::string_view extension = dot == std::string_view::npos ? "" : path.substr(dot + 1);
  if (extension == "html") return "text/html; charset=utf-8";
  if (extension == "js") return "text/javascript; charset=utf-8";
  if (extension == "css") return "text/css; charset=utf-8";
  if (extension == "svg") return "image/svg+xml";
  if (extension == "png") return "image/png";
  if (extension == "json") return "application/json";
  return "application/octet-stream";
}

// By the path a browser asks for.
const std::map<std::string, StaticFile, std::less<>>& files() {
  static const auto* table = [] {
    auto* made = new std::map<std::string, StaticFile, std::less<>>;
    for (std::size_t i = 0; i < kEmbeddedFileCount; ++i) {
      const EmbeddedFile& file = kEmbeddedFiles[i];
      std::string path = file.path;
      StaticFile served{{reinterpret_cast<const char*>(file.bytes), file.size}, file.etag, {}};
      served.headers = {{"Content-Type", content_type_of(path)}, {"ETag", served.etag}};
      for (const HttpHeader& header : dashboard_headers()) served.headers.push_back(header);
      if (path == "index.html") (*made)["/"] = served;
      (*made)["/ui/" + path] = served;
    }
    return made;
  }();
  return *table;
}

// The page's own files only: no inline script or style (so an injected
// string can never run), connections only back to this server, no framing.
constexpr HttpHeader kHeaders[] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
    {"X-Frame-Options", "DENY"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Opener-Policy", "same-origin"},
    {"Cache-Control", "no-cache"},
};

}  // namespace

bool is_dashboard_path(std::string_view path) { return path == "/" || path.starts_with("/ui/"); }

const StaticFile* dashboard_file(std::string_view path) {
  auto found = files().find(path);
  return found == files().end() ? nullptr : &found->second;
}

std::span<const HttpHeader> dashboard_headers() { return kHeaders; }

}  // namespace ferry::server
