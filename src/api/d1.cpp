// D1 over HTTP: POST /api/storage/d1/{ns}/query, /exec and /batch, the guide's d1.query / d1.exec
// plus D1's batch(). Request bodies are {"sql", "params"} (batch: {"statements": [{"sql",
// "params"}]}); types follow D1: booleans bind as 0/1, integers are int64 exactly, BLOBs travel as
// arrays of byte values.
//
// Auth: the middleware lets read-only session tokens through to these POST routes (the statement,
// not the method, decides whether a call writes); each statement carries read_only, and the store
// refuses one that would write with 403 read_only_token before it runs.
#include <cmath>
#include <limits>

#include "api/api.h"
#include "ns/names.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

// SQL is at most max_sql_bytes, but a statement may bind up to 100 values of up to 2 MB each, and a
// batch holds many statements.
constexpr size_t kMaxBody = 64u << 20;

SqlValue param(const json& v, size_t i) {
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

SqlStatement statement(const json& body, const char* where) {
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
    for (const auto& v : body["params"]) st.params.push_back(param(v, i++));
  }
  return st;
}

json value_json(const SqlValue& v) {
  if (auto n = std::get_if<int64_t>(&v)) return *n;
  if (auto d = std::get_if<double>(&v)) return std::isfinite(*d) ? json(*d) : json(nullptr);
  if (auto t = std::get_if<std::string>(&v)) return *t;
  if (auto b = std::get_if<SqlBlob>(&v)) {
    json a = json::array();
    for (unsigned char c : b->bytes) a.push_back(int(c));
    return a;
  }
  return nullptr;
}

json meta_json(const SqlMeta& m) {
  return {{"changes", m.changes},
          {"last_row_id", m.last_row_id},
          {"duration", m.duration_ms},
          {"rows_read", m.rows_read},
          {"rows_written", m.rows_written},
          {"changed_db", m.changed_db},
          {"size_after", m.size_after},
          {"served_by", "era-storage-proxy"}};
}

json rows_json(SqlResult& r) {
  json rows = json::array();
  for (auto& row : r.rows) {
    json o = json::object();
    for (size_t i = 0; i < row.size(); ++i) o[r.columns[i]] = value_json(row[i]);  // a repeated name: last wins
    rows.push_back(std::move(o));
  }
  return rows;
}

}  // namespace

void register_d1(http::Router& router, Services& services) {
  SqlStore& d1 = services.backend.d1();

  router.add("POST", "/api/storage/d1/{ns}/query", [&d1](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    SqlStatement st = statement(c.json_body(kMaxBody), "the body");
    st.read_only = !c.principal.may_write();
    SqlResult r = d1.query(ns, st);
    c.audit.wrote = r.meta.changed_db;
    c.ok({{"success", true}, {"results", rows_json(r)}, {"meta", meta_json(r.meta)}});
  });

  router.add("POST", "/api/storage/d1/{ns}/exec", [&d1](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    SqlStatement st = statement(c.json_body(kMaxBody), "the body");
    st.read_only = !c.principal.may_write();
    int count = 0;
    SqlResult r = d1.exec(ns, st, count);
    c.audit.wrote = r.meta.changed_db;
    c.ok({{"success", true}, {"count", count}, {"meta", meta_json(r.meta)}});
  });

  router.add("POST", "/api/storage/d1/{ns}/batch", [&d1](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    json body = c.json_body(kMaxBody);
    for (const auto& [k, _] : body.items())
      if (k != "statements") throw bad_request("unknown_field", "unknown field '" + k + "': a batch takes statements");
    if (!body.contains("statements") || !body["statements"].is_array() || body["statements"].empty())
      throw bad_request("invalid_statements", "statements is required: a non-empty array of {sql, params}");
    std::vector<SqlStatement> list;
    for (size_t i = 0; i < body["statements"].size(); ++i) {
      list.push_back(statement(body["statements"][i], ("statements[" + std::to_string(i) + "]").c_str()));
      list.back().read_only = !c.principal.may_write();
    }
    auto results = d1.batch(ns, list);
    c.audit.wrote = summed_meta(results).changed_db;
    json out = json::array();
    for (auto& r : results)
      out.push_back({{"success", true}, {"results", rows_json(r)}, {"meta", meta_json(r.meta)}});
    c.ok({{"success", true}, {"results", std::move(out)}});
  });
}

}  // namespace era::api
