#include "store/cloudflare/d1_client.h"

namespace era::cf {

using nlohmann::json;

ApiError D1Client::error_for(const std::string& what, const HttpResponse& r) {
  const std::string d = upstream_detail(r);
  // Locally a SQL error is HTTP 500 with code 10001; production documents 400 with 7500. SQLite's
  // own result name in the message is what both share.
  if (d.find("SQLITE_CONSTRAINT") != std::string::npos) return ApiError(409, "constraint_failed", d);
  if (d.find("SQLITE_AUTH") != std::string::npos) return ApiError(403, "sql_denied", d);
  if (d.find("SQLITE_") != std::string::npos) return ApiError(400, "sql_error", d);
  return upstream_error(what, r);
}

std::vector<D1Result> D1Client::send(json body, Retry retry, const std::string& what) {
  HttpRequest req = api_.request("POST", path_, what);
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = body.dump();
  req.retry = retry;
  HttpResponse r;
  try {
    r = api_.send(req);
  } catch (const ApiError& e) {
    // A 5xx that is really SQLite refusing the statement (the emulator answers SQL errors with 500):
    // its message carries SQLite's verdict.
    const std::string m = e.what();
    const auto at = m.find("D1_ERROR");
    if (at == std::string::npos || m.find("SQLITE_") == std::string::npos) throw;
    const std::string d = m.substr(at, m.rfind(')') > at ? m.rfind(')') - at : std::string::npos);
    if (d.find("SQLITE_CONSTRAINT") != std::string::npos) throw ApiError(409, "constraint_failed", d);
    if (d.find("SQLITE_AUTH") != std::string::npos) throw ApiError(403, "sql_denied", d);
    throw ApiError(400, "sql_error", d);
  }
  if (r.status < 200 || r.status >= 300) throw error_for(what, r);
  json env = RestApi::envelope(r, what);
  if (env.value("success", false) != true || !env.contains("result") || !env["result"].is_array())
    throw error_for(what, r);
  std::vector<D1Result> out;
  for (const auto& item : env["result"]) {
    D1Result res;
    if (item.contains("results") && item["results"].is_object()) {
      const auto& rs = item["results"];
      if (rs.contains("columns") && rs["columns"].is_array())
        for (const auto& c : rs["columns"]) res.columns.push_back(c.is_string() ? c.get<std::string>() : c.dump());
      if (rs.contains("rows") && rs["rows"].is_array())
        for (const auto& row : rs["rows"])
          if (row.is_array()) res.rows.emplace_back(row.begin(), row.end());
    }
    if (item.contains("meta")) res.meta = item["meta"];
    out.push_back(std::move(res));
  }
  return out;
}

std::vector<D1Result> D1Client::run(const D1Statement& st, Retry retry, const std::string& what) {
  return send({{"sql", st.sql}, {"params", st.params}}, retry, what);
}

std::vector<D1Result> D1Client::batch(const std::vector<D1Statement>& sts, Retry retry, const std::string& what) {
  json b = json::array();
  for (const auto& st : sts) b.push_back({{"sql", st.sql}, {"params", st.params}});
  return send({{"batch", std::move(b)}}, retry, what);
}

}  // namespace era::cf
