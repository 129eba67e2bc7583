// Principal: who is calling, as established by the auth middleware from the bearer token, and what it
// may touch. Every matched route's Ctx carries one (http::Ctx::principal).
//
// - The admin (the admin credential, or anyone while auth is off on a loopback host) may do everything.
// - A session may use exactly the namespaces in its scope (or any, for scope "*"), read-only or
//   read-write, until `expires_at`.
//
// Handlers that decide for themselves whether a request writes (D1 query/exec/batch: the statement,
// not the method, says) must call require_write(principal) before executing anything that writes;
// for every other route the middleware decides by method (see auth/middleware.h).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace era::auth {

enum class Permissions { read, read_write };

const char* to_string(Permissions p);
// "read" or "read_write"; false for anything else.
bool parse_permissions(std::string_view s, Permissions& out);

// A set of namespaces, or every namespace ("*").
struct Scope {
  bool all = false;
  std::set<std::string> namespaces;

  bool contains(std::string_view ns) const { return all || namespaces.count(std::string(ns)) > 0; }
};

struct Principal {
  bool authenticated = false;  // false: nobody (the default until the middleware ran)
  bool admin = false;
  std::string session_id;      // empty for the admin
  Scope scope;
  Permissions permissions = Permissions::read;
  int64_t expires_at = 0;      // unix seconds; 0 for the admin (no expiry)

  static Principal administrator();

  bool may_access(std::string_view ns) const { return admin || (authenticated && scope.contains(ns)); }
  bool may_write() const { return admin || (authenticated && permissions == Permissions::read_write); }
};

// Throws ApiError 403 "read_only_token" unless the principal may write.
void require_write(const Principal& p);
// Throws ApiError 403 "namespace_forbidden" unless the principal may use `ns`.
void require_namespace(const Principal& p, std::string_view ns);

// For listings (resources list and stats): true if `ns` is visible to the principal. Use it to filter
// rows, so a session sees only its own namespaces and the admin sees all.
inline bool visible(const Principal& p, std::string_view ns) { return p.may_access(ns); }
// The same as a set, for stores that filter in their query: nullopt means every namespace (the
// admin, or scope "*"); an unauthenticated principal sees none.
inline std::optional<std::set<std::string>> visible_namespaces(const Principal& p) {
  if (p.admin || (p.authenticated && p.scope.all)) return std::nullopt;
  return p.authenticated ? p.scope.namespaces : std::set<std::string>{};
}

}  // namespace era::auth
