// GET /api/sdk/{file}: the SDK files a VM host injects (era_storage.py, era_storage.js and its .d.ts).
// Open to anyone: they hold no secret, and the host fetches them before any session exists.
#include "api/api.h"
#include "api/embedded_files.h"
#include "util/error.h"

namespace era::api {
namespace {

const char* content_type(std::string_view name) {
  if (name.size() >= 3 && name.substr(name.size() - 3) == ".py") return "text/x-python; charset=utf-8";
  return "text/javascript; charset=utf-8";  // .js and .d.ts
}

}  // namespace

void register_sdk(http::Router& router, Services&) {
  router.add("GET", "/api/sdk/{file}", http::Access::open(), [](http::Ctx& c) {
    const std::string& name = c.param(0);
    if (const EmbeddedFile* f = find_file(sdk_files(), name)) {
      c.res.status = 200;
      c.res.set_header("Cache-Control", "no-cache");
      c.res.set_content(std::string(f->bytes), content_type(f->name));
      return;
    }
    std::string names;
    for (const auto& f : sdk_files()) names += (names.empty() ? "" : ", ") + std::string(f.name);
    throw not_found("sdk_not_found", "no SDK file '" + name + "' (this build serves: " +
                                         (names.empty() ? "none" : names) + ")");
  });
}

}  // namespace era::api
