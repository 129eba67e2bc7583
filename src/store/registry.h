// ResourceRegistry: what every namespace holds, across KV, D1 and R2 — the data behind
// /api/resources/list and /stats.
//
// Contract, for every implementation:
// - Always true: it never disagrees with the stores. A resource is listed and counted exactly when the
//   store would serve it (an expired KV key is neither listed nor counted).
// - list() walks resources in a fixed order: by type ("d1" < "kv" < "r2"), then by the store's own order
//   within the type. A cursor (opaque) resumes after the last resource returned: paging with it neither
//   skips nor repeats a resource present for the whole walk, whatever is written meanwhile. `offset`
//   skips that many resources from the cursor's position (or the start).
// - stats() comes from maintained counters, not from a scan.
// - `scope`, when set, restricts both to those namespaces (a session's view); unset means all (admin).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace era {

struct Resource {
  std::string type;  // "kv", "d1" or "r2"
  std::string ns;
  std::string key;   // the user's own name: KV key, D1 table, R2 key
  std::optional<int64_t> size;          // bytes, when known
  std::optional<std::string> metadata;  // compact JSON, when the resource has any
  int64_t created_at_ms = 0;  // 0: unknown (D1 tables)
  int64_t updated_at_ms = 0;
};

struct ResourceQuery {
  std::optional<std::string> type;
  std::optional<std::string> ns;
  std::string key_prefix;
  int limit = 100;
  int64_t offset = 0;
  std::string cursor;
  std::optional<std::set<std::string>> scope;
};

struct ResourcePage {
  std::vector<Resource> resources;
  int64_t total = 0;  // resources matching the filters (all pages)
  bool has_more = false;
  std::string cursor;  // resumes after the last resource of this page; empty when !has_more
};

struct ResourceStats {
  int64_t total = 0;
  int64_t total_size = 0;
  std::map<std::string, int64_t> by_type;       // always has "kv", "d1" and "r2"
  std::map<std::string, int64_t> size_by_type;  // bytes, the same keys (D1 tables count 0)
  std::map<std::string, int64_t> by_namespace;  // namespaces holding at least one resource
  struct Count {
    int64_t count = 0;
    int64_t size = 0;  // bytes (D1 tables count 0: their size is not known cheaply)
  };
  // The same namespaces, each with every type ("kv", "d1", "r2") counted and sized.
  std::map<std::string, std::map<std::string, Count>> by_namespace_type;
};

struct ReindexReport {
  std::vector<std::string> repairs;  // one line per counter that was wrong, with old and new values
};

class ResourceRegistry {
 public:
  virtual ~ResourceRegistry() = default;
  virtual ResourcePage list(const ResourceQuery& query) = 0;
  virtual ResourceStats stats(const std::optional<std::string>& ns,
                              const std::optional<std::set<std::string>>& scope) = 0;
  // Rebuilds the maintained counters from the stores; reports what it repaired.
  virtual ReindexReport reindex() = 0;
};

}  // namespace era
