#include "auth/principal.h"

#include "util/error.h"

namespace era::auth {

const char* to_string(Permissions p) { return p == Permissions::read ? "read" : "read_write"; }

bool parse_permissions(std::string_view s, Permissions& out) {
  if (s == "read") out = Permissions::read;
  else if (s == "read_write") out = Permissions::read_write;
  else return false;
  return true;
}

Principal Principal::administrator() {
  Principal p;
  p.authenticated = true;
  p.admin = true;
  p.scope.all = true;
  p.permissions = Permissions::read_write;
  return p;
}

void require_write(const Principal& p) {
  if (!p.may_write())
    throw ApiError(403, "read_only_token", "this session's token is read-only: writes are not allowed");
}

void require_namespace(const Principal& p, std::string_view ns) {
  if (!p.may_access(ns))
    throw ApiError(403, "namespace_forbidden",
                   "namespace '" + std::string(ns) + "' is outside this session's scope");
}

}  // namespace era::auth
