// Access: what a route declares about who may call it, where the route is added. The router keeps the
// declaration with the route (Ctx::access) and the auth middleware enforces it for every route alike
// (auth/middleware.h), so no rule depends on the shape of a URL. A route added without a declaration
// makes Router::install refuse to start: an undeclared route can never be served by accident.
//
//   Access::open()                     no token needed (health, the SDK files)
//   Access::admin()                    the admin only
//   Access::own_session("id", op)      the admin, or the session named by path parameter `id`
//   Access::in_namespace(op)           any valid token whose scope holds the {ns} path parameter
//   Access::listing()                  any valid token; an optional ?namespace= must be in scope, and
//                                      rows are filtered to the caller's namespaces by the handler
//
// `op` is Op::read or Op::write (write needs a read_write token). Op::statement is a read as far as
// the route goes: the handler decides per statement and refuses writes itself (D1's routes: POST,
// yet a query is a read).
#pragma once

#include <string>

namespace era::http {

struct Access {
  enum class Who { undeclared, anyone, admin, own_session, in_namespace, listing };
  enum class Op { read, write, statement };

  Who who = Who::undeclared;
  Op op = Op::write;
  std::string param;  // own_session: the session-id path parameter; in_namespace: the namespace parameter;
                      // listing: the optional namespace query parameter

  static Access open() { return {Who::anyone, Op::read, ""}; }
  static Access admin() { return {Who::admin, Op::write, ""}; }
  static Access own_session(std::string id_param, Op op) { return {Who::own_session, op, std::move(id_param)}; }
  static Access in_namespace(Op op, std::string ns_param = "ns") { return {Who::in_namespace, op, std::move(ns_param)}; }
  static Access listing(std::string ns_query = "namespace") { return {Who::listing, Op::read, std::move(ns_query)}; }

  bool declared() const { return who != Who::undeclared; }
  bool writes() const { return op == Op::write; }
};

const char* to_string(Access::Who who);
const char* to_string(Access::Op op);

}  // namespace era::http
