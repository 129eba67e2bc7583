#include "http/router.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <random>

#include "http/headers.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/log.h"

namespace era::http {
namespace {

std::string new_request_id() {
  static const std::string prefix = [] {
    std::random_device rd;
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", rd());
    return std::string(buf);
  }();
  static std::atomic<uint64_t> counter{0};
  char buf[48];
  const int n = std::snprintf(buf, sizeof buf, "%s-%llu", prefix.c_str(),
                              static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed) + 1));
  return std::string(buf, static_cast<size_t>(n));
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 1;  // skip the leading '/'
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

void mark_close(Response& res) {
  if (res.get_header_value("Connection") != "close") res.set_header("Connection", "close");
}

std::optional<std::string> Ctx::query(const std::string& name) const {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

const std::string* Ctx::param_named(std::string_view name) const {
  if (!param_names) return nullptr;
  for (size_t i = 0; i < param_names->size() && i < params.size(); ++i)
    if ((*param_names)[i] == name) return &params[i];
  return nullptr;
}

std::string Ctx::body(size_t limit) {
  std::string out;
  stream_body(limit, [&](const char* d, size_t n) {
    out.append(d, n);
    return true;
  });
  return out;
}

json Ctx::json_body(const JsonLimits& limits) {
  // A browser may send text/plain, form types or no type across origins without asking first; a JSON
  // route takes only what a script must declare.
  const std::string type = req.get_header_value("Content-Type");
  if (media_type(type) != "application/json")
    throw ApiError(415, "unsupported_media_type",
                   type.empty() ? "this request needs Content-Type: application/json"
                                : "this request needs Content-Type: application/json, not '" + type + "'");
  std::string text = body(limits.max_bytes);
  return parse_json_body(text, limits);
}

json Ctx::json_body(size_t limit) {
  JsonLimits limits;
  limits.max_bytes = limit;
  limits.max_string = limit;
  return json_body(limits);
}

// Bytes of a refused body that are still read (and dropped) before the answer. Most clients send the
// whole body before they read the answer; had the proxy closed the connection instead, they would
// see a broken pipe rather than the 413 or 412. Past this, the connection is closed after the answer.
constexpr uint64_t kDrainLimit = 32ull << 20;
// The largest body a GET, HEAD or OPTIONS request may bring (none reads one).
constexpr uint64_t kMaxBodylessBody = 65536;

uint64_t Ctx::stream_body(uint64_t limit, const std::function<bool(const char*, size_t)>& sink) {
  auto too_large = [&] {
    return ApiError(413, "payload_too_large",
                    "request body too large: the limit for this request is " + std::to_string(limit) + " bytes");
  };
  if (req.has_header("Content-Length")) {
    const std::string cl = req.get_header_value("Content-Length");
    char* end = nullptr;
    unsigned long long n = std::strtoull(cl.c_str(), &end, 10);
    if (cl.empty() || *end) throw ApiError(400, "bad_request", "invalid Content-Length header");
    if (n > limit) {
      drain_rest();
      throw too_large();
    }
  }
  body_state_ = BodyState::reading;
  if (!reader_) {
    body_state_ = BodyState::done;  // the library read it already
    if (req.body.size() > limit) throw too_large();
    body_bytes_ += req.body.size();
    if (!req.body.empty() && !sink(req.body.data(), req.body.size())) mark_close(res);
    return req.body.size();
  }
  uint64_t total = 0;
  bool over = false, aborted = false;
  bool complete = reader_->read([&](const char* d, size_t n) {
    total += n;
    body_bytes_ += n;
    if (total > limit) {
      over = true;
      return total - limit <= kDrainLimit;  // drop the rest, up to a point
    }
    if (!sink(d, n)) {
      aborted = true;
      return false;
    }
    return true;
  });
  if (over) {
    if (complete) body_state_ = BodyState::done;
    else mark_close(res);
    throw too_large();
  }
  if (aborted) {
    mark_close(res);
    return total;
  }
  if (!complete) {
    mark_close(res);
    throw ApiError(400, "incomplete_body", "the request body ended before its declared length");
  }
  body_state_ = BodyState::done;
  return total;
}

void Ctx::drain_rest() {
  body_state_ = BodyState::done;
  if (!reader_) return;
  // A client waiting for 100 Continue sends no body unless invited: the refusal is its answer, and
  // the connection ends after it (whatever the client does next cannot be mistaken for a request).
  if (reader_->awaiting_continue()) return mark_close(res);
  const bool chunked = req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
  const uint64_t declared = std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10);
  if (!chunked && declared == 0) return;  // no body at all
  if (!chunked && declared > kDrainLimit) return mark_close(res);
  uint64_t total = 0;
  bool complete = reader_->read([&](const char*, size_t n) {
    total += n;
    return total <= kDrainLimit;
  });
  if (!complete) mark_close(res);
}

void Ctx::settle_body() {
  if (!reader_ || body_state_ == BodyState::done) return;
  if (res.get_header_value("Connection") == "close") return;  // the connection ends anyway: nothing to drain
  if (body_state_ == BodyState::reading) return mark_close(res);  // stopped halfway
  drain_rest();
}

void Ctx::send_json(int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

std::string write_error(Response& res, std::exception_ptr e) {
  int status = 500;
  std::string code = "internal_error", message = "internal error";
  try {
    std::rethrow_exception(e);
  } catch (const ApiError& err) {
    status = err.status();
    code = err.code();
    message = err.what();
    if (!err.header.first.empty()) res.set_header(err.header.first, err.header.second);
    // What the error means, as HTTP says it.
    if (err.retry_after_s) res.set_header("Retry-After", std::to_string(*err.retry_after_s));
    if (err.unsatisfiable_size && status == 416)
      res.set_header("Content-Range", "bytes */" + std::to_string(*err.unsatisfiable_size));
  } catch (const std::exception& err) {
    log::error(std::string("unhandled exception: ") + err.what());
  } catch (...) {
    log::error("unhandled non-standard exception");
  }
  json body = {{"success", false}, {"error", message}, {"code", code}};
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  return code;
}

const char* to_string(Access::Who who) {
  switch (who) {
    case Access::Who::undeclared: return "undeclared";
    case Access::Who::anyone: return "anyone";
    case Access::Who::admin: return "admin";
    case Access::Who::own_session: return "own_session";
    case Access::Who::in_namespace: return "in_namespace";
    case Access::Who::listing: return "listing";
  }
  return "?";
}

const char* to_string(Access::Op op) {
  switch (op) {
    case Access::Op::read: return "read";
    case Access::Op::write: return "write";
    case Access::Op::statement: return "statement";
  }
  return "?";
}

void Router::add(const std::string& method, const std::string& pattern, Handler handler) {
  add(method, pattern, Access{}, std::move(handler));
}

std::vector<RouteInfo> Router::table() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back({r.method, r.pattern, r.param_names, r.access});
  return out;
}

void Router::add(const std::string& method, const std::string& pattern, Access access, Handler handler,
                 Probe probe) {
  if (probe && method != "GET") throw std::logic_error("route " + method + " " + pattern + ": only GET routes have probes");
  add(method, pattern, std::move(access), std::move(handler));
  if (probe) ++probes_;
  routes_.back().probe = std::move(probe);
}

void Router::add(const std::string& method, const std::string& pattern, Access access, Handler handler) {
  Route r{method, pattern, {}, {}, std::move(access), std::move(handler), {}};
  for (auto seg : split_path(pattern)) {
    if (seg.size() > 5 && seg.front() == '{' && seg.substr(seg.size() - 4) == "...}")
      r.segments.push_back({Segment::rest, std::string(seg.substr(1, seg.size() - 5))});
    else if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}')
      r.segments.push_back({Segment::param, std::string(seg.substr(1, seg.size() - 2))});
    else
      r.segments.push_back({Segment::literal, std::string(seg)});
  }
  for (const auto& seg : r.segments)
    if (seg.kind != Segment::literal) r.param_names.push_back(seg.text);
  const bool path_param = r.access.who == Access::Who::own_session || r.access.who == Access::Who::in_namespace;
  if (path_param && std::find(r.param_names.begin(), r.param_names.end(), r.access.param) == r.param_names.end())
    throw std::logic_error("route " + method + " " + pattern + " declares access by path parameter '" +
                           r.access.param + "', which the pattern does not have");
  routes_.push_back(std::move(r));
}

bool Router::match(const Route& r, const std::vector<std::string_view>& raw, std::vector<std::string>& out,
                   std::string_view raw_path) {
  out.clear();
  for (size_t i = 0; i < r.segments.size(); ++i) {
    const Segment& s = r.segments[i];
    if (s.kind == Segment::rest) {
      if (i >= raw.size()) return false;
      // Everything from this segment to the end of the path, slashes included.
      size_t offset = static_cast<size_t>(raw[i].data() - raw_path.data());
      std::string_view rest = raw_path.substr(offset);
      if (rest.empty()) return false;
      auto decoded = enc::percent_decode(rest);
      if (!decoded) throw ApiError(400, "bad_path", "malformed percent-encoding in the path");
      out.push_back(std::move(*decoded));
      return true;
    }
    if (i >= raw.size()) return false;
    if (s.kind == Segment::literal) {
      if (raw[i] != s.text) return false;
    } else {
      if (raw[i].empty()) return false;
      auto decoded = enc::percent_decode(raw[i]);
      if (!decoded) throw ApiError(400, "bad_path", "malformed percent-encoding in the path");
      out.push_back(std::move(*decoded));
    }
  }
  return raw.size() == r.segments.size();
}

const Router::Route* Router::find(const Request& req, std::string_view raw_path, std::vector<std::string>& params) const {
  auto raw = split_path(raw_path);
  auto by = [&](const std::string& method) -> const Route* {
    for (const auto& r : routes_)
      if (r.method == method && match(r, raw, params, raw_path)) return &r;
    return nullptr;
  };
  const Route* found = by(req.method);
  if (!found && req.method == "HEAD") found = by("GET");
  return found;
}

void Router::dispatch(const Request& req, Response& res, BodyReader* reader, bool from_sandbox) {
  const auto start = std::chrono::steady_clock::now();
  Ctx ctx(req, res, reader);
  ctx.from_sandbox = from_sandbox;
  run(ctx, nullptr, start, false);
}

bool Router::try_inline(const Request& req, Response& res, BodyReader* reader, bool from_sandbox) {
  if (!probes_ || (req.method != "GET" && req.method != "HEAD")) return false;
  if (req.has_header("Transfer-Encoding") || std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > 0)
    return false;  // a body to read or drain: a worker's job
  const auto start = std::chrono::steady_clock::now();
  std::string_view target(req.target);
  std::string_view raw_path = target.substr(0, target.find('?'));
  if (raw_path.empty() || raw_path.front() != '/') return false;
  std::vector<std::string> params;
  const Route* found = nullptr;
  try {
    found = find(req, raw_path, params);  // throws for a malformed path: the worker answers the 400
  } catch (...) {
    return false;
  }
  if (!found || !found->probe) return false;
  Ctx ctx(req, res, reader);
  ctx.from_sandbox = from_sandbox;
  ctx.on_loop = true;
  ctx.params = std::move(params);
  ctx.route = found->pattern;
  ctx.param_names = &found->param_names;
  ctx.access = &found->access;
  try {
    for (const auto& m : middleware_) m(ctx);
    if (!found->probe(ctx)) return false;
    for (const auto& a : admissions_) a(ctx);
  } catch (...) {
    return false;  // NotOnLoop, or a refusal: the worker answers it from the start
  }
  run(ctx, found, start, true);
  return true;
}

void Router::run(Ctx& ctx, const Route* found, std::chrono::steady_clock::time_point start, bool middleware_done) {
  const Request& req = ctx.req;
  Response& res = ctx.res;
  ctx.request_id = new_request_id();
  res.set_header("X-Request-Id", ctx.request_id);
  if (observer_) observer_->begin(ctx);
  std::string outcome;
  try {
    if (!found) {
      std::string_view target(req.target);
      std::string_view raw_path = target.substr(0, target.find('?'));
      if (raw_path.empty() || raw_path.front() != '/') throw ApiError(400, "bad_path", "the path must start with '/'");
      // A request that reads nothing may still bring a body, which would be drained: not a large one.
      if ((req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") &&
          std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > kMaxBodylessBody) {
        mark_close(res);
        throw ApiError(413, "payload_too_large",
                       "a " + req.method + " request may not carry a body over " + std::to_string(kMaxBodylessBody) +
                           " bytes");
      }
      std::vector<std::string> params;
      found = find(req, raw_path, params);
      if (!found) {
        const auto raw = split_path(raw_path);
        for (const auto& r : routes_)
          if (match(r, raw, params, raw_path))
            throw ApiError(405, "method_not_allowed", "method " + req.method + " is not allowed on this path");
        throw ApiError(404, "not_found", "no such endpoint: " + req.method + " " + std::string(raw_path));
      }
      ctx.params = std::move(params);
      ctx.route = found->pattern;
      ctx.param_names = &found->param_names;
      ctx.access = &found->access;
    }
    if (!middleware_done) {
      for (const auto& m : middleware_) m(ctx);
      for (const auto& a : admissions_) a(ctx);
    }
    found->handler(ctx);
    if (res.status < 0) res.status = 200;
  } catch (...) {
    outcome = write_error(res, std::current_exception());
  }
  for (auto& f : ctx.on_finish) f(ctx);
  ctx.settle_body();
  if (ctx.route.empty()) ctx.route = "-";
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (observer_) return observer_->end(ctx, outcome, secs);
  if (log::level() <= log::Level::info) {
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.3fms", secs * 1000);
    log::info("req=" + ctx.request_id + " " + req.method + " " + ctx.route + " " + std::to_string(res.status) +
              " " + dur + (outcome.empty() ? "" : " code=" + outcome));
  }
}

void Router::check_declared() const {
  std::string undeclared;
  for (const auto& r : routes_)
    if (!r.access.declared()) undeclared += (undeclared.empty() ? "" : ", ") + r.method + " " + r.pattern;
  if (!undeclared.empty())
    throw std::logic_error("routes without an access declaration (http/access.h) are never served: " + undeclared);
}

}  // namespace era::http
