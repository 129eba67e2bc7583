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
#include "api/bodies.h"
#include "ns/names.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

// SQL is at most max_sql_bytes, but a statement may bind up to 100 values of up to 2 MB each, and a
// batch holds many statements.
constexpr size_t kMaxBody = 64u << 20;

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
    SqlStatement st = d1_statement(c.json_body(kMaxBody), "the body");
    st.read_only = !c.principal.may_write();
    SqlResult r = d1.query(ns, st);
    c.ok({{"success", true}, {"results", rows_json(r)}, {"meta", meta_json(r.meta)}});
  });

  router.add("POST", "/api/storage/d1/{ns}/exec", [&d1](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    SqlStatement st = d1_statement(c.json_body(kMaxBody), "the body");
    st.read_only = !c.principal.may_write();
    int count = 0;
    SqlResult r = d1.exec(ns, st, count);
    c.ok({{"success", true}, {"count", count}, {"meta", meta_json(r.meta)}});
  });

  router.add("POST", "/api/storage/d1/{ns}/batch", [&d1](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    std::vector<SqlStatement> list = d1_batch(c.json_body(kMaxBody));
    for (auto& st : list) st.read_only = !c.principal.may_write();
    auto results = d1.batch(ns, list);
    json out = json::array();
    for (auto& r : results)
      out.push_back({{"success", true}, {"results", rows_json(r)}, {"meta", meta_json(r.meta)}});
    c.ok({{"success", true}, {"results", std::move(out)}});
  });
}

}  // namespace era::api
