// Sessions over HTTP (the admin's surface; auth/middleware.h says who may call what):
//   POST   /api/sessions        create one and get its token and the env a sandbox needs
//   GET    /api/sessions        list live sessions (no tokens)
//   GET    /api/sessions/{id}   one session (also for that session's own token)
//   DELETE /api/sessions/{id}   end it: its token is refused from the next call on, and its working
//                               directory (POST /api/sessions/{id}/run) is deleted
#include <openssl/rand.h>

#include <cstdlib>

#include "api/api.h"
#include "auth/token.h"
#include "ns/names.h"
#include "runner/runner.h"
#include "util/clock.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

constexpr size_t kMaxBody = 256 * 1024;
constexpr size_t kMaxNamespaces = 1000;
constexpr size_t kMaxMetadataBytes = 4096;

std::string new_session_id() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw ApiError(500, "internal_error", "no randomness for a session id");
  return "ses_" + enc::hex(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

void check_session_id(const std::string& id) {
  if (!auth::is_valid_session_id(id))
    throw bad_request("invalid_session_id", "a session id is 1 to 128 of A-Z a-z 0-9 _ . -");
}

SessionRecord parse_create(const json& body, const Config& config, int64_t now) {
  static const char* kFields[] = {"language", "session_id", "namespaces", "permissions", "ttl_seconds", "metadata"};
  for (const auto& [k, _] : body.items()) {
    bool known = false;
    for (const char* f : kFields) known = known || k == f;
    if (!known)
      throw bad_request("unknown_field", "unknown field '" + k +
                                             "': a session takes language, session_id, namespaces, permissions, "
                                             "ttl_seconds, metadata");
  }
  auto present = [&](const char* f) { return body.contains(f) && !body[f].is_null(); };
  SessionRecord s;
  s.language = "python";
  if (present("language")) {
    const json& l = body["language"];
    if (!l.is_string()) throw bad_request("invalid_language", "language must be a string");
    const std::string& v = l.get_ref<const std::string&>();
    if (v == "python") s.language = "python";
    else if (v == "javascript" || v == "node") s.language = "javascript";
    else throw bad_request("invalid_language", "unknown language '" + v + "': use python, javascript or node");
  }
  if (present("session_id")) {
    if (!body["session_id"].is_string()) throw bad_request("invalid_session_id", "session_id must be a string");
    s.id = body["session_id"].get<std::string>();
    check_session_id(s.id);
  } else {
    s.id = new_session_id();
  }
  s.all_namespaces = true;  // the guide creates sessions with a language only; they may use any namespace
  if (present("namespaces")) {
    const json& n = body["namespaces"];
    if (n.is_string() && n.get_ref<const std::string&>() == "*") {
      s.all_namespaces = true;
    } else if (n.is_array()) {
      if (n.empty() || n.size() > kMaxNamespaces)
        throw bad_request("invalid_namespaces", "namespaces must list 1 to 1000 namespaces, or be \"*\"");
      std::set<std::string> names;
      for (const auto& e : n) {
        if (!e.is_string()) throw bad_request("invalid_namespaces", "namespaces must be strings");
        ns::check_namespace(e.get_ref<const std::string&>());
        names.insert(e.get<std::string>());
      }
      s.all_namespaces = false;
      s.namespaces.assign(names.begin(), names.end());
    } else {
      throw bad_request("invalid_namespaces", "namespaces must be an array of namespaces or \"*\"");
    }
  }
  s.permissions = "read_write";
  if (present("permissions")) {
    auth::Permissions p;
    if (!body["permissions"].is_string() || !auth::parse_permissions(body["permissions"].get<std::string>(), p))
      throw bad_request("invalid_permissions", "permissions must be \"read\" or \"read_write\"");
    s.permissions = auth::to_string(p);
  }
  int64_t ttl = config.default_ttl;
  if (present("ttl_seconds")) {
    const json& t = body["ttl_seconds"];
    if (!t.is_number_integer() || (t.is_number_unsigned() && t.get<uint64_t>() > uint64_t(config.max_ttl)) ||
        t.get<int64_t>() < 1 || t.get<int64_t>() > config.max_ttl)
      throw bad_request("invalid_ttl", "ttl_seconds must be an integer from 1 to " + std::to_string(config.max_ttl));
    ttl = t.get<int64_t>();
  }
  if (present("metadata")) {
    if (!body["metadata"].is_object()) throw bad_request("invalid_metadata", "metadata must be a JSON object");
    s.metadata = body["metadata"].dump();
    if (s.metadata.size() > kMaxMetadataBytes)
      throw too_large("metadata_too_large", "metadata too large: at most 4096 bytes of serialized JSON");
  }
  s.created_at = now;
  s.expires_at = now + ttl;
  return s;
}

json session_json(const SessionRecord& s) {
  return {{"session_id", s.id},
          {"language", s.language},
          {"namespaces", s.all_namespaces ? json("*") : json(s.namespaces)},
          {"permissions", s.permissions},
          {"created_at", s.created_at},
          {"expires_at", s.expires_at},
          {"metadata", s.metadata.empty() ? json(nullptr) : json::parse(s.metadata)}};
}

std::string public_url(const http::Ctx& c, const Config& config) {
  if (!config.public_url.empty()) return config.public_url;
  std::string host = c.req.get_header_value("Host");
  if (host.empty()) host = config.host + ":" + std::to_string(config.port);
  return "http://" + host;
}

int parse_limit(const std::optional<std::string>& s) {
  if (!s) return 100;
  char* end = nullptr;
  long n = std::strtol(s->c_str(), &end, 10);
  if (s->empty() || *end || n < 1 || n > 1000)
    throw bad_request("invalid_limit", "limit must be an integer from 1 to 1000");
  return static_cast<int>(n);
}

}  // namespace

void register_sessions(http::Router& router, Services& services) {
  SessionStore& store = services.backend.sessions();
  auth::Authenticator& auth = services.auth;
  const Config& config = services.config;

  router.add("POST", "/api/sessions", [&](http::Ctx& c) {
    SessionRecord s = parse_create(c.json_body(kMaxBody), config, unix_now());
    store.create(s);
    c.audit.object = s.id;
    const std::string token = auth.mint(auth::claims_for(s));
    json out = session_json(s);
    out["token"] = token;
    out["env"] = {{"ERA_STORAGE_URL", public_url(c, config)}, {"ERA_STORAGE_TOKEN", token}};
    c.send_json(201, out);
  });

  router.add("GET", "/api/sessions", [&](http::Ctx& c) {
    const int limit = parse_limit(c.query("limit"));
    const std::string after = c.query("cursor").value_or("");
    if (!after.empty()) check_session_id(after);
    auto page = store.list(unix_now(), after, limit + 1);
    const bool more = page.size() > size_t(limit);
    if (more) page.pop_back();
    json list = json::array();
    for (const auto& s : page) list.push_back(session_json(s));
    c.ok({{"sessions", std::move(list)}, {"cursor", more ? json(page.back().id) : json(nullptr)}});
  });

  router.add("GET", "/api/sessions/{id}", [&](http::Ctx& c) {
    const std::string& id = c.param(0);
    check_session_id(id);
    auto s = store.get(id, unix_now());
    if (!s) throw not_found("session_not_found", "no live session '" + id + "'");
    c.ok(session_json(*s));
  });

  runner::Runner* runner = services.runner;
  router.add("DELETE", "/api/sessions/{id}", [&, runner](http::Ctx& c) {
    const std::string& id = c.param(0);
    check_session_id(id);
    const bool existed = auth.revoke(id);
    if (runner) runner->remove_session(id);  // its working directory goes with it (after a run in progress)
    c.ok({{"success", true}, {"session_id", id}, {"revoked", true}, {"existed", existed}});
  });
}

}  // namespace era::api
