// D1 over HTTP: POST /api/storage/d1/{ns}/query, /exec and /batch, the guide's d1.query / d1.exec
// plus D1's batch(). Request bodies are {"sql", "params"} (batch: {"statements": [{"sql",
// "params"}]}); types follow D1: booleans bind as 0/1, integers are int64 exactly, BLOBs travel as
// arrays of byte values.
//
// Auth: the middleware lets read-only session tokens through to these POST routes (the statement,
// not the method, decides whether a call writes); each statement carries read_only, and the store
// refuses one that would write with 403 read_only_token before it runs.
#include <algorithm>
#include <cmath>
#include <limits>

#include "api/api.h"
#include "api/bodies.h"
#include "ns/names.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;
// A row is an object whose keys are the SELECT's columns in the SELECT's order, as D1 gives them:
// nlohmann::json sorts an object's keys, so every body that holds rows is built as ordered_json.
using ojson = nlohmann::ordered_json;

// A D1 request's JSON is parsed within these bounds (docs/api.md "Request limits"): D1 takes 100 KB
// of SQL and 100 parameters per statement, and strings and BLOBs of up to 2,000,000 bytes. A BLOB
// travels as an array of byte values (up to 4 bytes of text and one JSON value per byte), so the
// body may hold one BLOB of D1's maximum size, and the tree built from it stays within ~35 MB.
constexpr size_t kMinBody = 16u << 20;
constexpr size_t kMaxValues = 2100000;

http::JsonLimits body_limits(const Config& config) {
  // Room for the SQL text escaped at worst (6 bytes of JSON per byte) when an operator raises
  // d1.max_sql_bytes.
  const size_t bytes = std::max(kMinBody, 6 * static_cast<size_t>(config.d1_max_sql_bytes) + (1u << 20));
  return http::JsonLimits{bytes, 8, kMaxValues, bytes};
}

ojson value_json(const SqlValue& v) {
  if (auto n = std::get_if<int64_t>(&v)) return *n;
  if (auto d = std::get_if<double>(&v)) return std::isfinite(*d) ? ojson(*d) : ojson(nullptr);
  if (auto t = std::get_if<std::string>(&v)) return *t;
  if (auto b = std::get_if<SqlBlob>(&v)) {
    ojson a = ojson::array();
    for (unsigned char c : b->bytes) a.push_back(int(c));
    return a;
  }
  return nullptr;
}

ojson meta_json(const SqlMeta& m) {
  return {{"changes", m.changes},
          {"last_row_id", m.last_row_id},
          {"duration", m.duration_ms},
          {"rows_read", m.rows_read},
          {"rows_written", m.rows_written},
          {"changed_db", m.changed_db},
          {"size_after", m.size_after},
          {"served_by", "era-storage-proxy"}};
}

ojson rows_json(SqlResult& r) {
  ojson rows = ojson::array();
  for (auto& row : r.rows) {
    ojson o = ojson::object();
    // A repeated name keeps its first place and takes the last value (as a JavaScript object does).
    for (size_t i = 0; i < row.size(); ++i) o[r.columns[i]] = value_json(row[i]);
    rows.push_back(std::move(o));
  }
  return rows;
}

// Sends a 200 whose body keeps its keys in the order they were added (Ctx::ok would sort them).
void ok_ordered(http::Ctx& c, const ojson& body) {
  c.res.status = 200;
  c.res.set_content(body.dump(-1, ' ', false, ojson::error_handler_t::replace), "application/json");
}

}  // namespace

void register_d1(http::Router& router, Services& services) {
  SqlStore& d1 = services.backend.d1();
  const http::JsonLimits limits = body_limits(services.config);

  router.add("POST", "/api/storage/d1/{ns}/query", http::Access::in_namespace(http::Access::Op::statement), [&d1, limits](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    SqlStatement st = d1_statement(c.json_body(limits), "the body");
    st.read_only = !c.principal.may_write();
    SqlResult r = d1.query(ns, st);
    c.audit.wrote = r.meta.changed_db;
    ok_ordered(c, {{"success", true}, {"results", rows_json(r)}, {"meta", meta_json(r.meta)}});
  });

  router.add("POST", "/api/storage/d1/{ns}/exec", http::Access::in_namespace(http::Access::Op::statement), [&d1, limits](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    SqlStatement st = d1_statement(c.json_body(limits), "the body");
    st.read_only = !c.principal.may_write();
    int count = 0;
    SqlResult r = d1.exec(ns, st, count);
    c.audit.wrote = r.meta.changed_db;
    ok_ordered(c, {{"success", true}, {"count", count}, {"meta", meta_json(r.meta)}});
  });

  router.add("POST", "/api/storage/d1/{ns}/batch", http::Access::in_namespace(http::Access::Op::statement), [&d1, limits](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    std::vector<SqlStatement> list = d1_batch(c.json_body(limits));
    for (auto& st : list) st.read_only = !c.principal.may_write();
    auto results = d1.batch(ns, list);
    c.audit.wrote = summed_meta(results).changed_db;
    ojson out = ojson::array();
    for (auto& r : results)
      out.push_back({{"success", true}, {"results", rows_json(r)}, {"meta", meta_json(r.meta)}});
    ok_ordered(c, {{"success", true}, {"results", std::move(out)}});
  });
}

}  // namespace era::api
