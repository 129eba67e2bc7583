// Router: our own dispatch behind the server (http/server.h), so that every request — whatever its route or
// outcome — goes through one place for the request id, body limits, the JSON error envelope and
// the access log line.
//
// Patterns are matched on the raw (still percent-encoded) path, segment by segment, and each
// parameter is decoded on its own: "/api/storage/kv/{ns}/{key...}" gives ns from one segment and
// key from the rest of the path. Decoding before splitting would let "a%2Fb" in a namespace
// position turn into two segments.
#pragma once

#include <any>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/principal.h"
#include "http/access.h"
#include "http/json_limits.h"
#include "http/message.h"

namespace era::http {

using json = nlohmann::json;

// Everything a handler sees of one request.
class Ctx {
 public:
  Ctx(const Request& request, Response& response, BodyReader* reader)
      : req(request), res(response), reader_(reader) {}

  const Request& req;
  Response& res;
  std::vector<std::string> params;  // decoded path parameters, in pattern order
  std::string request_id;
  std::string route;  // the pattern that matched, for logs
  // True for requests that came in on the Unix socket, i.e. from code in the runner's sandbox: they
  // must always bring a token (auth "off" makes token-less callers the admin, which sandboxed code
  // must never be).
  bool from_sandbox = false;
  // The pattern's parameter names, in order (the matched route's own list; null before routing).
  const std::vector<std::string>* param_names = nullptr;
  // The matched route's access declaration (http/access.h), enforced by the auth middleware.
  const Access* access = nullptr;
  // Who is calling, set by the auth middleware before the handler runs (auth/middleware.h). Handlers
  // that decide themselves whether a request writes call auth::require_write(principal).
  auth::Principal principal;
  // True while the request runs on the server's I/O thread (Router::try_inline): nothing may wait on
  // it. The auth middleware then answers from memory or refuses to go on (NotOnLoop).
  bool on_loop = false;
  // What the route's probe found (Router::add with a Probe), for its handler; empty otherwise.
  std::any prefetched;
  // Run after the handler (or its error) in order, whatever the outcome; must not throw.
  std::vector<std::function<void(Ctx&)>> on_finish;
  // For the audit trail (obs/audit.h), what the route and method cannot tell: a D1 handler sets
  // `wrote` from its statements (a SELECT changes nothing); a handler that creates something with a
  // name of its choosing puts that name in `object`.
  struct AuditNote {
    std::optional<bool> wrote;
    std::string object;
  } audit;

  // The decoded path parameter called `name`, or nullptr if the route has none.
  const std::string* param_named(std::string_view name) const;
  // Request-body bytes read so far (by body(), json_body() or stream_body()).
  uint64_t body_bytes_read() const { return body_bytes_; }

  const std::string& param(size_t i) const { return params.at(i); }
  // A query parameter, or nullopt if absent.
  std::optional<std::string> query(const std::string& name) const;

  // The whole request body, refused with 413 past `limit` bytes (before reading it, when the
  // Content-Length says so).
  std::string body(size_t limit);
  // The body parsed as a JSON object within `limits` (http/json_limits.h): 415 unless the request
  // says Content-Type: application/json (checked before anything is read), 413 past max_bytes
  // (before reading, when the Content-Length says so) or past the value/string limits, 400 if it is
  // not a JSON object or nests too deep.
  json json_body(const JsonLimits& limits);
  // The same with the default depth and value limits and strings up to `limit` bytes.
  json json_body(size_t limit);
  // Streams the body to `sink` in chunks; 413 past `limit` bytes. Returns the byte count.
  // `sink` returning false aborts the read (the handler should then throw).
  uint64_t stream_body(uint64_t limit, const std::function<bool(const char*, size_t)>& sink);
  bool has_body_reader() const { return reader_ != nullptr; }
  // Called by the router after the handler: a body the handler left unread would be parsed as the
  // next request on a kept-alive connection. Up to 32 MiB of it is read and dropped; past that, or
  // after a body was abandoned halfway, or when the client waits for a 100 Continue it was never
  // sent (its body was refused before it came), the connection is closed after this response.
  void settle_body();

  void send_json(int status, const json& body);
  void ok(const json& body) { send_json(200, body); }

 private:
  // Reads and drops the rest of the body when it is at most 32 MiB, else marks the connection to close.
  void drain_rest();

  BodyReader* reader_;
  uint64_t body_bytes_ = 0;
  enum class BodyState { unread, reading, done } body_state_ = BodyState::unread;
};

using Handler = std::function<void(Ctx&)>;
// A route's probe (Router::add): on the I/O thread, says whether the handler can answer from memory
// now, leaving what it found in Ctx::prefetched; must not throw, wait or change anything.
using Probe = std::function<bool(Ctx&)>;

// Thrown by code that would have to wait when Ctx::on_loop is set: the request goes to a worker.
struct NotOnLoop : std::exception {
  const char* what() const noexcept override { return "this request cannot be answered on the I/O thread"; }
};

// Sees every request the router dispatches (metrics, access log, audit: obs/http_observer.h).
// begin() runs before routing, end() once the response is made, whatever the outcome. Neither may
// throw; both run on the request's thread, so they must be cheap.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void begin(Ctx& ctx) = 0;
  // `code`: the stable error code of a failed request, "" otherwise; `seconds`: since dispatch began.
  virtual void end(Ctx& ctx, const std::string& code, double seconds) = 0;
};

// Runs before every matched route's handler; may throw ApiError. Two kinds (Router::use, Router::admit):
// checks, which change nothing and may run more than once for a request (authentication and
// authorization), then admissions, which run exactly once, right before the handler, and may change
// state only once they pass (the rate limiter's charge).
using Middleware = std::function<void(Ctx&)>;

// One row of the routing table, as tests and tools see it.
struct RouteInfo {
  std::string method;
  std::string pattern;
  std::vector<std::string> param_names;
  Access access;
};

class Router {
 public:
  // Adds a route with its access declaration (http/access.h). Throws std::logic_error when the
  // declaration names a path parameter the pattern does not have.
  void add(const std::string& method, const std::string& pattern, Access access, Handler handler);
  // A GET route whose handler can often answer from memory: `probe` says when (see try_inline).
  void add(const std::string& method, const std::string& pattern, Access access, Handler handler, Probe probe);
  // A route without a declaration: install() refuses to start while one is in the table.
  void add(const std::string& method, const std::string& pattern, Handler handler);
  // A check (see Middleware): runs first, in the order added.
  void use(Middleware m) { middleware_.push_back(std::move(m)); }
  // An admission (see Middleware): runs after every check, in the order added.
  void admit(Middleware m) { admissions_.push_back(std::move(m)); }
  // One observer (may be null: then only the access log line is written). Must outlive the router.
  void observe(Observer* observer) { observer_ = observer; }

  // Throws std::logic_error if a route has no access declaration: the server calls it before it
  // serves anything, so an undeclared route can never be served.
  void check_declared() const;

  // Serves one request: the server calls it on a worker thread for each request; tests call it in
  // process (`reader` null: the body is req.body). `from_sandbox`: the request came in on the
  // Unix-socket listener (Ctx::from_sandbox).
  void handle(const Request& req, Response& res, BodyReader* reader = nullptr, bool from_sandbox = false) {
    dispatch(req, res, reader, from_sandbox);
  }
  // For the server's I/O thread, which must never wait. Serves a GET or HEAD request that carries no
  // body when, with Ctx::on_loop set, every check passes (the auth middleware answers from memory or
  // throws NotOnLoop; any refusal counts as "no": the worker then answers it, audit line and all),
  // then the route's probe says the handler can answer from memory, then every admission passes:
  // the same dispatch as handle() then follows (observer, handler, access log), and it returns true.
  // Otherwise it returns false having changed nothing (no response, no observer call, no rate-limit
  // charge), and the server hands the request to a worker as usual. The checks come before the
  // probe so that a caller refused there never learns, even by timing, what the store has cached.
  bool try_inline(const Request& req, Response& res, BodyReader* reader, bool from_sandbox);
  // Whether any route has a probe (the server skips try_inline otherwise).
  bool has_probes() const { return probes_ > 0; }
  // The routing table, in the order routes were added.
  std::vector<RouteInfo> table() const;

 private:
  struct Segment {
    enum Kind { literal, param, rest } kind;
    std::string text;
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    std::vector<std::string> param_names;
    Access access;
    Handler handler;
    Probe probe;  // empty: never answered on the I/O thread
  };
  static bool match(const Route& r, const std::vector<std::string_view>& raw, std::vector<std::string>& out,
                    std::string_view raw_path);
  void dispatch(const Request& req, Response& res, BodyReader* reader, bool from_sandbox);
  // The route dispatch() would pick (the first of the method, HEAD falling back to GET), with its
  // decoded parameters; null if none.
  const Route* find(const Request& req, std::string_view raw_path, std::vector<std::string>& params) const;
  // The part of dispatch() from the observer on, for a routed ctx whose middleware ran already when
  // `middleware_done`.
  void run(Ctx& ctx, const Route* found, std::chrono::steady_clock::time_point start, bool middleware_done);

  std::vector<Route> routes_;
  std::vector<Middleware> middleware_;  // checks
  std::vector<Middleware> admissions_;
  size_t probes_ = 0;
  Observer* observer_ = nullptr;
};

// Turns the current exception into the JSON error envelope on `res`; returns the stable code.
std::string write_error(Response& res, std::exception_ptr e);
// Marks the response to end its connection (Connection: close).
void mark_close(Response& res);

}  // namespace era::http
