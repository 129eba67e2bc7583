// CloudflareRegistry: the resource registry of the cloudflare backend, kept in two tables of the D1
// database so that every proxy replica reads and writes the same one:
//
//   "era:resources"          one row per KV entry / R2 object (type, name "ns:key" or "ns/key", ns, key,
//                            size, metadata, created, updated, expiration), primary key (type, name): the
//                            list order is that index, as in local mode.
//   "era:resource_counters"  (type, ns) -> count, bytes: stats read these, never scan.
//
// Names with ':' can never be a user's "ns_table", and user SQL only ever reaches its own prefixed
// tables, so neither table is reachable from a sandbox.
//
// Recording (ResourceRecorder, called by CloudflareKv and CloudflareR2): each change is one D1 batch
// (one transaction) that moves the row and its counters together, so rows and counters never disagree.
// Order against the upstream write, so that a crash can at worst show a resource that is gone (reindex
// repairs it) and never hide one that exists:
//   put:    the row is recorded BEFORE the upstream write, and (R2, whose size is known only after the
//           upload) corrected after it. A write that fails is resynced from the store (HEAD / GET).
//   delete: the row is removed AFTER the upstream delete succeeded.
// Expired KV rows are neither listed nor counted (stats subtract expired rows still present); a sweep
// (at most once a minute, on stats, and in reindex) deletes them with their counters.
//
// D1 user tables are not rows here: they are listed and counted from the SQL store's own ownership
// registry (the "d1" source), which cannot drift from D1's schema.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/cloudflare/d1_client.h"
#include "store/sql_store.h"
#include "store/registry.h"
#include "util/key_locks.h"

namespace era::cf {

// What the stores tell the registry. Each call is one D1 transaction; throws ApiError on failure.
class ResourceRecorder {
 public:
  virtual ~ResourceRecorder() = default;
  // Writes to one resource in order: a store holds this guard across its upstream write (or delete) and
  // the matching record_* calls, so a put and a delete of one key racing on two threads cannot
  // interleave as "record put, upstream delete, upstream put, record remove" (a key the store holds
  // but the registry lost). Other keys do not wait. (Across replicas, reindex repairs; docs/operations.md.)
  virtual KeyLocks::Guard order(const char* type, const std::string& ns, const std::string& key) = 0;
  // A resource now exists with this size, metadata (compact JSON, or none) and expiration (unix s).
  virtual void record_put(const char* type, const std::string& ns, const std::string& key, int64_t size,
                          const std::optional<std::string>& metadata, std::optional<int64_t> expiration) = 0;
  virtual void record_remove(const char* type, const std::string& ns, const std::string& key) = 0;
  // The recorded metadata (compact JSON) of these keys of one namespace, for those that have some: an
  // R2 list fills its entries' custom metadata from here, as S3 lists do not carry it. One D1 read.
  virtual std::map<std::string, std::string> metadata_of(const char* type, const std::string& ns,
                                                         const std::vector<std::string>& keys) = 0;
};

// One stored resource as the stores' own listings give it (for reindex).
struct StoredEntry {
  std::string ns, key;
  std::optional<int64_t> size;  // unknown: ask `size_of`
  std::optional<std::string> metadata;
  std::optional<int64_t> expiration;
};

// How reindex reads one store: every entry of one type, and one entry's size and metadata (for what the
// walk did not give: a row it records must be complete).
struct StoreWalker {
  const char* type;
  char separator;
  std::function<void(const std::function<void(StoredEntry)>&)> walk;
  std::function<std::optional<StoredEntry>(const std::string& ns, const std::string& key)> lookup;
};

class CloudflareRegistry : public ResourceRegistry, public ResourceRecorder {
 public:
  // `tables`: the backend's SQL store, whose ownership registry lists the D1 tables.
  CloudflareRegistry(D1Client& d1, SqlStore& tables);
  ~CloudflareRegistry() override;

  // The stores reindex reads (set once by the backend, before serving).
  void set_walkers(std::vector<StoreWalker> walkers);

  ResourcePage list(const ResourceQuery& query) override;
  ResourceStats stats(const std::optional<std::string>& ns,
                      const std::optional<std::set<std::string>>& scope) override;
  ReindexReport reindex() override;

  void record_put(const char* type, const std::string& ns, const std::string& key, int64_t size,
                  const std::optional<std::string>& metadata, std::optional<int64_t> expiration) override;
  void record_remove(const char* type, const std::string& ns, const std::string& key) override;
  std::map<std::string, std::string> metadata_of(const char* type, const std::string& ns,
                                                 const std::vector<std::string>& keys) override;
  KeyLocks::Guard order(const char* type, const std::string& ns, const std::string& key) override;

  // Deletes expired KV rows with their counters; returns how many.
  int64_t sweep();

 private:
  void ensure_schema();
  void maybe_sweep();

  D1Client& d1_;
  std::vector<StoreWalker> walkers_;
  std::unique_ptr<ResourceRegistry> walker_;  // list/stats over the tables (the generic ResourceWalk)
  KeyLocks key_locks_;
  std::mutex mu_;
  bool schema_ready_ = false;
  int64_t last_sweep_ = 0;
};

}  // namespace era::cf
