#include "api/bodies.h"

#include <openssl/rand.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "auth/principal.h"
#include "auth/token.h"
#include "ns/names.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era::api {

using json = nlohmann::json;

namespace {

constexpr int64_t kMinTtl = 60;                // KV: the shortest expiration
constexpr size_t kMaxR2MetadataBytes = 8192;   // R2's limit: keys and values together
constexpr size_t kMaxContentType = 256;
constexpr size_t kMaxNamespaces = 1000;        // per session
constexpr size_t kMaxSessionMetadataBytes = 4096;

}  // namespace

// ---- D1

namespace {

SqlValue d1_param(const json& v, size_t i) {
  auto bad = [&](const std::string& why) {
    return bad_request("invalid_param", "params[" + std::to_string(i) + "] " + why);
  };
  switch (v.type()) {
    case json::value_t::null: return nullptr;
    case json::value_t::boolean: return int64_t(v.get<bool>() ? 1 : 0);
    case json::value_t::number_integer: return v.get<int64_t>();
    case json::value_t::number_unsigned:
      if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        throw bad("is beyond SQLite's 64-bit integers (at most 9223372036854775807)");
      return static_cast<int64_t>(v.get<uint64_t>());
    case json::value_t::number_float: return v.get<double>();
    case json::value_t::string: return v.get<std::string>();
    case json::value_t::array: {
      SqlBlob b;
      b.bytes.reserve(v.size());
      for (const auto& e : v) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > 255)
          throw bad("is an array, so must be a BLOB: an array of integers 0 to 255");
        b.bytes.push_back(static_cast<char>(e.get<int>()));
      }
      return b;
    }
    default:
      throw bad("must be null, a boolean, a number, a string or an array of bytes");
  }
}

}  // namespace

SqlStatement d1_statement(const json& body, const char* where) {
  if (!body.is_object()) throw bad_request("invalid_body", std::string(where) + " must be a JSON object");
  for (const auto& [k, _] : body.items())
    if (k != "sql" && k != "params")
      throw bad_request("unknown_field", "unknown field '" + k + "': a statement takes sql and params");
  if (!body.contains("sql") || !body["sql"].is_string())
    throw bad_request("invalid_sql", std::string(where) + ": sql is required and must be a string");
  SqlStatement st;
  st.sql = body["sql"].get<std::string>();
  if (body.contains("params") && !body["params"].is_null()) {
    if (!body["params"].is_array()) throw bad_request("invalid_params", "params must be an array");
    size_t i = 0;
    for (const auto& v : body["params"]) st.params.push_back(d1_param(v, i++));
  }
  return st;
}

std::vector<SqlStatement> d1_batch(const json& body) {
  for (const auto& [k, _] : body.items())
    if (k != "statements") throw bad_request("unknown_field", "unknown field '" + k + "': a batch takes statements");
  if (!body.contains("statements") || !body["statements"].is_array() || body["statements"].empty())
    throw bad_request("invalid_statements", "statements is required: a non-empty array of {sql, params}");
  std::vector<SqlStatement> list;
  for (size_t i = 0; i < body["statements"].size(); ++i)
    list.push_back(d1_statement(body["statements"][i], ("statements[" + std::to_string(i) + "]").c_str()));
  return list;
}

// ---- D1 answers

namespace {

using ojson = nlohmann::ordered_json;

void append_string(std::string& out, std::string_view v) {
  // Printable ASCII without '"' and '\\' is written as is by nlohmann too; anything else goes through it.
  for (unsigned char c : v)
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
      out += ojson(std::string(v)).dump(-1, ' ', false, ojson::error_handler_t::replace);
      return;
    }
  out += '"';
  out.append(v);
  out += '"';
}

void append_int(std::string& out, int64_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void append_real(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  out += ojson(d).dump();
}

void append_value(std::string& out, const SqlValue& v) {
  if (auto n = std::get_if<int64_t>(&v)) append_int(out, *n);
  else if (auto d = std::get_if<double>(&v)) append_real(out, *d);
  else if (auto t = std::get_if<std::string>(&v)) append_string(out, *t);
  else if (auto b = std::get_if<SqlBlob>(&v)) {
    out += '[';
    for (size_t i = 0; i < b->bytes.size(); ++i) {
      if (i) out += ',';
      append_int(out, static_cast<unsigned char>(b->bytes[i]));
    }
    out += ']';
  } else {
    out += "null";
  }
}

}  // namespace

void append_d1_meta(std::string& out, const SqlMeta& m) {
  out += "{\"changes\":";
  append_int(out, m.changes);
  out += ",\"last_row_id\":";
  append_int(out, m.last_row_id);
  out += ",\"duration\":";
  out += ojson(m.duration_ms).dump();  // as a number (null if not finite), exactly as nlohmann writes it
  out += ",\"rows_read\":";
  append_int(out, m.rows_read);
  out += ",\"rows_written\":";
  append_int(out, m.rows_written);
  out += m.changed_db ? ",\"changed_db\":true" : ",\"changed_db\":false";
  out += ",\"size_after\":";
  append_int(out, m.size_after);
  out += ",\"served_by\":\"era-storage-proxy\"}";
}

void append_d1_result(std::string& out, const SqlResult& r) {
  // Each distinct column name in the order of its first appearance, with the index of its last.
  std::vector<std::pair<size_t, size_t>> keys;
  for (size_t i = 0; i < r.columns.size(); ++i) {
    bool repeated = false;
    for (auto& k : keys)
      if (r.columns[k.first] == r.columns[i]) {
        k.second = i;
        repeated = true;
        break;
      }
    if (!repeated) keys.emplace_back(i, i);
  }
  std::vector<std::string> names;  // each key written once, reused for every row
  names.reserve(keys.size());
  for (const auto& k : keys) {
    std::string n;
    append_string(n, r.columns[k.first]);
    names.push_back(std::move(n));
  }
  out += "{\"success\":true,\"results\":[";
  for (size_t row = 0; row < r.rows.size(); ++row) {
    if (row) out += ',';
    out += '{';
    for (size_t k = 0; k < keys.size(); ++k) {
      if (k) out += ',';
      out += names[k];
      out += ':';
      append_value(out, r.rows[row].at(keys[k].second));
    }
    out += '}';
  }
  out += "],\"meta\":";
  append_d1_meta(out, r.meta);
  out += '}';
}

// ---- KV

namespace {

int64_t integer_field(const json& body, const char* name) {
  const json& v = body[name];
  if (!v.is_number_integer()) throw bad_request("invalid_expiration", std::string(name) + " must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    throw bad_request("invalid_expiration", std::string(name) + " is out of range");
  return v.get<int64_t>();
}

}  // namespace

std::string kv_get_answer(KvValue v) {
  constexpr auto replace = json::error_handler_t::replace;
  std::string value = json(std::move(v.value)).dump(-1, ' ', false, replace);
  std::string out;
  out.reserve(value.size() + (v.metadata ? v.metadata->size() : 0) + 64);
  out += '{';
  if (v.expiration) {
    out += "\"expiration\":";
    out += std::to_string(*v.expiration);
    out += ',';
  }
  out += "\"metadata\":";
  // Stored as compact JSON (kv_put); parsed and written again, as the object answer always did.
  out += v.metadata ? json::parse(*v.metadata).dump(-1, ' ', false, replace) : "null";
  out += ",\"value\":";
  out += value;
  out += '}';
  return out;
}

KvValue kv_put(const json& body, int64_t now) {
  for (const auto& [k, _] : body.items())
    if (k != "value" && k != "metadata" && k != "expiration" && k != "expiration_ttl")
      throw bad_request("unknown_field", "unknown field '" + k +
                                             "': a KV write takes value, metadata, expiration, expiration_ttl");
  if (!body.contains("value") || !body["value"].is_string())
    throw bad_request("invalid_value", "value is required and must be a string");
  KvValue v;
  v.value = body["value"].get<std::string>();
  if (v.value.size() > ns::kMaxKvValueBytes)
    throw too_large("value_too_large", "value too large: a KV value is at most 25 MiB (26214400 bytes)");
  if (body.contains("metadata") && !body["metadata"].is_null()) {
    if (!body["metadata"].is_object())
      throw bad_request("invalid_metadata", "metadata must be a JSON object or null");
    v.metadata = body["metadata"].dump();
    if (v.metadata->size() > ns::kMaxKvMetadataBytes)
      throw too_large("metadata_too_large", "metadata too large: at most 1024 bytes of serialized JSON");
  }
  const bool has_exp = body.contains("expiration") && !body["expiration"].is_null();
  const bool has_ttl = body.contains("expiration_ttl") && !body["expiration_ttl"].is_null();
  if (has_exp && has_ttl)
    throw bad_request("invalid_expiration", "give expiration or expiration_ttl, not both");
  if (has_ttl) {
    int64_t ttl = integer_field(body, "expiration_ttl");
    if (ttl < kMinTtl || ttl > INT64_MAX - now)
      throw bad_request("invalid_expiration", "expiration_ttl must be at least 60 seconds");
    v.expiration = now + ttl;
    v.expiration_ttl = ttl;
  } else if (has_exp) {
    int64_t at = integer_field(body, "expiration");
    if (at < now + kMinTtl)
      throw bad_request("invalid_expiration",
                        "expiration must be a unix time at least 60 seconds in the future");
    v.expiration = at;
  }
  return v;
}

// ---- R2

ApiError r2_object_too_large(uint64_t max_object) {
  return too_large("object_too_large", "object too large: the limit is " + std::to_string(max_object) +
                                           " bytes (storage.r2_max_object_size)");
}

// Custom metadata: a JSON object of strings, at most 8192 bytes of keys and values (R2's limit).
std::map<std::string, std::string> r2_metadata(const json& j, const std::string& where) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) throw bad_request("invalid_metadata", where + " must be a JSON object of strings");
  size_t total = 0;
  for (const auto& [k, v] : j.items()) {
    if (k.empty()) throw bad_request("invalid_metadata", where + ": a metadata name must not be empty");
    if (!v.is_string())
      throw bad_request("invalid_metadata", where + ": the value of '" + k + "' must be a string");
    out[k] = v.get<std::string>();
    total += k.size() + out[k].size();
  }
  if (total > kMaxR2MetadataBytes)
    throw too_large("metadata_too_large", "metadata too large: names and values are at most 8192 bytes together");
  return out;
}

std::string r2_content_type(const std::string& v) {
  if (v.empty() || v.size() > kMaxContentType)
    throw bad_request("invalid_content_type", "a content type is 1 to 256 characters");
  for (unsigned char c : v)
    if (c < 0x20 || c > 0x7e) throw bad_request("invalid_content_type", "a content type is printable ASCII");
  return v;
}

R2JsonPut r2_json_put(const json& body, uint64_t max_object) {
  for (const auto& [k, _] : body.items())
    if (k != "content" && k != "metadata" && k != "httpMetadata")
      throw bad_request("unknown_field",
                        "unknown field '" + k + "': an R2 write takes content, metadata, httpMetadata");
  if (!body.contains("content") || !body["content"].is_string())
    throw bad_request("invalid_content", "content is required and must be a base64 string");
  auto bytes = enc::base64_decode(body["content"].get_ref<const std::string&>());
  if (!bytes) throw bad_request("invalid_content", "content is not valid base64 (standard alphabet, padded)");
  if (bytes->size() > max_object) throw r2_object_too_large(max_object);
  R2JsonPut p;
  p.bytes = std::move(*bytes);
  if (body.contains("metadata")) p.options.custom_metadata = r2_metadata(body["metadata"], "metadata");
  if (body.contains("httpMetadata") && !body["httpMetadata"].is_null()) {
    const json& h = body["httpMetadata"];
    if (!h.is_object()) throw bad_request("invalid_metadata", "httpMetadata must be an object");
    for (const auto& [k, v] : h.items()) {
      if (k != "contentType")
        throw bad_request("unknown_field", "unknown field 'httpMetadata." + k + "': only contentType is kept");
      if (!v.is_string()) throw bad_request("invalid_content_type", "httpMetadata.contentType must be a string");
      p.options.content_type = r2_content_type(v.get<std::string>());
    }
  }
  p.options.size = p.bytes.size();
  return p;
}

// ---- Sessions

namespace {

std::string new_session_id() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw ApiError(500, "internal_error", "no randomness for a session id");
  return "ses_" + enc::hex(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

}  // namespace

void check_session_id(const std::string& id) {
  if (!auth::is_valid_session_id(id))
    throw bad_request("invalid_session_id", "a session id is 1 to 128 of A-Z a-z 0-9 _ . -");
}

SessionRecord session_create(const json& body, const Config& config, int64_t now) {
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
    if (s.metadata.size() > kMaxSessionMetadataBytes)
      throw too_large("metadata_too_large", "metadata too large: at most 4096 bytes of serialized JSON");
  }
  s.created_at = now;
  s.expires_at = now + ttl;
  return s;
}

}  // namespace era::api
