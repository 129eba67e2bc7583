// CloudflareKv: the KvStore contract on Workers KV's REST API, in the one shared namespace, under the
// internal names "ns:key" the guide documents (so Cloudflare's own tools see what the proxy wrote).
// Upstream calls are the scarce resource (DESIGN.md): writes are coalesced, reads cached.
//
// Writes (put, remove) go through a group commit (coalescer.h): concurrent writes leave together in
// one round, a round is at most one call for its puts and one for its deletes, and a caller is
// answered only once the call carrying its write ended, with that call's outcome for its key.
// - A round with one put sends PUT values/<key> as wrangler does: the raw bytes when there is no
//   metadata, else multipart/form-data with `value` (a plain form field for text, a file part for
//   bytes that are not UTF-8) and `metadata` (the JSON text). Several puts: PUT bulk, a JSON array of
//   {key, value, metadata, expiration | expiration_ttl}, values that are not UTF-8 as base64 with
//   "base64": true; at most `batch_max_keys` pairs and about 100 MB a call.
// - One delete: DELETE values/<key>; several: POST bulk/delete with the array of names.
// - Writes to one key keep their order: rounds are sequential, several writes to one key in one round
//   fold into the last (last writer wins, as KV itself does), and a key written less than
//   `same_key_interval` ago waits in the queue (KV takes 1 write a second per key).
// - Expiration: a TTL is sent as expiration_ttl exactly as the client gave it; an absolute expiration
//   closer than 60 s + kExpirationMarginS is moved LATER to that bound (Cloudflare refuses anything
//   under 60 s in the future, and clock skew or time in the queue could push the client's value, valid
//   when checked, under it; moving it earlier could only make that worse).
//
// Reads (get): the cache first (kv_cache.h); misses of concurrent callers are coalesced into POST
// bulk/get {"keys", "type":"text", "withMetadata":true} (at most 100 keys a call), which brings value,
// metadata and expiration in one answer. bulk/get carries text only: a value that comes back with
// U+FFFD (maybe bytes that are not UTF-8) is read again raw with GET values/<key> (its expiration
// header). If bulk/get is refused, each key is read with GET values/<key> + GET metadata/<key>.
// Metadata never comes from a keys list (it lags up to 60 s).
//
// Errors: a 404 means "no such key" only with Cloudflare's code 10009; a namespace error (codes
// 10010-10014, 10018, or a 404 without 10009) is a 502 that names the namespace.
//
// The registry (ResourceRecorder) is told by the round itself, of each key's final state, in the
// order cloudflare_registry.h gives (a put recorded before its call, a delete after its call
// succeeded). Rounds are sequential, so the registry hears of one key's writes in the order the store
// gets them, without the per-key guard (which would keep a key's writes out of one round, so they
// could never fold). A put that fails leaves the row it recorded: the write may have landed, and a
// read cannot tell (KV caches misses); a crash may over-list, never hide, and reindex repairs.
//
// - list: Cloudflare's limit is 10..1000 and its cursor opaque, ours 1..1000: our cursor carries the
//   upstream cursor of the page being read and the last key returned, so a page can end anywhere and
//   the next one resumes exactly after it. Lists are not cached.
// - Cloudflare's limits apply to the stored name: "ns:key" must fit in 512 bytes; checked before any call.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "store/cloudflare/cloudflare_registry.h"
#include "store/cloudflare/rest_api.h"
#include "store/kv_store.h"

namespace era::cf {

struct KvOptions {
  std::chrono::milliseconds cache_ttl{30000};  // 0: no read cache; at most 60 s (KV's window)
  size_t cache_bytes = 64u << 20;
  size_t batch_max_keys = 10000;               // pairs per bulk call (Cloudflare: at most 10,000)
  size_t batch_max_bytes = 95u << 20;          // estimated JSON bytes per bulk write (Cloudflare: 100 MB)
  std::chrono::milliseconds same_key_interval{1000};  // between two writes of one key (KV: 1 a second)
};

class CloudflareKv : public KvStore {
 public:
  static constexpr int64_t kMinExpirationS = 60;     // Cloudflare's minimum, from now
  static constexpr int64_t kExpirationMarginS = 10;  // added to it for an absolute expiration

  // `recorder` (may be null) learns of every put and delete, in the order cloudflare_registry.h gives.
  CloudflareKv(RestApi& api, std::string namespace_id, ResourceRecorder* recorder = nullptr,
               KvOptions options = {});
  ~CloudflareKv() override;

  void put(const std::string& ns, const std::string& key, const KvValue& value) override;
  std::optional<KvValue> get(const std::string& ns, const std::string& key) override;
  bool cached(const std::string& ns, const std::string& key, std::optional<KvValue>& out) override;
  void remove(const std::string& ns, const std::string& key) override;
  KvPage list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) override;

  // Every stored entry of every namespace (names shaped "ns:key"), without sizes: for reindex.
  void walk(const std::function<void(StoredEntry)>& fn);

  // Lists one key: proves the token can read the namespace. Throws ApiError with the upstream's reason.
  void check();

  // The multipart/form-data body of a put with metadata (exposed for unit tests); `boundary` must not
  // occur in it.
  static std::string multipart_body(const std::string& boundary, const KvValue& v);

  // The expiration sent for an absolute `expiration` at `now` (see above).
  static int64_t expiration_to_send(int64_t expiration, int64_t now);

  // For tests: blocks until `n` writes wait for the next round (while one is under way).
  void wait_writes_queued(size_t n);
  // For tests: blocks until `n` reads wait for the next bulk/get.
  void wait_reads_queued(size_t n);

  struct Impl;

 private:
  std::string value_path(const std::string& name) const;

  RestApi& api_;
  std::string namespace_id_;
  std::string path_;
  ResourceRecorder* recorder_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace era::cf
