// CloudflareKv: the KvStore contract on Workers KV's REST API, in the one shared namespace, under the
// internal names "ns:key" the guide documents (so Cloudflare's own tools see what the proxy wrote).
//
// - put: PUT values/<key>, always multipart (a binary-safe "value" file part, and a "metadata" part
//   holding the JSON text when there is metadata), absolute expiration in the query. Retried: a put
//   replaces value, metadata and expiration together, so sending it twice is the same as once.
// - get: GET values/<key> (raw body) plus the key's list entry for its metadata and expiration (the
//   local explorer serves no metadata endpoint; the list serves both everywhere).
// - list: Cloudflare's limit is 10..1000 and its cursor opaque, ours 1..1000: our cursor carries the
//   upstream cursor of the page being read and the last key returned, so a page can end anywhere and
//   the next one resumes exactly after it.
// - Cloudflare's limits apply to the stored name: "ns:key" must fit in 512 bytes; checked before any call.
#pragma once

#include <functional>
#include <string>

#include "store/cloudflare/cloudflare_registry.h"
#include "store/cloudflare/rest_api.h"
#include "store/kv_store.h"

namespace era::cf {

class CloudflareKv : public KvStore {
 public:
  // `recorder` (may be null) learns of every put and delete, in the order cloudflare_registry.h gives.
  CloudflareKv(RestApi& api, std::string namespace_id, ResourceRecorder* recorder = nullptr)
      : api_(api), path_("/storage/kv/namespaces/" + namespace_id), recorder_(recorder) {}

  void put(const std::string& ns, const std::string& key, const KvValue& value) override;
  std::optional<KvValue> get(const std::string& ns, const std::string& key) override;
  void remove(const std::string& ns, const std::string& key) override;
  KvPage list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) override;

  // Every stored entry of every namespace (names shaped "ns:key"), without sizes: for reindex.
  void walk(const std::function<void(StoredEntry)>& fn);

  // Lists one key: proves the token can read the namespace. Throws ApiError with the upstream's reason.
  void check();

  // The multipart/form-data body of a put (exposed for unit tests); `boundary` must not occur in it.
  static std::string multipart_body(const std::string& boundary, const KvValue& v);

 private:
  std::string value_path(const std::string& name) const;

  // After a put that failed (it may or may not have happened): the registry row follows the store.
  void resync(const std::string& ns, const std::string& key) noexcept;

  RestApi& api_;
  std::string path_;
  ResourceRecorder* recorder_;
};

}  // namespace era::cf
