// Route-level access declarations (http/access.h) and the request-source checks (auth/middleware.h),
// over the real routing table that `serve` builds (api::register_all on a local backend), served in
// process through Router::handle.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "api/api.h"
#include "auth/authenticator.h"
#include "runner/runner.h"
#include "store/local/local_backend.h"
#include "support.h"
#include "util/clock.h"

using namespace era;
using nlohmann::json;

namespace {

struct App {
  test::TempDir tmp;
  Config config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<auth::Authenticator> auth;
  std::unique_ptr<runner::Runner> runner;
  std::unique_ptr<api::Services> services;
  http::Router router;

  App(const std::string& name, bool auth_required, const std::string& public_url = "",
      const std::string& allowed_origins = "")
      : tmp("routes-" + name) {
    config.data_dir = tmp.str();
    config.public_url = public_url;
    config.allowed_origins = allowed_origins;
    backend = std::make_unique<LocalBackend>(LocalOptions{config.data_dir, {}, {}});
    auth::AuthSettings s;
    s.required = auth_required;
    s.secret = "unit-test-secret-unit-test-secret-0123";
    s.admin_token = "the-admin-credential";
    auth = std::make_unique<auth::Authenticator>(s, backend->sessions(), unix_now);
    auth->start();
    runner = std::make_unique<runner::Runner>(runner::options_from(config, "", ""));
    services = std::make_unique<api::Services>(api::Services{config, *backend, *auth, nullptr, runner.get()});
    api::register_all(router, *services);
  }
  ~App() {
    auth->stop();
    backend->close();
  }

  // A stored session and its token.
  std::string session(const std::string& id, const std::string& permissions, std::vector<std::string> namespaces) {
    SessionRecord r;
    r.id = id;
    r.language = "python";
    r.namespaces = std::move(namespaces);
    r.permissions = permissions;
    r.created_at = unix_now();
    r.expires_at = unix_now() + 3600;
    backend->sessions().create(r);
    return auth->mint(auth::claims_for(r));
  }

  struct Reply {
    int status;
    json body;
    std::string code() const { return body.is_object() ? body.value("code", "") : ""; }
  };

  Reply send(const std::string& method, const std::string& target, const http::Headers& headers = {},
             const std::string& body = "", bool from_sandbox = false) {
    http::Request req;
    req.method = method;
    req.target = target;
    req.path = target.substr(0, target.find('?'));
    req.headers = headers;
    req.body = body;
    if (!body.empty()) req.set_header("Content-Length", std::to_string(body.size()));
    http::Response res;
    router.handle(req, res, nullptr, from_sandbox);
    return {res.status, json::parse(res.body, nullptr, false)};
  }
};

// A concrete path for a pattern: the namespace "mine", the key "k", the session "ro".
std::string path_for(const http::RouteInfo& r) {
  std::string out;
  for (size_t i = 1; i <= r.pattern.size();) {
    size_t j = r.pattern.find('/', i);
    if (j == std::string::npos) j = r.pattern.size();
    std::string seg = r.pattern.substr(i, j - i);
    if (seg == "{ns}") seg = "mine";
    else if (seg == "{key...}") seg = "k";
    else if (seg == "{id}") seg = "ro";
    else if (seg == "{file}") seg = "era_storage.py";
    out += "/" + seg;
    i = j + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("every route declares its access, and only GET and HEAD routes are declared reads") {
  App app("declared", true);
  auto table = app.router.table();
  CHECK(table.size() >= 19);
  bool has_run = false;
  for (const auto& r : table) {
    INFO(r.method << " " << r.pattern);
    CHECK(r.access.declared());
    if (r.access.op == http::Access::Op::read) CHECK((r.method == "GET" || r.method == "HEAD"));
    if (std::find(r.param_names.begin(), r.param_names.end(), "ns") != r.param_names.end())
      CHECK((r.access.who == http::Access::Who::in_namespace && r.access.param == "ns"));
    has_run = has_run || r.pattern == "/api/sessions/{id}/run";
  }
  CHECK(has_run);
}

TEST_CASE("a read-only token is refused on every writing route, before anything runs") {
  App app("readonly", true);
  const std::string token = app.session("ro", "read", {"mine"});
  const http::Headers h{{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
  int writing = 0;
  for (const auto& r : app.router.table()) {
    INFO(r.method << " " << r.pattern);
    const std::string path = path_for(r);
    if (r.access.op == http::Access::Op::write) {
      ++writing;
      auto reply = app.send(r.method, path, h, "{}");
      CHECK(reply.status == 403);
      CHECK((reply.code() == "read_only_token" || reply.code() == "admin_required"));
    } else if (r.access.op == http::Access::Op::statement) {
      // POST, yet a read unless the statement writes: a write is refused by the store.
      const std::string body = r.pattern.find("/batch") != std::string::npos
                                   ? R"j({"statements":[{"sql":"CREATE TABLE t (a)"}]})j"
                                   : R"j({"sql":"CREATE TABLE t (a)"})j";
      auto reply = app.send(r.method, path, h, body);
      CHECK(reply.status == 403);
      CHECK(reply.code() == "read_only_token");
      auto read = app.send(r.method, path, h,
                           r.pattern.find("/batch") != std::string::npos ? R"j({"statements":[{"sql":"SELECT 1"}]})j"
                                                                         : R"j({"sql":"SELECT 1"})j");
      CHECK(read.status == 200);
    }
  }
  CHECK(writing >= 8);
  CHECK(app.backend->d1().tables("mine").empty());
  CHECK_FALSE(app.backend->kv().get("mine", "k").has_value());
}

TEST_CASE("a token is held to its namespaces and its own session on every route that names one") {
  App app("scope", true);
  const std::string token = app.session("other", "read_write", {"elsewhere"});
  const http::Headers h{{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
  for (const auto& r : app.router.table()) {
    INFO(r.method << " " << r.pattern);
    auto reply = app.send(r.method, path_for(r), h, "{}");
    switch (r.access.who) {
      case http::Access::Who::in_namespace: CHECK(reply.code() == "namespace_forbidden"); break;
      case http::Access::Who::own_session: CHECK(reply.code() == "session_forbidden"); break;
      case http::Access::Who::admin: CHECK(reply.code() == "admin_required"); break;
      default: break;
    }
  }
}

TEST_CASE("an undeclared route fails closed: install refuses it, and dispatch denies it") {
  http::Router router;
  router.add("POST", "/api/storage/d1/{ns}/new", [](http::Ctx& c) { c.ok({{"ran", true}}); });
  CHECK_THROWS_AS(router.check_declared(), std::logic_error);
  // Behind the auth middleware, even in process.
  App app("undeclared", false);
  app.router.add("POST", "/api/storage/d1/{ns}/new", [](http::Ctx& c) { c.ok({{"ran", true}}); });
  auto reply = app.send("POST", "/api/storage/d1/mine/new");
  CHECK(reply.status == 403);
  CHECK(reply.code() == "access_undeclared");
  // A declaration must name a parameter the pattern has.
  CHECK_THROWS_AS(router.add("GET", "/api/x/{name}", http::Access::in_namespace(http::Access::Op::read), nullptr),
                  std::logic_error);
}

TEST_CASE("Origin: only the proxy's own origin and the allowed ones") {
  App app("origin", false, "", "https://app.example, http://tool.example:8080");
  auto with = [&](const std::string& host, const std::string& origin) {
    return app.send("POST", "/api/sessions", {{"Host", host}, {"Origin", origin}, {"Content-Type", "application/json"}},
                    "{}");
  };
  for (const char* bad : {"null", "http://evil.example", "HTTP://EVIL.EXAMPLE", "http://evil.example:8787",
                          "http://127.0.0.1:9999", "https://127.0.0.1:8787.evil.example", "http://127.0.0.1",
                          "http://app.example", "https://app.example:8443", "file://", ""}) {
    INFO(bad);
    auto r = with("127.0.0.1:8787", bad);
    CHECK(r.status == 403);
    CHECK(r.code() == "origin_forbidden");
  }
  // The proxy's own origin (what the explorer's requests carry), in any case; the allowed ones.
  CHECK(with("127.0.0.1:8787", "http://127.0.0.1:8787").status == 201);
  CHECK(with("localhost:8787", "http://LOCALHOST:8787").status == 201);
  CHECK(with("127.0.0.1:8787", "https://app.example").status == 201);
  CHECK(with("127.0.0.1:8787", "https://app.example:443").status == 201);
  CHECK(with("127.0.0.1:8787", "http://tool.example:8080").status == 201);
  // Open routes too: a page elsewhere learns nothing from the proxy.
  CHECK(app.send("GET", "/healthz", {{"Host", "127.0.0.1"}, {"Origin", "http://evil.example"}}).status == 403);
  CHECK(app.send("GET", "/healthz", {{"Host", "127.0.0.1"}}).status == 200);
}

TEST_CASE("auth off: the Host must be a loopback name or the configured one (DNS rebinding)") {
  App app("host", false, "http://proxy.internal:8787");
  for (const char* bad : {"evil.example", "evil.example:8787", "127.0.0.1.evil.example", "localhost.evil.example",
                          "127.0.0.1.nip.io:8787", "10.0.0.1", "[::2]:8787", "[::1", "a:b:c", "localhost."}) {
    INFO(bad);
    auto r = app.send("POST", "/api/sessions", {{"Host", bad}, {"Content-Type", "application/json"}}, "{}");
    CHECK(r.status == 403);
    CHECK(r.code() == "host_forbidden");
    CHECK(app.send("GET", "/healthz", {{"Host", bad}}).code() == "host_forbidden");
  }
  for (const char* good : {"127.0.0.1:8787", "127.9.8.7", "localhost", "LOCALHOST:1", "[::1]:8787", "[::1]",
                           "proxy.internal:8787"}) {
    INFO(good);
    CHECK(app.send("POST", "/api/sessions", {{"Host", good}, {"Content-Type", "application/json"}}, "{}").status == 201);
  }
  // The Unix socket has no host: what matters there is the session's token.
  CHECK(app.send("GET", "/healthz", {{"Host", "evil.example"}}, "", true).status == 200);
  // With auth on, every caller needs a token anyway: no Host rule.
  App on("host-on", true);
  CHECK(on.send("GET", "/healthz", {{"Host", "evil.example"}}).status == 200);
  CHECK(on.send("POST", "/api/sessions", {{"Host", "evil.example"}, {"Content-Type", "application/json"}}, "{}")
            .code() == "missing_token");
}

TEST_CASE("JSON routes take only Content-Type: application/json (415 otherwise)") {
  App app("ctype", false);
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"POST", "/api/sessions"},
      {"PUT", "/api/storage/kv/mine/k"},
      {"POST", "/api/storage/d1/mine/query"},
      {"POST", "/api/storage/d1/mine/exec"},
      {"POST", "/api/storage/d1/mine/batch"},
      {"POST", "/api/sessions/ro/run"}};
  for (const auto& [method, path] : routes) {
    for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             "application/jsonp", "", "text/json"}) {
      INFO(method << " " << path << " " << type);
      http::Headers h{{"Host", "127.0.0.1"}};
      if (*type) h.emplace("Content-Type", type);
      auto r = app.send(method, path, h, R"j({"sql":"SELECT 1","value":"v"})j");
      CHECK(r.status == 415);
      CHECK(r.code() == "unsupported_media_type");
    }
  }
  CHECK(app.send("PUT", "/api/storage/kv/mine/k", {{"Content-Type", "Application/JSON; charset=utf-8"}},
                 R"j({"value":"v"})j")
            .status == 200);
  CHECK_FALSE(app.send("PUT", "/api/storage/kv/mine/k2", {{"Content-Type", "text/plain"}}, R"j({"value":"v"})j").status ==
              200);
  CHECK_FALSE(app.backend->kv().get("mine", "k2").has_value());
}
