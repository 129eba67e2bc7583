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
// Recording (ResourceRecorder, called by CloudflareKv and CloudflareR2) costs no upstream call of its
// own: record_put / record_remove only queue the change in memory (the last change of a key wins), and
// one flush per interval (cloudflare.registry_flush_ms) sends every queued change in ONE D1 batch (one
// transaction) that moves the rows and their counters together, so rows and counters never disagree.
// Counters are moved by "minus the touched rows before, plus the touched rows after", so the batch is
// idempotent (retry-safe) and changes from several replicas compose; a row is only replaced by a
// change at least as recent as the row (clock of the writing replica).
// A failed flush puts its changes back (unless newer ones for the same keys came meanwhile) and is
// retried with backoff, logged; never dropped. list(), stats() and reindex() flush first, so a replica
// reads its own writes; another replica's writes show within its flush interval.
//
// Order against the upstream write (per key, ResourceRecorder::order): a put is queued before the
// upstream write and corrected after it (R2: the stored size; a failed write is resynced from the
// store), a delete after the upstream delete succeeded. The queue is in memory, so a crash loses what
// it held: objects written in the last interval may be missing from the registry (hidden), and rows of
// deleted ones may stay (over-listed). The crash rule ("a crash may over-list, never hide for long") is
// kept by a marker per replica in D1, "era:registry_replicas" (id = host:port, seen = last flush):
// it is written at start, refreshed by every flush (in the same batch, free) and deleted by a graceful
// shutdown after the final flush. A marker left behind means a replica stopped without flushing:
//   - the replica restarted with the same id finds its own marker at start and runs reindex before it
//     serves (docs/operations.md);
//   - a marker not refreshed for kStaleMarkerSeconds (a replica that never came back) is repaired by
//     the next replica that flushes (reindex in the background), which marks it repaired.
// `era-storage-proxy reindex` repairs by hand at any time.
// D1 user tables are not rows here: they are listed and counted from the SQL store's own ownership
// registry (the "d1" source), which cannot drift from D1's schema.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include "store/cloudflare/d1_client.h"
#include "store/sql_store.h"
#include "store/registry.h"
#include "util/key_locks.h"

namespace era::cf {

// What the stores tell the registry. record_* only queue the change (no upstream call, never throw for
// upstream trouble); the registry flushes it.
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
  // R2 list fills its entries' custom metadata from here, as S3 lists do not carry it. Queued changes
  // answer first; the rest is one D1 read (none when the queue answers for every key).
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

struct RegistryOptions {
  int flush_ms = 1000;  // queued changes go to D1 at most this often (one batch each)
  size_t max_queued = 100000;  // past this many queued keys (D1 failing for long), reindex repairs instead
};

// One queued change of the registry (a put: the row as it now is; a remove).
struct RegistryChange {
  bool put = true;
  std::string type, ns, key;
  int64_t size = 0;
  std::optional<std::string> metadata;
  std::optional<int64_t> expiration;
  int64_t at_ms = 0;  // when the store was written (orders changes from several replicas)
};

class CloudflareRegistry : public ResourceRegistry, public ResourceRecorder {
 public:
  // `tables`: the backend's SQL store, whose ownership registry lists the D1 tables.
  CloudflareRegistry(D1Client& d1, SqlStore& tables, RegistryOptions options = {});
  ~CloudflareRegistry() override;

  // Serving starts: writes this replica's marker (repairing first if the previous process with this
  // id stopped without flushing) and starts the flusher. Not called by the one-shot commands.
  void start(const std::string& replica_id);
  // Stops the flusher and flushes what is queued; on success deletes the marker. Idempotent.
  void close();
  // Sends every queued change now (the flusher's step). Throws ApiError if D1 refused; the changes
  // stay queued. Returns how many changes were sent.
  size_t flush();
  size_t queued() const;

  // The D1 batch one flush sends for `changes` (unique by type and name), chunked so no parameter
  // passes D1's 2,000,000-byte value limit (exposed for unit tests).
  static std::vector<std::vector<D1Statement>> flush_batches(const std::vector<RegistryChange>& changes,
                                                             const std::string& replica_id, int64_t now_ms,
                                                             size_t max_param_bytes = kMaxParamBytes);
  // The registry's tables (CREATE ... IF NOT EXISTS), as ensure_schema sends them.
  static std::vector<D1Statement> schema_statements();
  static constexpr size_t kMaxParamBytes = 1900000;  // under D1's 2,000,000, with room for the envelope
  static constexpr int64_t kStaleMarkerSeconds = 3600;

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
  void enqueue(RegistryChange c);
  void run_flusher();
  void flush_for_read();
  // Reindex in the background for markers of replicas that stopped without flushing.
  void repair_stale(const std::vector<std::string>& ids);

  D1Client& d1_;
  RegistryOptions options_;
  std::vector<StoreWalker> walkers_;
  std::unique_ptr<ResourceRegistry> walker_;  // list/stats over the tables (the generic ResourceWalk)
  KeyLocks key_locks_;
  std::mutex mu_;
  bool schema_ready_ = false;
  int64_t last_sweep_ = 0;

  // The queue: (type, name) -> the latest change. Guarded by q_mu_; one flush at a time (flush_mu_).
  mutable std::mutex q_mu_;
  std::map<std::pair<std::string, std::string>, RegistryChange> queue_;
  bool overflowed_ = false;  // the queue overflowed: changes were dropped, a reindex must repair
  std::mutex flush_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool started_ = false;
  bool closed_ = false;
  std::string replica_id_;  // "" until start(): no marker (one-shot commands)
  std::vector<std::string> stale_;  // markers the last flush found stale (guarded by q_mu_)
  std::thread flusher_;
};

}  // namespace era::cf
