// Namespace and key rules shared by every surface, and the mapping of (namespace, key) onto the one
// shared KV namespace / R2 bucket. Violations throw ApiError 400 with a message that states the rule.
#pragma once

#include <string>
#include <string_view>

namespace era::ns {

constexpr size_t kMaxNamespaceLength = 64;
constexpr size_t kMaxKvKeyBytes = 512;          // Cloudflare KV's key limit
constexpr size_t kMaxKvValueBytes = 25u << 20;  // 25 MiB, Cloudflare KV's value limit
constexpr size_t kMaxKvMetadataBytes = 1024;    // serialized JSON, Cloudflare KV's metadata limit
constexpr size_t kMaxR2KeyBytes = 1024;         // R2's object key limit

// A namespace is 1 to 64 of [A-Za-z0-9_-]; so ':' and '/' can never be part of one.
bool is_valid_namespace(std::string_view ns);
void check_namespace(std::string_view ns);

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// A KV key: 1..512 bytes of UTF-8, not "." or "..", no NUL.
bool is_valid_kv_key(std::string_view key);
void check_kv_key(std::string_view key);

// The internal name of a KV key in the shared namespace: "ns:key".
std::string kv_name(std::string_view ns, std::string_view key);

// An R2 key: 1..1024 bytes of UTF-8. Anything else is allowed ('/', "..", NUL, a leading '/'):
// an object key is only ever data, never a file path.
void check_r2_key(std::string_view key);

// The internal name of an R2 key in the shared bucket: "ns/key".
std::string r2_name(std::string_view ns, std::string_view key);

// True if a D1 object with this physical name (ns + "_" + name) would take a name SQLite resolves on its
// own: its schema tables (sqlite_*), table-valued functions and eponymous virtual tables (pragma_*,
// json_*, jsonb_*, dbstat, fts3tokenize, generate_series, ...). A table or view of that name would
// shadow the built-in for every namespace and for the proxy's own SQL, so it may never be created.
// Compared case-insensitively, as SQLite compares names. Namespaces "sqlite", "pragma", "json" and
// "jsonb" (in any letter case) therefore cannot hold D1 objects at all.
bool is_reserved_sql_name(std::string_view physical);

// The smallest byte string greater than every string that starts with `prefix`, or "" if none exists
// (prefix made only of 0xFF bytes).
std::string prefix_upper_bound(std::string_view prefix);

}  // namespace era::ns
