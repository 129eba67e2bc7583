// D1 over HTTP: POST /api/storage/d1/{ns}/query, /exec and /batch, the guide's d1.query / d1.exec
// plus D1's batch(). Request bodies are {"sql", "params"} (batch: {"statements": [{"sql",
// "params"}]}); types follow D1: booleans bind as 0/1, integers are int64 exactly, BLOBs travel as
// arrays of byte values.
//
// Auth: the middleware lets read-only session tokens through to these POST routes (the statement,
// not the method, decides whether a call writes); each statement carries read_only, and the store
// refuses one that would write with 403 read_only_token before it runs.
#include <algorithm>
#include <limits>

#include "api/api.h"
#include "api/bodies.h"
#include "ns/names.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

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

// Sends a 200 with a JSON body already written (bodies.h: append_d1_result and friends).
void ok_json(http::Ctx& c, std::string body) {
  c.res.status = 200;
  c.res.set_content(std::move(body), "application/json");
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
    std::string out;
    append_d1_result(out, r);
    ok_json(c, std::move(out));
  });

  router.add("POST", "/api/storage/d1/{ns}/exec", http::Access::in_namespace(http::Access::Op::statement), [&d1, limits](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    SqlStatement st = d1_statement(c.json_body(limits), "the body");
    st.read_only = !c.principal.may_write();
    int count = 0;
    SqlResult r = d1.exec(ns, st, count);
    c.audit.wrote = r.meta.changed_db;
    std::string out = "{\"success\":true,\"count\":" + std::to_string(count) + ",\"meta\":";
    append_d1_meta(out, r.meta);
    out += '}';
    ok_json(c, std::move(out));
  });

  router.add("POST", "/api/storage/d1/{ns}/batch", http::Access::in_namespace(http::Access::Op::statement), [&d1, limits](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    std::vector<SqlStatement> list = d1_batch(c.json_body(limits));
    for (auto& st : list) st.read_only = !c.principal.may_write();
    auto results = d1.batch(ns, list);
    c.audit.wrote = summed_meta(results).changed_db;
    std::string out = "{\"success\":true,\"results\":[";
    for (size_t i = 0; i < results.size(); ++i) {
      if (i) out += ',';
      append_d1_result(out, results[i]);
    }
    out += "]}";
    ok_json(c, std::move(out));
  });
}

}  // namespace era::api
