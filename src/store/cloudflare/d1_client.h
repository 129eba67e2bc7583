// D1Client: statements sent to the one D1 database over the REST API's /raw endpoint (production and
// the emulator both serve it; /query is not served locally). Results come back as columns + rows.
//
// Parameters are sent as JSON strings: Cloudflare's OpenAPI schema types them as strings and the
// emulator refuses anything else (numbers, booleans and null alike). Integers written as decimal text
// are exact; a column's INTEGER or REAL affinity turns them back into numbers on insert and in
// comparisons with a column. Where an expression has no affinity (LIMIT, max(), arithmetic), the SQL
// must CAST the parameter itself. NULL cannot be sent as a parameter at all.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "store/cloudflare/rest_api.h"

namespace era::cf {

struct D1Result {
  std::vector<std::string> columns;
  std::vector<std::vector<nlohmann::json>> rows;
  nlohmann::json meta;  // changes, last_row_id, rows_read, rows_written, ...
  int64_t changes() const { return meta.value("changes", int64_t(0)); }
};

struct D1Statement {
  std::string sql;
  std::vector<std::string> params;
};

class D1Client {
 public:
  D1Client(RestApi& api, const std::string& database_id) : api_(api), path_("/d1/database/" + database_id + "/raw") {}

  // One statement. `retry`: Retry::idempotent only for reads and writes that may safely run twice.
  std::vector<D1Result> run(const D1Statement& st, Retry retry, const std::string& what);
  // Several statements in one call, run by D1 as one transaction.
  std::vector<D1Result> batch(const std::vector<D1Statement>& sts, Retry retry, const std::string& what);

  // The ApiError for a failed D1 answer: SQLite's own verdict when the message carries one
  // (SQLITE_CONSTRAINT -> 409, SQLITE_AUTH -> 403, other SQLITE_* -> 400), else upstream trouble.
  static ApiError error_for(const std::string& what, const HttpResponse& r);

 private:
  std::vector<D1Result> send(nlohmann::json body, Retry retry, const std::string& what);

  RestApi& api_;
  std::string path_;
};

}  // namespace era::cf
