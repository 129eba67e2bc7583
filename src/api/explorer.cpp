// GET /explorer and /explorer/{file}: the admin web explorer (explorer/ in the source tree, compiled in
// by src/api/embed.cmake). The page holds no secret, so it is open like the SDK files; everything it
// shows comes from the API with the admin token the user types in (or none, with auth off).
//
// Every name and value the page shows was written by a sandbox, so the page is built to be safe even if
// its own code slipped: the policy below allows scripts and styles from this origin only (no inline
// script, no eval), no other origin at all, images from this origin, blob: and data: (previews), and
// Trusted Types with no policy, so assigning a string to innerHTML (or any other HTML sink) throws
// instead of parsing markup. The page may not be framed (clickjacking), and no type is sniffed.
#include "api/api.h"
#include "api/embedded_files.h"
#include "util/error.h"

namespace era::api {
namespace {

constexpr const char* kPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

const char* content_type(std::string_view name) {
  if (ends_with(name, ".html")) return "text/html; charset=utf-8";
  if (ends_with(name, ".js")) return "text/javascript; charset=utf-8";
  if (ends_with(name, ".css")) return "text/css; charset=utf-8";
  if (ends_with(name, ".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

void serve(http::Ctx& c, std::string_view name) {
  // The same headers on every answer, errors too: a browser applies them to whatever it renders.
  c.res.set_header("Content-Security-Policy", kPolicy);
  c.res.set_header("X-Content-Type-Options", "nosniff");
  c.res.set_header("X-Frame-Options", "DENY");
  c.res.set_header("Referrer-Policy", "no-referrer");
  c.res.set_header("Cross-Origin-Opener-Policy", "same-origin");
  c.res.set_header("Cross-Origin-Resource-Policy", "same-origin");
  const EmbeddedFile* f = find_file(explorer_files(), name);
  if (!f) throw not_found("explorer_file_not_found", "the explorer has no file '" + std::string(name) + "'");
  c.res.status = 200;
  c.res.set_header("Cache-Control", "no-cache");
  c.res.set_content(std::string(f->bytes), content_type(f->name));
}

}  // namespace

void register_explorer(http::Router& router, Services&) {
  router.add("GET", "/explorer", http::Access::open(), [](http::Ctx& c) { serve(c, "index.html"); });
  router.add("GET", "/explorer/", http::Access::open(), [](http::Ctx& c) { serve(c, "index.html"); });
  router.add("GET", "/explorer/{file}", http::Access::open(), [](http::Ctx& c) { serve(c, c.param(0)); });
}

}  // namespace era::api
