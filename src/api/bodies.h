// The JSON request bodies of the API, parsed and validated: each function takes the body as the
// router parsed it and returns what the store needs, or throws ApiError (400 with a code naming the
// field, 413 past a size limit) before anything is changed. The handlers (api/*.cpp) call these; the
// unit tests and the json_bodies fuzz target (tests/fuzz/) call them directly.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.h"
#include "store/kv_store.h"
#include "store/object_store.h"
#include "store/session_store.h"
#include "store/sql_store.h"
#include "util/error.h"

namespace era::api {

// D1: {"sql": string, "params": [values]}; `where` names the body in messages ("the body",
// "statements[2]"). Types follow D1: booleans bind as 0/1, integers are int64 exactly, BLOBs are
// arrays of byte values.
SqlStatement d1_statement(const nlohmann::json& body, const char* where);
// D1 batch: {"statements": [statement, ...]} (at least one).
std::vector<SqlStatement> d1_batch(const nlohmann::json& body);

// D1 answers, written straight into `out` (building an ordered_json tree per row cost more than a
// select by key itself), byte for byte what nlohmann's ordered_json dump gives (ensure_ascii off,
// invalid UTF-8 replaced by U+FFFD). A result: {"success":true,"results":[rows],"meta":{...}}, each row
// an object whose keys are the columns in the SELECT's order (a repeated name keeps its first place
// and takes the last value, as a JavaScript object does); integers exact, non-finite reals null,
// BLOBs arrays of byte values.
void append_d1_result(std::string& out, const SqlResult& r);
// {"changes":...,"last_row_id":...,"duration":...,"rows_read":...,"rows_written":...,"changed_db":...,
// "size_after":...,"served_by":"era-storage-proxy"}
void append_d1_meta(std::string& out, const SqlMeta& m);

// KV PUT: {"value": string, "metadata": object|null, "expiration" | "expiration_ttl": integer}, with
// Cloudflare's limits (25 MiB values, 1024 bytes of metadata, TTL >= 60 s); `now` in unix seconds.
KvValue kv_put(const nlohmann::json& body, int64_t now);
// KV GET's answer: {"expiration"?: integer, "metadata": object|null, "value": string}, compact, keys
// sorted, invalid UTF-8 replaced (byte for byte what Ctx::ok would write for that JSON object), built
// without the intermediate object (it is every KV read's answer).
std::string kv_get_answer(KvValue v);

// R2 custom metadata: a JSON object of strings, at most 8192 bytes of names and values.
std::map<std::string, std::string> r2_metadata(const nlohmann::json& j, const std::string& where);
// A content type: 1 to 256 printable ASCII characters.
std::string r2_content_type(const std::string& v);
ApiError r2_object_too_large(uint64_t max_object);
// The guide's JSON PUT: {"content": base64, "metadata": {...}, "httpMetadata": {"contentType"}}.
struct R2JsonPut {
  std::string bytes;
  PutOptions options;
};
R2JsonPut r2_json_put(const nlohmann::json& body, uint64_t max_object);

// POST /api/sessions: {"language", "session_id", "namespaces", "permissions", "ttl_seconds",
// "metadata"}, all optional; a missing session_id gets a random one.
SessionRecord session_create(const nlohmann::json& body, const Config& config, int64_t now);
// 400 unless `id` is a valid session id (auth/token.h).
void check_session_id(const std::string& id);

}  // namespace era::api
